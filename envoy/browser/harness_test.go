package browser

// The test harness: corsproc on a real gRPC listener, the Envoy emulator in
// front of a recording upstream, two page origins, and one headless Chromium
// per test driven through chromedp.
//
// Every server listens on 127.0.0.1 and every URL names 127.0.0.1: Chromium
// tries `localhost` on [::1] first. Page origin and API origin differ only by
// port, which makes them cross-origin but same-site, so a SameSite=Lax cookie
// set by the API origin is sent on a credentialed fetch from the page.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/corsproc/corsproc/envoy/emulator"
	"github.com/corsproc/corsproc/internal/testutil"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"
)

// Deadlines. Nothing in this package waits without one.
const (
	// browserLifetime bounds one test's browser, from start to close.
	browserLifetime = 90 * time.Second
	// actionTimeout bounds one chromedp action: a navigation or one fetch.
	actionTimeout = 20 * time.Second
	// fetchTimeout aborts a fetch inside the page, so a request that never
	// ends comes back as a result (TimeoutError) and not as a Go deadline.
	fetchTimeout = 15 * time.Second
	// messageTimeout is the emulator's ext_proc message timeout. Envoy's
	// default of 200 ms is too short for a race-enabled corsproc sharing two
	// cores with Chromium; with failure_mode_allow a timeout would pass the
	// request on without CORS headers and turn into a spurious CORS error.
	messageTimeout = 10 * time.Second
	// serverShutdown bounds the graceful stop of each test server.
	serverShutdown = 5 * time.Second
)

// requireBrowserEnv makes a missing Chromium a failure instead of a skip.
// CI sets it.
const requireBrowserEnv = "CORSPROC_REQUIRE_BROWSER"

// sessionCookie is the value of the cookie the upstream sets at /set-cookie.
const sessionCookie = "session=s3cr3t-e2e"

// Header values the upstream puts on every response.
const (
	exposedValue = "exposed-value"
	hiddenValue  = "hidden-value"
)

// policyYAML is the policy set of every test; {{page}} becomes the page
// origin. The second page origin ("other") is in no policy.
//
//   - web governs everything no other policy selects (default_policy).
//   - short-max-age is selected by path (match.path_prefixes).
//   - credentials is bound to the emulator route "credentials" by route name
//     (request attribute xds.route_name against match.routes).
//   - credentials-meta has no match: only the gRPC initial metadata
//     x-corsproc-policy, which the route "credentials-meta" sends, selects it.
//   - forward is bound to the route "forward" and forwards the preflights it
//     refuses to the upstream (unmatched_preflight: forward).
//   - the route "typo" sends x-corsproc-policy "credentials-mta", which no
//     policy is named: an unknown policy.
const policyYAML = `
default_policy: web
policies:
  - name: web
    allowed_origins: ["{{page}}"]
    allow_methods: [GET, PUT]
    allow_headers: [x-allowed]
    expose_headers: [x-exposed]
    preflight_max_age: 60
  - name: short-max-age
    match:
      path_prefixes: [/max-age-short/]
    allowed_origins: ["{{page}}"]
    allow_methods: [PUT]
    allow_headers: [x-allowed]
    preflight_max_age: 1
  - name: credentials
    match:
      routes: [credentials]
    allowed_origins: ["{{page}}"]
    allow_methods: [GET, PUT]
    allow_headers: [x-allowed]
    allow_credentials: true
  - name: credentials-meta
    allowed_origins: ["{{page}}"]
    allow_credentials: true
  - name: forward
    match:
      routes: [forward]
    allowed_origins: ["{{page}}"]
    allow_methods: [PUT]
    allow_headers: [x-allowed]
    unmatched_preflight: forward
`

// env is one complete request path: page origins → emulator → corsproc →
// upstream.
type env struct {
	pageOrigin  string // in the policies
	otherOrigin string // in no policy
	apiOrigin   string // the emulator, as the browser sees it
	policyYAML  string // corsproc's policy set, {{page}} replaced

	proxy    *emulator.Proxy
	api      *apiLog   // every exchange between the browser and the emulator
	upstream *upstream // every request that got past the emulator
}

