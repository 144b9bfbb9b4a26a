package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/corsproc/corsproc/envoy/emulator"
	"github.com/corsproc/corsproc/internal/active"
	"github.com/corsproc/corsproc/internal/admin"
	"github.com/corsproc/corsproc/internal/app"
	"github.com/corsproc/corsproc/internal/listen"
	"github.com/corsproc/corsproc/policy/reload"
	"github.com/corsproc/corsproc/processor"
)

// devConfig is what dev's flags set.
type devConfig struct {
	upstream   string
	listen     string
	policy     string
	policyName string
	logFormat  string
	logLevel   string
	admin      string
}

// newDevFlags defines dev's flags on c.
func newDevFlags(c *devConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.StringVar(&c.upstream, "upstream", "",
		"`URL` of the application to put behind corsproc, http:// or https://,\n"+
			"e.g. http://127.0.0.1:8000 (required; no path)")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080",
		"`ADDR` where the emulated Envoy takes the browser's requests: host:port\n"+
			"(port 0 picks a free port), or unix:///path/to.sock")
	definePolicyFlag(fs, &c.policy)
	defineDevPolicyNameFlag(fs, &c.policyName)
	defineLogFlags(fs, &c.logFormat, &c.logLevel)
	defineDevAdminFlag(fs, &c.admin)
	return fs
}

// devOptions are dev's flags, checked.
type devOptions struct {
	upstream   string
	listen     listen.Addr
	policy     string
	policyName string
	logFormat  string
	logLevel   slog.Level
	admin      *listen.Addr // nil: no admin server
}

// parseDevFlags parses and checks dev's flags, reporting every problem at
// once.
func parseDevFlags(args []string) (devOptions, error) {
	var c devConfig
	if err := parseFlags("dev", newDevFlags(&c), args); err != nil {
		return devOptions{}, err
	}
	o := devOptions{upstream: c.upstream, policy: c.policy, policyName: c.policyName, logFormat: c.logFormat}
	var errs []error
	if err := checkUpstream(c.upstream); err != nil {
		errs = append(errs, err)
	}
	var err error
	if o.listen, err = parseListenAddr("listen", c.listen); err != nil {
		errs = append(errs, err)
	}
	level, logErrs := checkLogFlags(c.logFormat, c.logLevel)
	o.logLevel = level
	errs = append(errs, logErrs...)
	if c.admin != "" {
		a, err := parseListenAddr("admin", c.admin)
		if err != nil {
			errs = append(errs, err)
		}
		o.admin = &a
	}
	if len(errs) > 0 {
		return devOptions{}, &usageError{errors.Join(errs...)}
	}
	return o, nil
}

// checkUpstream checks --upstream: an http or https URL with a host and no
// path, as an Envoy cluster is addressed.
func checkUpstream(s string) error {
	if s == "" {
		return errors.New("--upstream is required: the URL of the application, e.g. http://127.0.0.1:8000")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("--upstream %q: want an http:// or https:// URL with a host and no path, e.g. http://127.0.0.1:8000", s)
	}
	return nil
}

// The emulated Envoy of dev is configured as corsproc's shipped Envoy
// examples are: every request goes through the ext_proc filter on one route,
// which tells corsproc its name, and whose response phase corsproc may skip.
const (
	devRouteName = "dev"
	// devMessageTimeout is the message_timeout of envoy/envoy.yaml.
	devMessageTimeout = 100 * time.Millisecond
	// devShutdownTimeout bounds each step of the shutdown: in-flight HTTP
	// requests, then in-flight ext_proc streams.
	devShutdownTimeout = 5 * time.Second
	// devReadHeaderTimeout and devIdleTimeout protect the listener from
	// slow and idle clients, as Envoy's defaults do.
	devReadHeaderTimeout = 10 * time.Second
	devIdleTimeout       = 2 * time.Minute
)

// devEmulatorConfig is the emulated Envoy's configuration. It emulates the
// newest Envoy release (emulator.Newest), where the replies Envoy generates
// itself, such as its 503 for an upstream it cannot reach, go through
// corsproc's response phase: the developer's browser shows the real error
// with the CORS headers the policy gives, not a CORS error
// (docs/envoy.md, "Envoy releases"). failure_mode_allow is on: a corsproc
// that fails leaves requests without CORS headers, which the browser
// refuses, as in production. normalize_path and merge_slashes are on, as in
// envoy/envoy.yaml.
func devEmulatorConfig(upstream string, log *slog.Logger) emulator.Config {
	var lastWarn atomic.Int64 // unix seconds of the last upstream warning
	return emulator.Config{
		Release:           emulator.Newest,
		Upstream:          upstream,
		Routes:            []emulator.Route{{Name: devRouteName}},
		NormalizePath:     true,
		MergeSlashes:      true,
		AllowModeOverride: true,
		RequestAttributes: []string{processor.AttributeRoute},
		MessageTimeout:    devMessageTimeout,
		FailureModeAllow:  true,
		AccessLog: func(e emulator.LogEntry) {
			log.Debug("request",
				"method", e.Method,
				"path", e.Path,
				"authority", e.Authority,
				"status", e.Status,
				"details", e.Details,
				"ext_proc_messages", e.Messages,
				"upstream", e.Upstream,
				"duration", e.Duration)
			if msg := upstreamProblem(e); msg != "" {
				// At most one warning a second: a page load can send
				// dozens of requests to an application that is down.
				now := time.Now().Unix()
				if last := lastWarn.Load(); now != last && lastWarn.CompareAndSwap(last, now) {
					log.Warn(msg, "upstream", upstream, "method", e.Method, "path", e.Path, "status", e.Status)
				}
			}
		},
	}
}

