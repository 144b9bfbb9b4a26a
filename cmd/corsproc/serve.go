package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc/credentials"

	"github.com/corsproc/corsproc/internal/active"
	"github.com/corsproc/corsproc/internal/admin"
	"github.com/corsproc/corsproc/internal/app"
	"github.com/corsproc/corsproc/internal/listen"
	"github.com/corsproc/corsproc/internal/tlsreload"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/policy/reload"
	"github.com/corsproc/corsproc/processor"
)

// serveConfig is what serve's flags set.
type serveConfig struct {
	policy          string
	listen          string
	admin           string
	logFormat       string
	logLevel        string
	shutdownTimeout time.Duration

	tlsCert, tlsKey, clientCA string
	listenMode                string
	streamIdleTimeout         time.Duration
	maxRequestHeaders         int
	maxRequestHeaderBytes     int
	reloadInterval            time.Duration
	adminMode                 string
	maxMessageBytes           int
	maxStreams                int
	maxConnections            int
	explainRefusals           bool
}

// newServeFlags defines serve's flags on c.
func newServeFlags(c *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	definePolicyFlag(fs, &c.policy)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9001",
		"`ADDR` of the ext_proc gRPC service: host:port (port 0 picks a free\n"+
			"port), or unix:///path/to.sock")
	fs.StringVar(&c.admin, "admin", "127.0.0.1:9002",
		"`ADDR` of the read-only admin HTTP server (/ lists its endpoints:\n"+
			"/metrics, /healthz, /readyz, /debug/policy): host:port, or\n"+
			"unix:///path/to.sock; \"\" disables it")
	defineLogFlags(fs, &c.logFormat, &c.logLevel)
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second,
		"on SIGTERM or SIGINT, how long in-flight streams may take to finish\n"+
			"before they are closed (`DURATION`, e.g. 10s)")
	fs.StringVar(&c.tlsCert, "tls-cert", "",
		"PEM certificate `FILE` (chain) for the gRPC listener: serve gRPC over\n"+
			"TLS (with --tls-key). Reloaded when the file changes")
	fs.StringVar(&c.tlsKey, "tls-key", "",
		"PEM private key `FILE` of --tls-cert. Reloaded when the file changes")
	fs.StringVar(&c.clientCA, "client-ca", "",
		"PEM CA certificates `FILE`: require every gRPC client (Envoy) to present\n"+
			"a certificate signed by one of them (mutual TLS; needs --tls-cert).\n"+
			"Reloaded when the file changes")
	fs.StringVar(&c.listenMode, "listen-mode", fmt.Sprintf("%#o", listen.DefaultSocketMode),
		"permission bits (`MODE`, octal) of the Unix socket of --listen\n"+
			"unix:///path: who may connect (connecting needs write permission)")
	fs.DurationVar(&c.streamIdleTimeout, "stream-idle-timeout", processor.DefaultIdleTimeout,
		"close an ext_proc stream on which no message arrived for this long\n"+
			"(`DURATION`; 0 disables). A stream is silent while the upstream\n"+
			"answers: keep it above the longest response time, long polls\n"+
			"included")
	fs.IntVar(&c.maxRequestHeaders, "max-request-headers", processor.DefaultMaxRequestHeaders,
		"header entries of a request corsproc inspects (`N`); a request with\n"+
			"more gets no CORS permission (its preflight is refused)")
	fs.DurationVar(&c.reloadInterval, "reload-interval", reload.DefaultInterval,
		"how often to compare the policy files' digest with the active set's\n"+
			"and reload if they changed (`DURATION`; 0 disables): a backstop\n"+
			"for a change the file watch missed")
	fs.IntVar(&c.maxRequestHeaderBytes, "max-request-header-bytes", processor.DefaultMaxRequestHeaderBytes,
		"bytes of header names and values of a request corsproc inspects\n"+
			"(`N`); a request with more gets no CORS permission (its preflight\n"+
			"is refused)")
	fs.StringVar(&c.adminMode, "admin-mode", fmt.Sprintf("%#o", listen.DefaultSocketMode),
		"permission bits (`MODE`, octal) of the Unix socket of --admin\n"+
			"unix:///path: who may connect (connecting needs write permission)")
	fs.IntVar(&c.maxMessageBytes, "max-message-bytes", processor.DefaultMaxRecvMsgSize,
		"largest ext_proc message corsproc reads (`N` bytes); a larger one fails\n"+
			"its stream. Envoy sends one header map per message, at most 60 KiB\n"+
			"of request headers and 80 KiB of response headers by default: raise\n"+
			"it with Envoy's max_request_headers_kb and max_response_headers_kb")
	fs.IntVar(&c.maxStreams, "max-streams", processor.DefaultMaxStreams,
		"gRPC streams open at once on the whole server (`N`); more are refused\n"+
			"with RESOURCE_EXHAUSTED. Envoy holds one per HTTP request in flight,\n"+
			"up to its cluster circuit breaker's max_requests (1024 by default,\n"+
			"10000 in the shipped configs); each costs about 16 KiB")
	fs.IntVar(&c.maxConnections, "max-connections", defaultMaxConnections,
		"gRPC connections open at once (`N`); more wait to be accepted. Envoy\n"+
			"opens one per worker thread (and per 1000 streams on it); each costs\n"+
			"under 60 KiB")
	fs.BoolVar(&c.explainRefusals, "explain-refusals", false,
		"answer a refused preflight with a plain-text body and an\n"+
			"X-Corsproc-Reason header saying what was refused, and add the header\n"+
			"to refused requests' responses. For staging: it tells any client\n"+
			"what a policy lacks")
	return fs
}

