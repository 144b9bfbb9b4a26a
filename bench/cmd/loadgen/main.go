// Command loadgen compares corsproc with a no-op ext_proc server over real
// gRPC. Each server runs as a child process (this binary, re-executed with
// -serve); an Envoy-shaped load generator drives them alternately, A B A B,
// in the same run, on TCP and on a Unix socket, and reads each child's CPU
// time from its own getrusage. It prints Markdown tables of medians over the
// rounds: requests/s, p50/p99 latency, server CPU and allocations per HTTP
// request, ext_proc messages per HTTP request, and each server's CPU per
// request relative to the baseline's, taken round by round.
//
//	go run ./cmd/loadgen                       # from bench/: corsproc as shipped
//	go run -tags vtprotobuf ./cmd/loadgen -servers corsproc:cmd,corsproc:cmd+vt
//	go run ./cmd/loadgen -servers corsproc:shipped,corsproc:shipped@single-message
//
// A server's @mode is the Envoy config the client plays: response-phase
// (envoy/envoy.yaml, the default) or single-message
// (envoy/envoy-single-message.yaml: the streams declare
// x-corsproc-response-headers: dynamic-metadata). The baseline is always
// driven as envoy.yaml drives it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/corsproc/corsproc/bench/loadgen"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type config struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	conns       int
	rate        float64
	slices      int
	transports  []string
	scenarios   []loadgen.Scenario
	servers     []serverSpec
	baseline    serverSpec
	profileDir  string
	verbose     bool
}

type serverSpec struct{ kind, opts, mode string }

func (s serverSpec) String() string {
	if s.mode == "" || s.mode == loadgen.ModeResponsePhase {
		return s.kind + ":" + s.opts
	}
	return s.kind + ":" + s.opts + "@" + s.mode
}

func parseServer(s string) (serverSpec, error) {
	s, mode, _ := strings.Cut(s, "@")
	if _, err := loadgen.ModeContext(context.Background(), mode); err != nil {
		return serverSpec{}, fmt.Errorf("server %q: %v", s, err)
	}
	kind, opts, ok := strings.Cut(s, ":")
	if !ok || opts == "" {
		opts = "stock"
	}
	if _, err := loadgen.ServerOptions(opts); err != nil {
		return serverSpec{}, err
	}
	if kind != "corsproc" && kind != "noop" {
		return serverSpec{}, fmt.Errorf("server %q: kind must be corsproc or noop", s)
	}
	return serverSpec{kind, opts, mode}, nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	serve := fs.String("serve", "", "child mode: serve this kind (corsproc or noop)")
	opts := fs.String("opts", "stock", "child mode: server option sets, '+'-joined: "+strings.Join(loadgen.OptionNames(), ", "))
	network := fs.String("network", "tcp", "child mode: tcp or unix")
	dir := fs.String("dir", os.TempDir(), "child mode: directory of the Unix socket")

	var c config
	fs.IntVar(&c.rounds, "rounds", 5, "rounds; every server runs every scenario once per round")
	fs.DurationVar(&c.duration, "duration", 2*time.Second, "measured time of one server in one scenario and round")
	fs.IntVar(&c.slices, "slices", 8, "slices the duration is cut into, alternating between the servers")
	fs.DurationVar(&c.warmup, "warmup", 300*time.Millisecond, "unmeasured load before each run")
	fs.IntVar(&c.concurrency, "concurrency", 32, "HTTP requests in flight")
	fs.IntVar(&c.conns, "conns", 2, "gRPC connections to each server (Envoy opens one per worker thread)")
	fs.Float64Var(&c.rate, "rate", 0, "requests/s in all; 0 sends as fast as the servers answer")
	transports := fs.String("transports", "tcp,unix", "transports: tcp, unix")
	scenarios := fs.String("scenarios", "", "scenarios (default all): "+scenarioNames())
	servers := fs.String("servers", "corsproc:shipped", "servers compared with the baseline, kind:opts[@mode], comma-separated; mode response-phase (default) or single-message")
	baseline := fs.String("baseline", "noop:stock", "the baseline server, kind:opts")
	fs.StringVar(&c.profileDir, "profile", "", "write a CPU profile of every server and scenario into this directory (last round)")
	fs.BoolVar(&c.verbose, "v", false, "print every run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *serve != "" {
		return loadgen.ServeChild(*serve, *opts, *network, *dir, os.Stdin, os.Stdout)
	}

	c.transports = strings.Split(*transports, ",")
	if *scenarios == "" {
		c.scenarios = loadgen.Scenarios
	} else {
		for name := range strings.SplitSeq(*scenarios, ",") {
			s, ok := loadgen.ScenarioByName(name)
			if !ok {
				return fmt.Errorf("unknown scenario %q (known: %s)", name, scenarioNames())
			}
			c.scenarios = append(c.scenarios, s)
		}
	}
	var err error
	if c.baseline, err = parseServer(*baseline); err != nil {
		return err
	}
	if c.baseline.mode != "" && c.baseline.mode != loadgen.ModeResponsePhase {
		return fmt.Errorf("baseline %v: the baseline is driven as envoy.yaml drives it, without @mode", c.baseline)
	}
	for s := range strings.SplitSeq(*servers, ",") {
		spec, err := parseServer(s)
		if err != nil {
			return err
		}
		c.servers = append(c.servers, spec)
	}
	return measure(c)
}