// upstreamProblem returns the warning dev logs for a request whose upstream
// failed (Envoy's 503 when it cannot connect, 502 for a response it
// refuses, 504 past the route's timeout), or "".
func upstreamProblem(e emulator.LogEntry) string {
	switch {
	case strings.HasPrefix(e.Details, "upstream_reset_before_response_started{connection_failure"):
		return "upstream unreachable: is the application running at --upstream? answered 503"
	case strings.HasPrefix(e.Details, "upstream_reset_before_response_started"):
		return "upstream reset the request before answering: answered " + strconv.Itoa(e.Status)
	case e.Details == "upstream_response_timeout":
		return "upstream did not answer within Envoy's route timeout (" + emulator.DefaultRouteTimeout.String() + "): answered 504"
	}
	return ""
}

// runDev is the dev command: corsproc on an in-process gRPC server on
// loopback, and in front of the application an emulated Envoy calling it, in
// one process. It serves until ctx is cancelled, then drains.
func runDev(ctx context.Context, e *env, args []string) error {
	o, err := parseDevFlags(args)
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, o.logFormat, o.logLevel)

	// The policy comes first: a file that fails validation stops dev
	// before anything is bound.
	set, err := loadPolicy(log, o.policy)
	if err != nil {
		return err
	}
	emu, err := forceDevPolicy(devEmulatorConfig(o.upstream, log), set, o.policyName)
	if err != nil {
		return err
	}

	// corsproc itself, over real loopback gRPC as in production.
	reg := admin.NewRegistry()
	proc := processor.New(set, processor.Options{Logger: log, Registerer: reg, IdleTimeout: processor.DefaultIdleTimeout, ExplainRefusals: true, Refused: devRefusals(e.stderr, o.logFormat)})
	enforced := active.New(proc, set, time.Now(), reg)
	watchPolicy(ctx, log, o.policy, set, enforced.Swap, reg, reload.Options{Interval: reload.DefaultInterval, Report: reportReload(enforced)})
	g := app.NewGRPCServer(proc, nil)
	g.DrainTimeout = devShutdownTimeout
	var lc net.ListenConfig
	grpcLis, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	conn, err := grpc.NewClient(grpcLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("gRPC client: %w", err)
	}
	defer conn.Close()

	// The emulated Envoy in front of the application.
	proxy, err := emulator.New(emu, conn)
	if err != nil {
		grpcLis.Close()
		return err
	}
	defer proxy.CloseIdleConnections()
	httpLis, err := o.listen.Listen(ctx)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("listener: %w", err)
	}
	g.Listener = grpcLis
	front := &app.HTTPServer{
		Name: "dev",
		Server: &http.Server{
			Handler:           proxy,
			ReadHeaderTimeout: devReadHeaderTimeout,
			IdleTimeout:       devIdleTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		Listener:     httpLis,
		DrainTimeout: devShutdownTimeout,
		// Its streams are over once it drained: they must not hold up the
		// gRPC server's drain.
		Close: []io.Closer{conn},
	}

	// At shutdown the emulated Envoy drains first, while corsproc still
	// answers its requests in flight; then corsproc drains.
	a := &app.App{Log: log, Servers: []app.Server{front, g}, ShutdownTimeout: devShutdownTimeout}
	bound := listening{grpc: listen.String(g.Addr()), http: listen.String(front.Addr())}
	if o.admin != nil {
		adm, err := devAdmin(ctx, log, *o.admin, reg, enforced, g)
		if err != nil {
			grpcLis.Close()
			httpLis.Close()
			return err
		}
		a.Servers = append(a.Servers, adm)
		bound.admin = listen.String(adm.Addr())
	}
	return e.runApp(ctx, a, bound, func() {
		log.Info("corsproc dev listening",
			"listen", bound.http,
			"upstream", o.upstream,
			"policy", set.Source(),
			"policies", len(set.Names()),
			"grpc", bound.grpc,
			"admin", cmp.Or(bound.admin, "disabled"))
	})
}