// defaultMaxConnections is the --max-connections default: a thousand Envoy
// workers (each opens its own connections to corsproc), under 60 MiB of
// connection state in grpc-go (docs/security.md, "Bounds").
const defaultMaxConnections = 1024

// definePolicyFlag defines --policy, shared by the commands that enforce a
// policy.
func definePolicyFlag(fs *flag.FlagSet, policy *string) {
	fs.StringVar(policy, "policy", "",
		"policy `PATH` to enforce: a YAML file, or a directory whose *.yaml and\n"+
			"*.yml files form one set (a ConfigMap mount); reloaded when it changes\n"+
			"and on SIGHUP. Without it corsproc enforces its embedded development\n"+
			"policy, which allows only the origins http://localhost:*,\n"+
			"http://127.0.0.1:* and http://[::1]:*")
}

// defineLogFlags defines --log-format and --log-level, shared by the
// commands that log.
func defineLogFlags(fs *flag.FlagSet, format, level *string) {
	fs.StringVar(format, "log-format", "text", "log `FORMAT`: text or json")
	fs.StringVar(level, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
}

// checkLogFlags checks the values of defineLogFlags and returns the level.
func checkLogFlags(format, level string) (slog.Level, []error) {
	var errs []error
	if !slices.Contains(logFormats, format) {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", format))
	}
	l, ok := logLevels[level]
	if !ok {
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", level))
	}
	return l, errs
}

// parseListenAddr parses the value s of the listen flag flagName.
func parseListenAddr(flagName, s string) (listen.Addr, error) {
	a, err := listen.Parse(s)
	if err != nil {
		return listen.Addr{}, fmt.Errorf("--%s %q: %w", flagName, s, err)
	}
	return a, nil
}

// parseFileMode parses the value s of the socket mode flag flagName.
func parseFileMode(flagName, s string) (fs.FileMode, error) {
	m, err := listen.ParseFileMode(s)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: %w", flagName, s, err)
	}
	return m, nil
}

// checkTLSFlags checks that the TLS flags make sense together.
func checkTLSFlags(f tlsreload.Files) []error {
	var errs []error
	if (f.Cert == "") != (f.Key == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key: give both or neither"))
	}
	if f.ClientCA != "" && f.Cert == "" {
		errs = append(errs, errors.New("--client-ca requires --tls-cert and --tls-key: client certificates are verified during a TLS handshake"))
	}
	return errs
}

var (
	logFormats = []string{"text", "json"}
	logLevels  = map[string]slog.Level{
		"debug": slog.LevelDebug,
		"info":  slog.LevelInfo,
		"warn":  slog.LevelWarn,
		"error": slog.LevelError,
	}
)

