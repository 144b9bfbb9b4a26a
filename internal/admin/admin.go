// Package admin is corsproc's read-only admin HTTP server: /metrics,
// /healthz, /readyz and /debug/policy (docs/operations.md, "Admin
// endpoints"), and the private metrics registry /metrics shows.
package admin

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/corsproc/corsproc/internal/active"
	"github.com/corsproc/corsproc/internal/app"
	"github.com/corsproc/corsproc/internal/listen"
)

// Admin server timeouts: it answers probes and scrapes, small and quick,
// and should not hold connections for slow or idle clients.
const (
	adminReadHeaderTimeout = 5 * time.Second
	adminWriteTimeout      = 30 * time.Second
	adminIdleTimeout       = 2 * time.Minute
	// ShutdownTimeout bounds the admin server's own close, after the
	// gRPC drain.
	ShutdownTimeout = 5 * time.Second
	// readyCheckTimeout bounds the gRPC health check behind /readyz. It is
	// a round trip to a process on the same host; an answer slower than
	// this means the server is not in a state to take traffic.
	readyCheckTimeout = 2 * time.Second
	// readyMaxBackoff caps the wait between the health client's attempts to
	// (re)connect to the gRPC listener: grpc-go's default, 120s
	// (backoff.DefaultConfig.MaxDelay, backoff/backoff.go, v1.85.0), would keep
	// /readyz failing long after the server took connections again.
	readyMaxBackoff = time.Second
)

// NewRegistry returns corsproc's private metrics registry, with the Go
// runtime and process collectors and corsproc_build_info. Nothing goes to
// the global default registry, so what /metrics shows is exactly what
// corsproc registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newBuildInfo(ReadBuild()),
	)
	return reg
}

// New returns the admin server on lis, for an app.App to run after the gRPC
// server g: metrics from reg, the policy set of enforced, and a /readyz that
// asks g's health service. Over plaintext it asks through g's listener, as
// Envoy's health checker and a kubelet gRPC probe ask it; over TLS (tls
// true: a certificate need not name the address, and may require a client
// certificate corsproc does not hold) it asks the health service in
// process.
func New(log *slog.Logger, reg *prometheus.Registry, enforced *active.Set, g *app.GRPCServer, tls bool, lis net.Listener) (*app.HTTPServer, error) {
	var hc healthpb.HealthClient = inProcessHealth{g.Health}
	var closers []io.Closer
	if !tls {
		self, err := dialSelf(g.Addr())
		if err != nil {
			return nil, fmt.Errorf("gRPC health client: %w", err)
		}
		hc = healthpb.NewHealthClient(self)
		closers = append(closers, self)
	}
	ready := &readiness{active: enforced, health: hc}
	return &app.HTTPServer{
		Name:         "admin",
		Server:       newServer(log, reg, enforced, ready.check),
		Listener:     lis,
		DrainTimeout: ShutdownTimeout,
		Close:        closers,
	}, nil
}

// newServer returns the admin HTTP server on newHandler.
func newServer(log *slog.Logger, reg *prometheus.Registry, enforced *active.Set, ready func(context.Context) error) *http.Server {
	return &http.Server{
		Handler:           newHandler(log, reg, enforced, ready),
		ReadHeaderTimeout: adminReadHeaderTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// endpoints are the admin server's routes, as / lists them.
var endpoints = []struct{ path, what string }{
	{"/metrics", "Prometheus metrics: every corsproc_* series exists from the start (docs/operations.md, \"Metrics\")"},
	{"/healthz", "liveness: 200 while the process answers"},
	{"/readyz", "readiness: 200 when a policy set is loaded and the gRPC server is serving, else 503 and why"},
	{"/debug/policy", "the active policy set as YAML: source, digest, load time, the last reload's result and problems, and the files"},
}

// newHandler serves:
//
//   - /: the list of endpoints, and the running version;
//   - /metrics: the private registry reg;
//   - /healthz: liveness, the process answers;
//   - /readyz: readiness, 200 when ready returns nil, else 503 and why;
//   - /debug/policy: the active policy set as YAML, with its source,
//     digest and load time.
//
// Every route is read-only: GET and HEAD only (the mux answers 405 to any
// other method), so nothing on the admin port changes state.
func newHandler(log *slog.Logger, reg *prometheus.Registry, enforced *active.Set, ready func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Registry: reg, // counts its own scrape errors
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		b := ReadBuild()
		fmt.Fprintf(w, "corsproc %s (commit %s, %s): admin server, read-only (GET and HEAD)\n\n", b.Version, b.Commit, b.GoVersion)
		for _, e := range endpoints {
			fmt.Fprintf(w, "%-14s %s\n", e.path, e.what)
		}
		io.WriteString(w, "\nSee docs/operations.md, \"Admin endpoints\".\n")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /debug/policy", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/yaml; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		writePolicyYAML(w, enforced.Current(), enforced.LastReload())
	})
	return mux
}

// readiness is what /readyz checks: a policy set is loaded, and the gRPC
// server says SERVING for the whole server ("") over its own health service,
// asked through its listener as Envoy's health checker and a kubelet gRPC
// probe ask it. From the moment serve starts draining the health service
// says NOT_SERVING, and once the listener is closed the check cannot
// connect: /readyz is 503 either way.
type readiness struct {
	active *active.Set
	health healthpb.HealthClient
}