// newEnv starts corsproc, the emulator, the upstream and both page servers.
// Everything stops when the test ends.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, processor.Options{})
}

// newEnvWith is newEnv with corsproc's processor options, e.g.
// ExplainRefusals as corsproc dev sets it.
func newEnvWith(t *testing.T, opts processor.Options) *env {
	t.Helper()
	return newEnvConfig(t, opts, nil)
}

// newEnvConfig is newEnvWith with the emulated Envoy's configuration
// changed by mod (nil: none), e.g. to single-message mode.
func newEnvConfig(t *testing.T, opts processor.Options, mod func(*emulator.Config)) *env {
	t.Helper()
	e := &env{upstream: &upstream{}}

	pageLis := listen(t)
	e.pageOrigin = "http://" + pageLis.Addr().String()
	serve(t, pageLis, pageHandler("allowed page"))
	e.otherOrigin = "http://" + serve(t, listen(t), pageHandler("other page")).String()

	upstreamAddr := serve(t, listen(t), e.upstream)

	e.policyYAML = strings.ReplaceAll(policyYAML, "{{page}}", e.pageOrigin)
	conn := startCorsproc(t, e.policyYAML, opts)
	cfg := emulator.Config{
		// The browser meets the newest Envoy release (docs/envoy.md,
		// "Envoy releases"); envoy/e2e covers every release profile.
		Release:  emulator.Newest,
		Upstream: "http://" + upstreamAddr.String(),
		Routes: []emulator.Route{
			{Name: "credentials", PathPrefix: "/credentials/"},
			{
				Name:       "credentials-meta",
				PathPrefix: "/credentials-meta/",
				GRPCInitialMetadata: []emulator.Metadata{
					{Key: processor.MetadataPolicy, Value: "credentials-meta"},
				},
			},
			{Name: "forward", PathPrefix: "/forward/"},
			{
				Name:       "typo",
				PathPrefix: "/typo/",
				GRPCInitialMetadata: []emulator.Metadata{
					{Key: processor.MetadataPolicy, Value: "credentials-mta"},
				},
			},
			{Name: "api", PathPrefix: "/"},
		},
		AllowModeOverride: true,
		RequestAttributes: []string{"xds.route_name"},
		MessageTimeout:    messageTimeout,
		FailureModeAllow:  true,
	}
	if mod != nil {
		mod(&cfg)
	}
	proxy, err := emulator.New(cfg, conn)
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	e.proxy = proxy
	e.api = &apiLog{next: proxy}
	e.apiOrigin = "http://" + serve(t, listen(t), e.api).String()
	t.Cleanup(proxy.CloseIdleConnections)
	// Registered before the browser's cleanup, so it runs after the browser
	// is closed and every request is over.
	t.Cleanup(func() { e.wantHealthyPath(t) })
	return e
}

// wantHealthyPath checks that corsproc decided every request. With
// failure_mode_allow a processor that fails or times out lets the request
// through without CORS headers, and the browser then rejects it: a negative
// case would pass for the wrong reason. So no request may have failed open,
// every request must have had its ext_proc stream, and every immediate
// response must be a preflight the browser sent, and every preflight the
// browser sent must be answered by corsproc or, forwarded by
// unmatched_preflight: forward, reach the upstream.
func (e *env) wantHealthyPath(t *testing.T) {
	t.Helper()
	s := e.proxy.Stats()
	if s.FailOpen != 0 || s.ProcessorErrors != 0 || s.Timeouts != 0 || s.SpuriousResponses != 0 ||
		s.ClosedByProcessor != 0 || s.InvalidMutations != 0 || s.UpstreamErrors != 0 || s.NoRoute != 0 {
		t.Errorf("the emulator saw failures; results of this test are not corsproc's decisions: %+v", s)
	}
	if s.Streams != s.Requests {
		t.Errorf("%d requests but %d ext_proc streams; every request must reach corsproc: %+v", s.Requests, s.Streams, s)
	}
	if n, fwd := e.api.preflightCount(), len(e.upstream.options()); s.ImmediateResponses+fwd != n {
		t.Errorf("%d immediate responses from corsproc and %d preflights forwarded to the upstream, %d preflights from the browser; want the sum equal", s.ImmediateResponses, fwd, n)
	}
}