// serveOptions are serve's flags, checked.
type serveOptions struct {
	policy          string
	listen          listen.Addr
	admin           *listen.Addr // nil: no admin server
	logFormat       string
	logLevel        slog.Level
	shutdownTimeout time.Duration

	tls                   tlsreload.Files
	listenMode            fs.FileMode
	streamIdleTimeout     time.Duration
	maxRequestHeaders     int
	maxRequestHeaderBytes int
	explainRefusals       bool
	reloadInterval        time.Duration
	adminMode             fs.FileMode
	grpcLimits            processor.GRPCLimits
	maxConnections        int
}

// parseServeFlags parses and checks serve's flags, reporting every problem
// at once.
func parseServeFlags(args []string) (serveOptions, error) {
	var c serveConfig
	if err := parseFlags("serve", newServeFlags(&c), args); err != nil {
		return serveOptions{}, err
	}
	o := serveOptions{
		policy:                c.policy,
		logFormat:             c.logFormat,
		shutdownTimeout:       c.shutdownTimeout,
		tls:                   tlsreload.Files{Cert: c.tlsCert, Key: c.tlsKey, ClientCA: c.clientCA},
		streamIdleTimeout:     c.streamIdleTimeout,
		maxRequestHeaders:     c.maxRequestHeaders,
		maxRequestHeaderBytes: c.maxRequestHeaderBytes,
		explainRefusals:       c.explainRefusals,
		reloadInterval:        c.reloadInterval,
		grpcLimits:            processor.GRPCLimits{MaxRecvMsgSize: c.maxMessageBytes, MaxStreams: c.maxStreams},
		maxConnections:        c.maxConnections,
	}
	var errs []error
	var err error
	if o.listen, err = parseListenAddr("listen", c.listen); err != nil {
		errs = append(errs, err)
	}
	if c.admin != "" {
		a, err := parseListenAddr("admin", c.admin)
		if err != nil {
			errs = append(errs, err)
		}
		o.admin = &a
	}
	level, logErrs := checkLogFlags(c.logFormat, c.logLevel)
	o.logLevel = level
	errs = append(errs, logErrs...)
	if c.shutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout %v: want a positive duration", c.shutdownTimeout))
	}
	errs = append(errs, checkTLSFlags(o.tls)...)
	if o.listenMode, err = parseFileMode("listen-mode", c.listenMode); err != nil {
		errs = append(errs, err)
	}
	if c.streamIdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("--stream-idle-timeout %v: want a positive duration, or 0 to disable it", c.streamIdleTimeout))
	}
	if c.maxRequestHeaders <= 0 {
		errs = append(errs, fmt.Errorf("--max-request-headers %d: want a positive number", c.maxRequestHeaders))
	}
	if c.reloadInterval < 0 {
		errs = append(errs, fmt.Errorf("--reload-interval %v: want a positive duration, or 0 to disable it", c.reloadInterval))
	}
	if c.maxRequestHeaderBytes <= 0 {
		errs = append(errs, fmt.Errorf("--max-request-header-bytes %d: want a positive number", c.maxRequestHeaderBytes))
	}
	errs = append(errs, checkBoundFlags(&o, c)...)
	if len(errs) > 0 {
		return serveOptions{}, &usageError{errors.Join(errs...)}
	}
	return o, nil
}

// checkBoundFlags checks the admin socket's mode and the gRPC server's
// bounds (docs/security.md, "Bounds") into o.
func checkBoundFlags(o *serveOptions, c serveConfig) []error {
	var errs []error
	var err error
	if o.adminMode, err = parseFileMode("admin-mode", c.adminMode); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max-message-bytes", c.maxMessageBytes}, {"max-streams", c.maxStreams}, {"max-connections", c.maxConnections}} {
		if f.v <= 0 {
			errs = append(errs, fmt.Errorf("--%s %d: want a positive number", f.name, f.v))
		}
	}
	return errs
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// listening is where serve (or dev) bound, spelled as the listen flags
// accept it.
type listening struct {
	grpc  string
	admin string // "" when the admin server is disabled
	http  string // dev: the emulated Envoy listener; "" for serve
}