func scenarioNames() string {
	var names []string
	for _, s := range loadgen.Scenarios {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// child is a running server process.
type child struct {
	spec    serverSpec
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	conns   []*grpc.ClientConn
	clients []extprocv3.ExternalProcessorClient
}

func startChild(spec serverSpec, network, dir string, conns int) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", spec.kind, "-opts", spec.opts, "-network", network, "-dir", dir)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := &child{spec: spec, cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	line, err := ch.out.ReadString('\n')
	if err != nil {
		ch.stop()
		return nil, fmt.Errorf("%v: %v", spec, err)
	}
	target, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if !ok {
		ch.stop()
		return nil, fmt.Errorf("%v: unexpected %q", spec, line)
	}
	for range conns {
		cc, err := loadgen.DialEnvoy(target)
		if err != nil {
			ch.stop()
			return nil, err
		}
		ch.conns = append(ch.conns, cc)
		ch.clients = append(ch.clients, extprocv3.NewExternalProcessorClient(cc))
	}
	return ch, nil
}

func (ch *child) command(cmd string) (string, error) {
	if _, err := fmt.Fprintln(ch.in, cmd); err != nil {
		return "", err
	}
	line, err := ch.out.ReadString('\n')
	return strings.TrimSpace(line), err
}

// stats is a child's own accounting.
type stats struct{ cpu, mallocs, bytes int64 }

func (ch *child) stats() (stats, error) {
	line, err := ch.command("stats")
	if err != nil {
		return stats{}, err
	}
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "stats" {
		return stats{}, fmt.Errorf("%v: unexpected %q", ch.spec, line)
	}
	var s stats
	for i, p := range []*int64{&s.cpu, &s.mallocs, &s.bytes} {
		if *p, err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return stats{}, err
		}
	}
	return s, nil
}

func (ch *child) stop() {
	for _, cc := range ch.conns {
		cc.Close()
	}
	ch.in.Close()
	ch.cmd.Wait()
}

// sample is one measured run.
type sample struct {
	rps, p50, p99, cpuPerReq, allocsPerReq, bytesPerReq, msgsPerReq float64
}

type key struct {
	transport, scenario string
	server              serverSpec
}