// startCorsproc serves corsproc with the policy on a loopback gRPC listener
// and returns a client connection to it, as Envoy's gRPC service would have.
func startCorsproc(t *testing.T, yaml string, opts processor.Options) *grpc.ClientConn {
	t.Helper()
	set, err := policyfile.Parse("browser-test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("policyfile.Parse: %v", err)
	}
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, processor.New(set, opts))
	lis := listen(t)
	go gs.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
	})
	return conn
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return l
}

// serve serves h on l until the test ends and returns l's address.
func serve(t *testing.T, l net.Listener, h http.Handler) net.Addr {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: actionTimeout}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve %s: %v", l.Addr(), err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), serverShutdown)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	})
	return l.Addr()
}

// pageHandler serves the page the browser runs its fetches from. The test
// waits for #ready before it evaluates anything.
func pageHandler(title string) http.Handler {
	page := fmt.Sprintf(`<!doctype html>
<html><head><meta charset="utf-8"><title>%s</title></head>
<body><p id="ready">%s</p><script>window.corsprocPage = true;</script></body></html>
`, title, title)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r) // also answers /favicon.ico
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, page)
	})
}

// seenRequest is a request as the upstream received it.
type seenRequest struct {
	Method string
	Path   string
	Header http.Header
}

// upstream is the application behind the emulator. It records every request
// and answers `upstream saw METHOD PATH`, with two non-safelisted response
// headers (X-Exposed, X-Hidden). Under /upstream-cors/ it also sends its own
// Access-Control-Allow-Origin: *, which corsproc must strip; under a path
// holding /upstream-cors-all/, every CORS header that would allow the
// request (the request's Origin, credentials, its method and headers), as a
// permissive application sends them. /set-cookie sets the session cookie.
type upstream struct {
	mu   sync.Mutex
	reqs []seenRequest
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, seenRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()})
	u.mu.Unlock()

	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Exposed", exposedValue)
	h.Set("X-Hidden", hiddenValue)
	if strings.HasPrefix(r.URL.Path, "/upstream-cors/") {
		h.Set("Access-Control-Allow-Origin", "*")
	}
	if strings.Contains(r.URL.Path, "/upstream-cors-all/") {
		h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Allow-Methods", "GET, PUT, DELETE")
		h.Set("Access-Control-Allow-Headers", "x-allowed, x-denied")
		h.Set("Access-Control-Expose-Headers", "x-hidden")
	}
	if r.URL.Path == "/set-cookie" {
		name, value, _ := strings.Cut(sessionCookie, "=")
		http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	fmt.Fprintf(w, "upstream saw %s %s", r.Method, r.URL.Path)
}

// requests returns what the upstream saw for path; an empty method means any.
func (u *upstream) requests(method, path string) []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []seenRequest
	for _, r := range u.reqs {
		if r.Path == path && (method == "" || r.Method == method) {
			out = append(out, r)
		}
	}
	return out
}

// options returns every OPTIONS request the upstream saw, on any path.
func (u *upstream) options() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []seenRequest
	for _, r := range u.reqs {
		if r.Method == http.MethodOptions {
			out = append(out, r)
		}
	}
	return out
}

// exchange is one request from the browser to the API origin and the answer
// the emulator gave it.
type exchange struct {
	Method    string
	Path      string
	Preflight bool // OPTIONS with Access-Control-Request-Method
	Request   http.Header
	Status    int
	Response  http.Header
	At        time.Time // when the answer's headers were written
}

// apiLog wraps the emulator and records every exchange, so a test can see
// exactly what the browser was sent, preflights included: corsproc answers
// preflights itself, so the upstream never sees them.
type apiLog struct {
	next http.Handler

	mu        sync.Mutex
	exchanges []exchange
}

func (a *apiLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &recordingWriter{ResponseWriter: w, status: http.StatusOK}
	rw.ex = exchange{
		Method:    r.Method,
		Path:      r.URL.Path,
		Preflight: r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "",
		Request:   r.Header.Clone(),
	}
	a.next.ServeHTTP(rw, r)
	rw.snapshot()
	a.mu.Lock()
	a.exchanges = append(a.exchanges, rw.ex)
	a.mu.Unlock()
}