func (r *readiness) check(ctx context.Context) error {
	if lp := r.active.Current(); lp == nil || lp.Set == nil {
		return errors.New("no policy set loaded")
	}
	ctx, cancel := context.WithTimeout(ctx, readyCheckTimeout)
	defer cancel()
	resp, err := r.health.Check(ctx, &healthpb.HealthCheckRequest{Service: ""})
	if err != nil {
		s := status.Convert(err)
		return fmt.Errorf("gRPC health check failed: %s: %s", s.Code(), s.Message())
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("gRPC health service reports %s", st)
	}
	return nil
}

// dialSelf returns a client connection to the gRPC server listening on
// addr, for /readyz. It connects lazily, on the first check.
func dialSelf(addr net.Addr) (*grpc.ClientConn, error) {
	bc := backoff.DefaultConfig
	bc.MaxDelay = readyMaxBackoff
	return grpc.NewClient(selfTarget(addr),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc, MinConnectTimeout: readyCheckTimeout}))
}

// selfTarget is the gRPC target that reaches a listener bound at addr: the
// socket for a Unix listener; for TCP the address itself, or loopback when
// it is the unspecified address (--listen 0.0.0.0:9001 or [::]:9001).
func selfTarget(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return listen.String(addr) // unix:///path
	}
	ip := tcp.IP
	switch {
	case ip == nil || ip.IsUnspecified() && ip.To4() != nil:
		ip = net.IPv4(127, 0, 0, 1)
	case ip.IsUnspecified():
		ip = net.IPv6loopback
	}
	// passthrough: an IP address needs no resolver.
	return "passthrough:///" + net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
}

// writePolicyYAML writes lp as a YAML stream: a header of comments (source,
// digest, load time, generation, the last reload last), then each source
// file as read, preceded by a "# file:" comment, one document per file.
func writePolicyYAML(w io.Writer, lp *active.Loaded, last *active.Reload) {
	if lp == nil || lp.Set == nil {
		io.WriteString(w, "# no policy set loaded\n")
		return
	}
	set := lp.Set
	fmt.Fprintf(w, "# source: %s\n", commentValue(set.Source()))
	fmt.Fprintf(w, "# digest: %s\n", commentValue(cmp.Or(set.Digest(), "none")))
	fmt.Fprintf(w, "# loaded: %s\n", lp.LoadedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "# generation: %d\n", lp.Generation)
	fmt.Fprintf(w, "# policies: %s\n", commentValue(strings.Join(set.Names(), ", ")))
	writeReload(w, last)
	files := set.Files()
	if files == nil {
		io.WriteString(w, "# files: none recorded: the set was compiled from a decoded policy file, whose source text is not kept\n")
		return
	}
	for i, f := range files {
		explicit, directive := documentStart(f.Data)
		switch {
		case i == 0:
		case directive:
			// A directive may only follow a document ended explicitly.
			io.WriteString(w, "...\n")
		case !explicit:
			io.WriteString(w, "---\n")
		}
		fmt.Fprintf(w, "# file: %s\n", commentValue(f.Name))
		w.Write(f.Data)
		if len(f.Data) > 0 && f.Data[len(f.Data)-1] != '\n' {
			io.WriteString(w, "\n")
		}
	}
}

// writeReload writes, as comments, the last reload's result, time and
// digest, and each problem that refused it; that there was none yet when r
// is nil.
func writeReload(w io.Writer, r *active.Reload) {
	if r == nil {
		io.WriteString(w, "# last reload: none (the set is the one corsproc started with, or it enforces no --policy path)\n")
		return
	}
	fmt.Fprintf(w, "# last reload: %s at %s, digest %s\n", r.Result, r.At.UTC().Format(time.RFC3339), commentValue(cmp.Or(r.Digest, "none (the files could not be read)")))
	if r.Result == "failure" {
		io.WriteString(w, "# the active set above keeps serving; the reload was refused for:\n")
	}
	for _, p := range r.Problems {
		for line := range strings.Lines(p) {
			fmt.Fprintf(w, "#   %s\n", commentValue(strings.TrimSuffix(line, "\n")))
		}
	}
}

// documentStart reports whether data opens with its own document start
// marker (---) or with a directive (%YAML, %TAG), ahead of any content:
// such a file must not get another separator before it.
func documentStart(data []byte) (explicit, directive bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case strings.HasPrefix(line, "%"):
			return false, true
		case line == "---" || strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "---\t"):
			return true, false
		}
		return false, false
	}
	return false, false
}

// commentValue makes s safe to print in a one-line YAML comment.
func commentValue(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		return strconv.Quote(s)
	}
	return s
}

// inProcessHealth answers /readyz's health checks from the gRPC server's
// health service directly, when the listener cannot be dialled back (TLS).
// It only needs Check.
type inProcessHealth struct{ hs *health.Server }

func (h inProcessHealth) Check(ctx context.Context, in *healthpb.HealthCheckRequest, _ ...grpc.CallOption) (*healthpb.HealthCheckResponse, error) {
	return h.hs.Check(ctx, in)
}

func (h inProcessHealth) List(ctx context.Context, in *healthpb.HealthListRequest, _ ...grpc.CallOption) (*healthpb.HealthListResponse, error) {
	return h.hs.List(ctx, in)
}

func (inProcessHealth) Watch(context.Context, *healthpb.HealthCheckRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[healthpb.HealthCheckResponse], error) {
	return nil, status.Error(codes.Unimplemented, "in-process health: Watch is not supported")
}