// runServe is the serve command: load the policy, bind, serve until ctx is
// cancelled, then drain.
func runServe(ctx context.Context, e *env, args []string) error {
	o, err := parseServeFlags(args)
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, o.logFormat, o.logLevel)

	// The policy comes first: a file that fails validation stops serve
	// before anything is bound.
	set, err := loadPolicy(log, o.policy)
	if err != nil {
		return err
	}
	loadedAt := time.Now()

	reg := admin.NewRegistry()
	// The TLS files too must be good before anything is bound.
	var creds credentials.TransportCredentials
	if o.tls.Cert != "" {
		certs, err := tlsreload.New(o.tls, log, reg)
		if err != nil {
			return fmt.Errorf("not serving: %w", err)
		}
		creds = credentials.NewTLS(certs.ServerConfig())
	}
	proc := processor.New(set, processor.Options{
		Logger:                log,
		Registerer:            reg,
		IdleTimeout:           o.streamIdleTimeout,
		MaxRequestHeaders:     o.maxRequestHeaders,
		MaxRequestHeaderBytes: o.maxRequestHeaderBytes,
		GRPC:                  o.grpcLimits,
		ExplainRefusals:       o.explainRefusals,
	})
	enforced := active.New(proc, set, loadedAt, reg)
	g := app.NewGRPCServer(proc, creds)
	g.DrainTimeout = o.shutdownTimeout

	grpcLis, err := o.listen.ListenMode(ctx, o.listenMode)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	// --max-connections: past it, connections wait in the kernel's accept
	// queue until one closes (limitListener.Accept takes a slot before it
	// accepts; golang.org/x/net/netutil/listen.go, v0.62.0).
	g.Listener = netutil.LimitListener(grpcLis, o.maxConnections)
	watchPolicy(ctx, log, o.policy, set, enforced.Swap, reg, reload.Options{Interval: o.reloadInterval, Report: reportReload(enforced)})
	a := &app.App{Log: log, Servers: []app.Server{g}, ShutdownTimeout: o.shutdownTimeout}
	bound := listening{grpc: listen.String(g.Addr())}
	if o.admin != nil {
		adminLis, err := o.admin.ListenMode(ctx, o.adminMode)
		if err != nil {
			g.Listener.Close()
			return fmt.Errorf("admin listener: %w", err)
		}
		adm, err := admin.New(log, reg, enforced, g, creds != nil, adminLis)
		if err != nil {
			g.Listener.Close()
			adminLis.Close()
			return err
		}
		// The admin server goes last, so /readyz answers 503 for the whole
		// drain.
		a.Servers = append(a.Servers, adm)
		bound.admin = listen.String(adm.Addr())
	}
	return e.runApp(ctx, a, bound, func() {
		log.Info("corsproc serving",
			"grpc", bound.grpc,
			"admin", cmp.Or(bound.admin, "disabled"),
			"policy", set.Source(),
			"policies", len(set.Names()))
	})
}

// runApp runs a, the servers of serve or dev, until ctx is cancelled and
// they have drained. Once they all serve, announce logs the startup line
// and e.ready learns the addresses bound.
func (e *env) runApp(ctx context.Context, a *app.App, bound listening, announce func()) error {
	return a.Run(ctx, func() {
		announce()
		if e.ready != nil {
			e.ready(bound)
		}
	})
}

// reportReload returns the reload.Options.Report that records each reload
// in a for the admin server's /debug/policy.
func reportReload(a *active.Set) func(reload.Result, string, error) {
	return func(result reload.Result, digest string, err error) {
		r := active.Reload{At: time.Now(), Result: result.String(), Digest: digest}
		var verr *policy.ValidationError
		switch {
		case errors.As(err, &verr):
			for _, d := range verr.Diagnostics {
				r.Problems = append(r.Problems, d.String())
			}
		case err != nil:
			r.Problems = []string{err.Error()}
		}
		a.RecordReload(r)
	}
}

// loadPolicy loads the policy at path, or the development policy when path
// is "", and logs its warnings.
func loadPolicy(log *slog.Logger, path string) (*policy.Set, error) {
	if path == "" {
		log.Warn("no --policy given: enforcing the embedded development policy, " +
			"which allows only the origins http://localhost:*, http://127.0.0.1:* and http://[::1]:*")
		return policyfile.Development(), nil
	}
	set, err := policyfile.Load(path)
	if err != nil {
		return nil, fmt.Errorf("not serving: %w", err)
	}
	for _, d := range set.Warnings() {
		log.LogAttrs(context.Background(), slog.LevelWarn, "policy warning", d.LogAttrs()...)
	}
	return set, nil
}