// preflights returns the preflights the browser sent for path.
func (a *apiLog) preflights(path string) []exchange {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []exchange
	for _, ex := range a.exchanges {
		if ex.Preflight && ex.Path == path {
			out = append(out, ex)
		}
	}
	return out
}

// preflightCount returns how many preflights the browser sent in all.
func (a *apiLog) preflightCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, ex := range a.exchanges {
		if ex.Preflight {
			n++
		}
	}
	return n
}

// last returns the last non-preflight exchange for method and path.
func (a *apiLog) last(t *testing.T, method, path string) exchange {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.exchanges) - 1; i >= 0; i-- {
		if ex := a.exchanges[i]; !ex.Preflight && ex.Method == method && ex.Path == path {
			return ex
		}
	}
	t.Fatalf("the API origin never saw %s %s", method, path)
	return exchange{}
}

// recordingWriter captures the status and headers the emulator writes.
type recordingWriter struct {
	http.ResponseWriter
	ex    exchange
	wrote bool
	// status is the status to record if the handler never calls WriteHeader.
	status int
}

func (w *recordingWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.status = code
		w.snapshot()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.snapshot()
	return w.ResponseWriter.Write(p)
}

// snapshot records the response headers once, as they go out.
func (w *recordingWriter) snapshot() {
	if w.wrote {
		return
	}
	w.wrote = true
	w.ex.Status = w.status
	w.ex.Response = w.ResponseWriter.Header().Clone()
	w.ex.At = time.Now()
}

// Unwrap lets http.ResponseController reach Flush and friends.
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// chromiumPath finds Chromium, or skips the test loudly; with
// CORSPROC_REQUIRE_BROWSER=1 a missing Chromium fails it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	const msg = "!!!!! CHROMIUM NOT FOUND: the browser end-to-end tests DID NOT RUN. " +
		"Install it with `apt-get install -y chromium` (or run `make test` as root) !!!!!"
	if os.Getenv(requireBrowserEnv) == "1" {
		t.Fatal(msg + " (" + requireBrowserEnv + "=1 makes this a failure)")
	}
	t.Skip(msg)
	return ""
}

// tab is the one tab of a headless Chromium that lives as long as the test.
type tab struct {
	t   *testing.T
	ctx context.Context // has run once: actions derive their deadlines from it
}

// newTab starts a fresh Chromium with its own profile and opens a tab. The
// browser is closed, and its profile removed, when the test ends; if the
// test failed, Chromium's own output is logged.
func newTab(t *testing.T) *tab {
	t.Helper()
	exe := chromiumPath(t)
	profile := filepath.Join(t.TempDir(), "profile")
	out := &syncBuffer{}

	life, cancelLife := context.WithTimeout(context.Background(), browserLifetime)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(life,
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // we run as root in CI
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("mute-audio", true),
		chromedp.CombinedOutput(out),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx,
		chromedp.WithErrorf(out.logf("chromedp error: ")),
		chromedp.WithLogf(out.logf("chromedp: ")))

	t.Cleanup(func() {
		// Close the browser gracefully, so its child processes are gone
		// before the profile is removed.
		cctx, cancel := context.WithTimeout(ctx, serverShutdown)
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing Chromium: %v", err)
		}
		cancel()
		cancelCtx()
		cancelAlloc()
		cancelLife()
		if err := removeAllRetry(profile, serverShutdown); err != nil {
			t.Errorf("removing the Chromium profile: %v", err)
		}
		if t.Failed() {
			t.Logf("Chromium output (tail):\n%s", out.tail(8<<10))
		}
	})

	// The first Run starts the browser and ties it to ctx, which must not
	// carry a shorter deadline than the browser's life (browserLifetime
	// bounds it).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium %s: %v\n%s", exe, err, out.tail(8<<10))
	}
	return &tab{t: t, ctx: ctx}
}