func measure(c config) error {
	dir, err := os.MkdirTemp("", "corsproc-loadgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	all := append([]serverSpec{c.baseline}, c.servers...)
	samples := map[key][]sample{}
	ctx := context.Background()

	fmt.Fprintf(os.Stderr, "loadgen: %d rounds × %d transports × %d scenarios × %d servers, %v each (+%v warm-up), concurrency %d over %d connections, rate %v; GOMAXPROCS %d, %d CPUs, vtprotobuf code built in: %v\n",
		c.rounds, len(c.transports), len(c.scenarios), len(all), c.duration, c.warmup, c.concurrency, c.conns, rateString(c.rate), runtime.GOMAXPROCS(0), runtime.NumCPU(), loadgen.HasVT())
	for _, tr := range c.transports {
		children := make([]*child, len(all))
		for i, spec := range all {
			ch, err := startChild(spec, tr, dir, c.conns)
			if err != nil {
				return err
			}
			defer ch.stop()
			children[i] = ch
		}
		for round := range c.rounds {
			for _, sc := range c.scenarios {
				// Rotate who goes first each round.
				order := make([]*child, len(children))
				for i := range children {
					order[i] = children[(i+round)%len(children)]
				}
				profile := func(ch *child) string {
					if c.profileDir == "" || round != c.rounds-1 {
						return ""
					}
					return filepath.Join(c.profileDir, fmt.Sprintf("%s-%s-%s.pprof", tr, sc.Name, strings.ReplaceAll(ch.spec.String(), ":", "-")))
				}
				ss, err := runInterleaved(ctx, c, order, sc, profile)
				if err != nil {
					return err
				}
				for i, ch := range order {
					s := ss[i]
					k := key{tr, sc.Name, ch.spec}
					samples[k] = append(samples[k], s)
					if c.verbose {
						fmt.Fprintf(os.Stderr, "round %d %s %-12s %-24v %8.0f req/s  cpu %6.2f µs/req  allocs %5.1f/req  msgs %.2f  p50 %5.0f µs  p99 %5.0f µs\n",
							round+1, tr, sc.Name, ch.spec, s.rps, s.cpuPerReq, s.allocsPerReq, s.msgsPerReq, s.p50, s.p99)
					}
				}
			}
		}
	}
	report(c, all, samples)
	return nil
}

func rateString(r float64) string {
	if r <= 0 {
		return "unpaced"
	}
	return fmt.Sprintf("%.0f/s", r)
}

// runInterleaved measures sc on every child: after a warm-up of each, it
// runs c.slices slices of c.duration/c.slices per child, alternating
// between the children (A B A B ...), and sums each child's slices, so that
// a change in the machine's background load hits every child alike.
func runInterleaved(ctx context.Context, c config, children []*child, sc loadgen.Scenario, profile func(*child) string) ([]sample, error) {
	req := loadgen.Prepare(sc)
	ctxs := make([]context.Context, len(children))
	for i, ch := range children {
		mc, err := loadgen.ModeContext(ctx, ch.spec.mode)
		if err != nil {
			return nil, err
		}
		ctxs[i] = mc
	}
	if c.warmup > 0 {
		for i, ch := range children {
			loadgen.Run(ctxs[i], ch.clients, req, loadgen.Load{Concurrency: c.concurrency, Rate: c.rate, Duration: c.warmup})
		}
	}
	for _, ch := range children {
		if p := profile(ch); p != "" {
			if line, err := ch.command("profile " + p); err != nil || line != "ok" {
				return nil, fmt.Errorf("profile: %v %s", err, line)
			}
			defer ch.command("stop")
		}
	}
	type acc struct {
		st      stats
		res     loadgen.Result
		elapsed time.Duration
	}
	accs := make([]acc, len(children))
	slice := c.duration / time.Duration(c.slices)
	for range c.slices {
		for i, ch := range children {
			before, err := ch.stats()
			if err != nil {
				return nil, err
			}
			res := loadgen.Run(ctxs[i], ch.clients, req, loadgen.Load{Concurrency: c.concurrency, Rate: c.rate, Duration: slice})
			after, err := ch.stats()
			if err != nil {
				return nil, err
			}
			if res.Errors > 0 {
				return nil, fmt.Errorf("%v %s: %d of %d requests failed, first: %v", ch.spec, sc.Name, res.Errors, res.Requests, res.FirstErr)
			}
			a := &accs[i]
			a.st.cpu += after.cpu - before.cpu
			a.st.mallocs += after.mallocs - before.mallocs
			a.st.bytes += after.bytes - before.bytes
			a.res.Requests += res.Requests
			a.res.Messages += res.Messages
			a.res.Latencies = append(a.res.Latencies, res.Latencies...)
			a.elapsed += res.Elapsed
		}
	}
	out := make([]sample, len(children))
	for i := range accs {
		a := &accs[i]
		slices.Sort(a.res.Latencies)
		a.res.Elapsed = a.elapsed
		n := float64(a.res.Requests)
		out[i] = sample{
			rps:          a.res.RPS(),
			p50:          float64(a.res.Percentile(50)) / 1e3,
			p99:          float64(a.res.Percentile(99)) / 1e3,
			cpuPerReq:    float64(a.st.cpu) / 1e3 / n,
			allocsPerReq: float64(a.st.mallocs) / n,
			bytesPerReq:  float64(a.st.bytes) / n,
			msgsPerReq:   float64(a.res.Messages) / n,
		}
	}
	return out, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func field(ss []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func report(c config, all []serverSpec, samples map[key][]sample) {
	fmt.Printf("Server CPU per HTTP request relative to %v: median over %d rounds of the per-round ratio (same transport, scenario and round).\n\n", c.baseline, c.rounds)
	fmt.Printf("| transport | scenario | server | req/s | p50 µs | p99 µs | server CPU µs/req | allocs/req | B/req | msgs/req | CPU ratio |\n")
	fmt.Printf("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	type gkey struct {
		transport string
		server    serverSpec
	}
	ratios := map[gkey][]float64{}
	for _, tr := range c.transports {
		for _, sc := range c.scenarios {
			base := samples[key{tr, sc.Name, c.baseline}]
			for _, spec := range all {
				ss := samples[key{tr, sc.Name, spec}]
				ratio := "1 (baseline)"
				if spec != c.baseline {
					var rs []float64
					for i := range ss {
						rs = append(rs, ss[i].cpuPerReq/base[i].cpuPerReq)
					}
					r := median(rs)
					ratios[gkey{tr, spec}] = append(ratios[gkey{tr, spec}], r)
					ratio = fmt.Sprintf("**%.3f×**", r)
				}
				fmt.Printf("| %s | %s | `%v` | %.0f | %.0f | %.0f | %.2f | %.1f | %.0f | %.2f | %s |\n", tr, sc.Name, spec,
					median(field(ss, func(s sample) float64 { return s.rps })),
					median(field(ss, func(s sample) float64 { return s.p50 })),
					median(field(ss, func(s sample) float64 { return s.p99 })),
					median(field(ss, func(s sample) float64 { return s.cpuPerReq })),
					median(field(ss, func(s sample) float64 { return s.allocsPerReq })),
					median(field(ss, func(s sample) float64 { return s.bytesPerReq })),
					median(field(ss, func(s sample) float64 { return s.msgsPerReq })),
					ratio)
			}
		}
	}
	fmt.Printf("\n| transport | server | geometric mean of CPU ratios | highest scenario ratio |\n|---|---|---:|---:|\n")
	for _, tr := range c.transports {
		for _, spec := range c.servers {
			rs := ratios[gkey{tr, spec}]
			logSum, hi := 0.0, 0.0
			for _, r := range rs {
				logSum += math.Log(r)
				hi = max(hi, r)
			}
			fmt.Printf("| %s | `%v` | %.3f× | %.3f× |\n", tr, spec, math.Exp(logSum/float64(len(rs))), hi)
		}
	}
}