// open navigates to origin's page and waits until it is ready.
func (b *tab) open(origin string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(origin+"/"),
		chromedp.WaitReady(chromedp.CSS("#ready")),
	); err != nil {
		b.t.Fatalf("opening %s: %v", origin, err)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.origin`))
	if err != nil {
		b.t.Fatalf("reading the origin of %s: %v", origin, err)
	}
	if got != origin {
		b.t.Fatalf("page origin is %q, want %q", got, origin)
	}
}

// navigate loads url as a top-level page (not a fetch) and waits for it.
func (b *tab) navigate(url string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("navigating to %s: %v", url, err)
	}
}

// fetchResult is what the page's fetch returned, as JSON.
type fetchResult struct {
	OK     bool   `json:"ok"`
	Status int    `json:"status"`
	Body   string `json:"body"`
	// Headers holds response.headers.get(name) for each name asked for;
	// nil means JavaScript got null.
	Headers   map[string]*string `json:"headers"`
	ErrorName string             `json:"errorName"` // "" when fetch resolved
	Error     string             `json:"error"`
}

// fetchJS runs fetch(url, init) in the page and reads the body and the asked
// for response headers. It never rejects: a rejection comes back as
// errorName and error, so the test sees the browser's TypeError as data.
const fetchJS = `(async (url, init, names, timeoutMs) => {
	init.signal = AbortSignal.timeout(timeoutMs);
	try {
		const r = await fetch(url, init);
		const body = await r.text();
		const headers = {};
		for (const n of names) headers[n] = r.headers.get(n);
		return {ok: r.ok, status: r.status, body, headers, errorName: "", error: ""};
	} catch (e) {
		return {ok: false, status: 0, body: "", headers: {}, errorName: String(e && e.name), error: String(e)};
	}
})(%s, %s, %s, %d)`

// fetch runs fetch in the page that is open, with init as fetch's options
// (method, headers, credentials, body), and returns what JavaScript saw.
func (b *tab) fetch(url string, init map[string]any, readHeaders ...string) fetchResult {
	b.t.Helper()
	if init == nil {
		init = map[string]any{}
	}
	if readHeaders == nil {
		readHeaders = []string{}
	}
	expr := fmt.Sprintf(fetchJS, mustJSON(b.t, url), mustJSON(b.t, init), mustJSON(b.t, readHeaders), fetchTimeout.Milliseconds())
	ctx, cancel := context.WithTimeout(b.ctx, actionTimeout)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.Evaluate[fetchResult](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("fetch %s: %v", url, err)
	}
	return res
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantOK checks that JavaScript could read the response and its body.
func wantOK(t *testing.T, what string, res fetchResult, wantBody string) {
	t.Helper()
	if res.ErrorName != "" || !res.OK || res.Body != wantBody {
		t.Errorf("%s: got %+v; want a readable 2xx response with body %q", what, res, wantBody)
	}
}

// wantCORSError checks that fetch rejected with the TypeError a CORS
// failure gives.
func wantCORSError(t *testing.T, what string, res fetchResult) {
	t.Helper()
	if res.ErrorName != "TypeError" {
		t.Errorf("%s: got %+v; want fetch to reject with TypeError (a CORS failure)", what, res)
	}
}

// wantNoUpstreamOptions checks that no preflight leaked to the upstream.
func wantNoUpstreamOptions(t *testing.T, e *env) {
	t.Helper()
	if got := e.upstream.options(); len(got) != 0 {
		t.Errorf("the upstream saw %d OPTIONS requests (%+v); corsproc must answer every preflight", len(got), got)
	}
}

// syncBuffer collects Chromium's output and chromedp's log lines.
type syncBuffer struct{ testutil.SyncBuffer }

// logf returns a printf-style logger into the buffer. chromedp may log from
// its goroutines after the test ends, when t.Logf would panic.
func (b *syncBuffer) logf(prefix string) func(string, ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(b, prefix+format+"\n", args...)
	}
}

// tail returns the last n bytes of the buffer, without Chromium's D-Bus
// complaints (a container has no system bus), which are noise.
func (b *syncBuffer) tail(n int) string {
	var kept []string
	for line := range strings.Lines(b.String()) {
		if !strings.Contains(line, "dbus/") {
			kept = append(kept, line)
		}
	}
	s := strings.Join(kept, "")
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// removeAllRetry removes dir, trying again while Chromium's last child
// processes may still be writing into it, until limit.
func removeAllRetry(dir string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := os.RemoveAll(dir)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
