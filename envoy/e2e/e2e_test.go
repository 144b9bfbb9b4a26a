// Package e2e tests corsproc end to end, the way it runs in production: a
// browser's HTTP request reaches Envoy (the emulator, served over HTTP),
// Envoy asks corsproc (processor.New on a real gRPC server over loopback TCP)
// and forwards to the application (a recording upstream), unless corsproc
// answers itself.
//
// Nothing sleeps: every wait is on a condition, with a deadline.
package e2e

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/corsproc/corsproc/envoy/emulator"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"
)

// waitLimit bounds every wait; nothing should come close to it.
const waitLimit = 20 * time.Second

// policyYAML governs api.example.com by host, the storefront and legacy
// routes by route name, and the partners route by the x-corsproc-policy
// metadata its route sets; the typo route's metadata names a policy the
// file does not define. Any other host is not governed.
const policyYAML = `
policies:
  - name: web
    match:
      hosts: [api.example.com]
    allowed_origins: [https://app.example.com]
    allow_methods: [GET, POST, PUT, DELETE]
    allow_headers: [content-type, authorization]
    expose_headers: [x-request-id]
    preflight_max_age: 600
  - name: storefront
    match:
      routes: [storefront]
    allowed_origins: [https://shop.example.com]
  - name: partners
    allowed_origins: [https://partner.example.net]
    allow_credentials: true
  - name: legacy
    match:
      routes: [legacy]
    allowed_origins: [https://app.example.com]
    unmatched_preflight: forward
`

const (
	host          = "api.example.com"
	appOrigin     = "https://app.example.com"
	shopOrigin    = "https://shop.example.com"
	partnerOrigin = "https://partner.example.net"
	evilOrigin    = "https://evil.example"
)

// routes is the emulated Envoy's route table.
func routes() []emulator.Route {
	return []emulator.Route{
		{Name: "storefront", PathPrefix: "/shop/"},
		{Name: "partners", PathPrefix: "/partners/", GRPCInitialMetadata: []emulator.Metadata{
			{Key: processor.MetadataPolicy, Value: "partners"},
		}},
		{Name: "typo", PathPrefix: "/typo/", GRPCInitialMetadata: []emulator.Metadata{
			{Key: processor.MetadataPolicy, Value: "partnres"},
		}},
		{Name: "legacy", PathPrefix: "/legacy/"},
		{Name: "api"},
	}
}

// stack is one deployment: upstream, corsproc, Envoy.
type stack struct {
	t     *testing.T
	up    *upstream
	gs    *grpc.Server
	proxy *emulator.Proxy
	front *httptest.Server
	// client is the browser.
	client *http.Client
}

// baseConfig is the Envoy configuration corsproc ships: allow_mode_override,
// the route name attribute. message_timeout is generous here: timeouts are
// the emulator's own tests' business, and these tests run loaded under the
// race detector.
func baseConfig() emulator.Config {
	return emulator.Config{
		Routes:            routes(),
		AllowModeOverride: true,
		RequestAttributes: []string{emulator.AttributeRouteName},
		MessageTimeout:    waitLimit,
	}
}

// newStack starts corsproc with policyYAML on loopback gRPC, an upstream,
// and an emulated Envoy configured by baseConfig and then mod.
func newStack(t *testing.T, mod func(*emulator.Config)) *stack {
	t.Helper()
	set, err := policyfile.Parse("e2e.yaml", []byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, processor.New(set, processor.Options{}))
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return newStackTo(t, lis.Addr().String(), gs, mod)
}

// newStackTo starts an upstream and an Envoy whose ext_proc filter calls the
// processor at addr.
func newStackTo(t *testing.T, addr string, gs *grpc.Server, mod func(*emulator.Config)) *stack {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &stack{t: t, up: newUpstream(t), gs: gs}
	cfg := baseConfig()
	cfg.Upstream = s.up.srv.URL
	if mod != nil {
		mod(&cfg)
	}
	s.proxy, err = emulator.New(cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	s.front = httptest.NewServer(s.proxy)
	t.Cleanup(s.front.Close)
	t.Cleanup(s.proxy.CloseIdleConnections)
	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	s.client = &http.Client{Transport: tr, Timeout: waitLimit}
	return s
}

// browserRequest is a request as a browser sends it.
type browserRequest struct {
	method string // default GET
	host   string // default api.example.com
	path   string // default /
	origin string // "" sends no Origin
	// acrm and acrh make an OPTIONS a preflight.
	acrm, acrh string
}

// do sends r through Envoy and returns the response with its body read.
func (s *stack) do(r browserRequest) (*http.Response, string, error) {
	method := cmp.Or(r.method, "GET")
	req, err := http.NewRequest(method, s.front.URL+cmp.Or(r.path, "/"), nil)
	if err != nil {
		return nil, "", err
	}
	req.Host = cmp.Or(r.host, host)
	if r.origin != "" {
		req.Header.Set("Origin", r.origin)
	}
	if r.acrm != "" {
		req.Header.Set("Access-Control-Request-Method", r.acrm)
	}
	if r.acrh != "" {
		req.Header.Set("Access-Control-Request-Headers", r.acrh)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

func (s *stack) mustDo(r browserRequest) (*http.Response, string) {
	s.t.Helper()
	resp, body, err := s.do(r)
	if err != nil {
		s.t.Fatalf("%+v: %v", r, err)
	}
	return resp, body
}

// corsHeaders are the response headers whose exact values these tests
// check; any not expected must be absent.
var corsHeaders = []string{
	"Access-Control-Allow-Origin",
	"Access-Control-Allow-Credentials",
	"Access-Control-Allow-Methods",
	"Access-Control-Allow-Headers",
	"Access-Control-Expose-Headers",
	"Access-Control-Max-Age",
	"Access-Control-Allow-Private-Network",
	"Vary",
}

// hdrs is an expectation on corsHeaders.
type hdrs map[string][]string

// checkCORS returns what is wrong with resp's CORS headers, "" if nothing.
func checkCORS(resp *http.Response, want hdrs) string {
	var problems []string
	for _, k := range corsHeaders {
		got := resp.Header.Values(k)
		if !slices.Equal(got, want[k]) {
			problems = append(problems, fmt.Sprintf("%s = %q, want %q", k, got, want[k]))
		}
	}
	return strings.Join(problems, "; ")
}

func wantCORS(t *testing.T, resp *http.Response, want hdrs) {
	t.Helper()
	if p := checkCORS(resp, want); p != "" {
		t.Error(p)
	}
}

// Expected header sets.
var (
	allowedApp = hdrs{
		"Access-Control-Allow-Origin":   {appOrigin},
		"Access-Control-Expose-Headers": {"x-request-id"},
		"Vary":                          {"Origin"},
	}
	varyOnly          = hdrs{"Vary": {"Origin"}}
	preflightAllowApp = hdrs{
		"Access-Control-Allow-Origin":  {appOrigin},
		"Access-Control-Allow-Methods": {"GET, POST, PUT, DELETE"},
		"Access-Control-Allow-Headers": {"content-type, authorization"},
		"Access-Control-Max-Age":       {"600"},
		"Vary":                         {"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"},
	}
	allowedShop    = hdrs{"Access-Control-Allow-Origin": {shopOrigin}, "Vary": {"Origin"}}
	allowedPartner = hdrs{
		"Access-Control-Allow-Origin":      {partnerOrigin},
		"Access-Control-Allow-Credentials": {"true"},
		"Vary":                             {"Origin"},
	}
)

// upstream is the application: it records what it saw and answers as the
// query asks: status=N, acao=V (sets Access-Control-Allow-Origin),
// vary=V (sets Vary).
type upstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []string // "METHOD /path?query"
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.got = append(u.got, r.Method+" "+r.URL.RequestURI())
		u.mu.Unlock()
		q := r.URL.Query()
		if q.Get("hang") != "" {
			// Never answers: Envoy gives up first (the route's timeout).
			<-r.Context().Done()
			return
		}
		if v := q.Get("acao"); v != "" {
			w.Header().Set("Access-Control-Allow-Origin", v)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
		}
		if v := q.Get("vary"); v != "" {
			w.Header().Set("Vary", v)
		}
		var extra int
		fmt.Sscan(q.Get("headers"), &extra)
		for i := range extra {
			w.Header().Set(fmt.Sprintf("X-Extra-%03d", i), "v")
		}
		w.Header().Set("Content-Type", "text/plain")
		status := 200
		fmt.Sscan(q.Get("status"), &status)
		w.WriteHeader(status)
		io.WriteString(w, "app")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.got)
}

func (s *stack) wantUpstream(want ...string) {
	s.t.Helper()
	if got := s.up.seen(); !slices.Equal(got, want) {
		s.t.Errorf("the upstream saw %q, want %q", got, want)
	}
}

// messages returns how many ext_proc messages fn cost.
func (s *stack) messages(fn func()) int {
	before := s.proxy.Stats().MessagesSent
	fn()
	return s.proxy.Stats().MessagesSent - before
}

func TestAllowedSimpleGET(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	var resp *http.Response
	var body string
	n := s.messages(func() { resp, body = s.mustDo(browserRequest{path: "/items?page=2", origin: appOrigin}) })
	if resp.StatusCode != 200 || body != "app" {
		t.Errorf("%d %q, want the app's 200", resp.StatusCode, body)
	}
	wantCORS(t, resp, allowedApp)
	s.wantUpstream("GET /items?page=2")
	if n != 2 {
		t.Errorf("%d ext_proc messages, want 2 (request and response headers)", n)
	}
}

// A governed request without Origin is not a CORS request; its response
// still varies on Origin.
func TestNonCORSRequestGetsVary(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	resp, _ := s.mustDo(browserRequest{})
	wantCORS(t, resp, varyOnly)
}

func TestDisallowedOrigin(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	resp, body := s.mustDo(browserRequest{origin: evilOrigin})
	if resp.StatusCode != 200 || body != "app" {
		t.Errorf("%d %q: corsproc does not block actual requests, the browser does", resp.StatusCode, body)
	}
	wantCORS(t, resp, varyOnly)
}

func TestPreflightAnsweredByCorsproc(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	var resp *http.Response
	var body string
	n := s.messages(func() {
		resp, body = s.mustDo(browserRequest{method: "OPTIONS", path: "/items", origin: appOrigin, acrm: "PUT", acrh: "content-type"})
	})
	if resp.StatusCode != 204 || body != "" {
		t.Errorf("%d %q, want 204 without a body", resp.StatusCode, body)
	}
	wantCORS(t, resp, preflightAllowApp)
	s.wantUpstream()
	if n != 1 {
		t.Errorf("%d ext_proc messages, want 1", n)
	}
}

func TestFailedPreflight(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	for _, r := range []browserRequest{
		{method: "OPTIONS", origin: appOrigin, acrm: "PATCH"},
		{method: "OPTIONS", origin: appOrigin, acrm: "PUT", acrh: "x-custom"},
		{method: "OPTIONS", origin: evilOrigin, acrm: "PUT"},
	} {
		resp, _ := s.mustDo(r)
		if resp.StatusCode != 403 {
			t.Errorf("%+v: status %d, want 403", r, resp.StatusCode)
		}
		if p := checkCORS(resp, nil); p != "" {
			t.Errorf("%+v: %s", r, p)
		}
	}
	s.wantUpstream()
}

// The browser must see the application's real error, not a CORS error.
func TestUpstreamErrorsKeepCORSHeaders(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	for _, status := range []int{401, 500} {
		resp, body := s.mustDo(browserRequest{path: fmt.Sprintf("/fail?status=%d", status), origin: appOrigin})
		if resp.StatusCode != status || body != "app" {
			t.Errorf("status %d: got %d %q", status, resp.StatusCode, body)
		}
		wantCORS(t, resp, allowedApp)
	}
}

// An application that sets its own CORS headers behind corsproc: corsproc's
// replace them, one ACAO only.
func TestUpstreamACAOReplaced(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	resp, _ := s.mustDo(browserRequest{path: "/?acao=*", origin: appOrigin})
	wantCORS(t, resp, allowedApp)
	resp, _ = s.mustDo(browserRequest{path: "/?acao=" + evilOrigin, origin: evilOrigin})
	wantCORS(t, resp, varyOnly)
}

// corsproc appends Origin to the upstream's Vary. Vary is a header Envoy
// keeps inline, so the append joins the values on one line
// (docs/extproc-protocol.md, "Header mutations").
func TestVaryAppendedToUpstreamVary(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	resp, _ := s.mustDo(browserRequest{path: "/?vary=Accept-Encoding", origin: appOrigin})
	want := hdrs{
		"Access-Control-Allow-Origin":   {appOrigin},
		"Access-Control-Expose-Headers": {"x-request-id"},
		"Vary":                          {"Accept-Encoding,Origin"},
	}
	wantCORS(t, resp, want)
}

// The storefront route is bound to its policy by route name (match.routes),
// though its host matches another policy.
func TestRouteBindingByRouteName(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	resp, _ := s.mustDo(browserRequest{path: "/shop/cart", origin: shopOrigin})
	wantCORS(t, resp, allowedShop)
	resp, _ = s.mustDo(browserRequest{path: "/shop/cart", origin: appOrigin})
	wantCORS(t, resp, varyOnly)
	resp, _ = s.mustDo(browserRequest{method: "OPTIONS", path: "/shop/cart", origin: shopOrigin, acrm: "DELETE"})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != shopOrigin {
		t.Errorf("storefront preflight: %d %v", resp.StatusCode, resp.Header)
	}
	s.wantUpstream("GET /shop/cart", "GET /shop/cart")
}

// The partners route is bound to its policy by gRPC initial metadata
// (ExtProcPerRoute grpc_initial_metadata x-corsproc-policy).
func TestRouteBindingByMetadata(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	resp, _ := s.mustDo(browserRequest{path: "/partners/orders", origin: partnerOrigin})
	wantCORS(t, resp, allowedPartner)
	resp, _ = s.mustDo(browserRequest{path: "/partners/orders", origin: appOrigin})
	wantCORS(t, resp, varyOnly)
}

// A route whose x-corsproc-policy names a policy the file does not define
// (a typo, a renamed policy) is governed and refused: the upstream's own
// CORS headers never reach the browser, a preflight is answered 403 by
// corsproc and never reaches the upstream. (Before, the response phase was
// skipped and the upstream's Access-Control-Allow-Origin and
// -Credentials passed.)
func TestUnknownPolicyRefuses(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	resp, body := s.mustDo(browserRequest{path: "/typo/orders?acao=" + evilOrigin, origin: evilOrigin})
	if resp.StatusCode != 200 || body != "app" {
		t.Errorf("actual request: %d %q, want the app's 200", resp.StatusCode, body)
	}
	wantCORS(t, resp, varyOnly)
	resp, _ = s.mustDo(browserRequest{path: "/typo/orders?acao=*"})
	wantCORS(t, resp, varyOnly)
	resp, body = s.mustDo(browserRequest{method: "OPTIONS", path: "/typo/orders?acao=" + partnerOrigin, origin: partnerOrigin, acrm: "PUT"})
	if resp.StatusCode != 403 || body != "" {
		t.Errorf("preflight: %d %q, want corsproc's 403", resp.StatusCode, body)
	}
	wantCORS(t, resp, hdrs{})
	s.wantUpstream("GET /typo/orders?acao="+evilOrigin, "GET /typo/orders?acao=*")
}

// unmatched_preflight: forward sends a failed preflight to the application
// (for its own OPTIONS handling), but corsproc removes every CORS header
// from the answer, so the application can never allow what corsproc
// refused; a preflight that passes is answered by corsproc. (Before, the
// forwarded preflight's response phase was skipped and the application's
// Access-Control-Allow-Origin and -Credentials reached the browser.)
func TestForwardedPreflightStripped(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	resp, body := s.mustDo(browserRequest{method: "OPTIONS", path: "/legacy/x?acao=" + evilOrigin, origin: evilOrigin, acrm: "PUT"})
	if resp.StatusCode != 200 || body != "app" {
		t.Errorf("forwarded preflight: %d %q, want the app's 200", resp.StatusCode, body)
	}
	wantCORS(t, resp, varyOnly)
	resp, _ = s.mustDo(browserRequest{method: "OPTIONS", path: "/legacy/x?acao=*", origin: appOrigin, acrm: "PURGE"})
	wantCORS(t, resp, varyOnly)
	resp, _ = s.mustDo(browserRequest{method: "OPTIONS", path: "/legacy/x", origin: appOrigin, acrm: "PUT"})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != appOrigin {
		t.Errorf("allowed preflight: %d %v, want corsproc's 204", resp.StatusCode, resp.Header)
	}
	s.wantUpstream("OPTIONS /legacy/x?acao="+evilOrigin, "OPTIONS /legacy/x?acao=*")
}

// When corsproc is down, failure_mode_allow decides: the request reaches
// the application without CORS headers (the browser then refuses the
// response to other origins), or Envoy answers 500.
func TestProcessorDown(t *testing.T) {
	t.Parallel()
	type scenario struct {
		name  string
		start func(t *testing.T, fma bool) *stack
	}
	for _, sc := range []scenario{
		{"stopped_server", func(t *testing.T, fma bool) *stack {
			s := newStack(t, func(c *emulator.Config) { c.FailureModeAllow = fma })
			// Up first, so that Envoy holds a connection, then gone.
			resp, _ := s.mustDo(browserRequest{origin: appOrigin})
			wantCORS(t, resp, allowedApp)
			s.gs.Stop()
			return s
		}},
		{"unreachable_address", func(t *testing.T, fma bool) *stack {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := lis.Addr().String()
			lis.Close()
			return newStackTo(t, addr, nil, func(c *emulator.Config) { c.FailureModeAllow = fma })
		}},
	} {
		for _, fma := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/failure_mode_allow=%v", sc.name, fma), func(t *testing.T) {
				t.Parallel()
				s := sc.start(t, fma)
				before := s.up.seen()
				errorsBefore := s.proxy.Stats().ProcessorErrors
				resp, body := s.mustDo(browserRequest{path: "/down", origin: appOrigin})
				if p := checkCORS(resp, nil); p != "" {
					t.Errorf("CORS headers from a processor that is down: %s", p)
				}
				seen := s.up.seen()[len(before):]
				if fma {
					if resp.StatusCode != 200 || body != "app" || !slices.Equal(seen, []string{"GET /down"}) {
						t.Errorf("%d %q, upstream saw %q: want the request to reach the app", resp.StatusCode, body, seen)
					}
				} else {
					if resp.StatusCode != 500 || len(seen) != 0 {
						t.Errorf("%d, upstream saw %q: want 500 and nothing upstream", resp.StatusCode, seen)
					}
				}
				st := s.proxy.Stats()
				if st.ProcessorErrors != errorsBefore+1 || st.Timeouts != 0 {
					t.Errorf("stats %+v, want one more processor error and no timeout", st)
				}
			})
		}
	}
}

// localReplyStacks returns two stacks under release rel, with
// failure_mode_allow, whose Envoy generates local replies after corsproc's
// request phase: on s, the route of /slow/ times out at once, an
// authentication filter answers 401 to /private/ without Authorization, and
// no route matches other paths than /api/ (no catch-all route); down is the
// same with its upstream unreachable. mod, if set, is applied last.
func localReplyStacks(t *testing.T, rel emulator.Release, mod func(*emulator.Config)) (s, down *stack) {
	t.Helper()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := "http://" + dead.Addr().String()
	dead.Close()
	cfg := func(c *emulator.Config) {
		c.Release = rel
		c.FailureModeAllow = true
		c.Routes = []emulator.Route{
			{Name: "slow", PathPrefix: "/slow/", Timeout: time.Millisecond},
			{Name: "private", PathPrefix: "/private/"},
			{Name: "api", PathPrefix: "/api/"},
		}
		c.LaterFilter = func(method, path string, h http.Header) *emulator.LocalReply {
			if strings.HasPrefix(path, "/private/") && h.Get("Authorization") == "" {
				return &emulator.LocalReply{Status: 401, Body: "Jwt is missing", Details: "jwt_authn_access_denied{Jwt_is_missing}"}
			}
			return nil
		}
		if mod != nil {
			mod(c)
		}
	}
	s = newStack(t, cfg)
	down = newStack(t, func(c *emulator.Config) { cfg(c); c.Upstream = deadAddr })
	return s, down
}

// The scenarios a browser meets, under each Envoy release profile, with
// envoy/envoy.yaml's filter settings: what the browser receives. Replies
// Envoy generates itself after corsproc's request phase (the upstream down,
// the route's timeout, an authentication filter's 401, a path no route
// matches) carry corsproc's CORS headers only in the releases that send
// local replies to ext_proc (up to 1.33.0, and 1.37 on); in 1.33.1 to 1.36
// they carry none, and the browser reports a CORS error
// (docs/envoy.md, "Envoy releases").
func TestScenariosByRelease(t *testing.T) {
	t.Parallel()
	for _, rel := range emulator.Releases() {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			s, down := localReplyStacks(t, rel, func(c *emulator.Config) {
				c.NormalizePath, c.MergeSlashes = true, true
			})
			// What corsproc puts on a response to appOrigin, where the
			// release lets it see the response.
			generated := hdrs(nil)
			if rel.LocalRepliesToProcessor {
				generated = allowedApp
			}
			for _, sc := range []struct {
				name   string
				s      *stack
				r      browserRequest
				status int
				want   hdrs
				// upstream is what the app must have seen.
				upstream []string
			}{
				{"preflight", s, browserRequest{method: "OPTIONS", path: "/api/items", origin: appOrigin, acrm: "PUT", acrh: "content-type"},
					204, preflightAllowApp, nil},
				{"allowed", s, browserRequest{path: "/api/items", origin: appOrigin}, 200, allowedApp, []string{"GET /api/items"}},
				{"refused", s, browserRequest{path: "/api/items?acao=" + evilOrigin, origin: evilOrigin}, 200, varyOnly,
					[]string{"GET /api/items?acao=" + evilOrigin}},
				{"upstream_down", down, browserRequest{path: "/api/items", origin: appOrigin}, 503, generated, nil},
				{"upstream_timeout", s, browserRequest{path: "/slow/x?hang=1", origin: appOrigin}, 504, generated, nil},
				{"later_filter_401", s, browserRequest{path: "/private/x", origin: appOrigin}, 401, generated, nil},
				{"unrouted", s, browserRequest{path: "/elsewhere/x", origin: appOrigin}, 404, generated, nil},
				// corsproc answers a preflight on a path no route matches
				// with the policy the host selects: the actual request then
				// gets the 404 above.
				{"unrouted_preflight", s, browserRequest{method: "OPTIONS", path: "/elsewhere/x", origin: appOrigin, acrm: "PUT", acrh: "content-type"},
					204, preflightAllowApp, nil},
				// The path is normalized before routing and before corsproc
				// sees it.
				{"normalized_path", s, browserRequest{path: "/elsewhere/..//api/items", origin: appOrigin}, 200, allowedApp,
					[]string{"GET /api/items"}},
			} {
				before := len(sc.s.up.seen())
				resp, _ := sc.s.mustDo(sc.r)
				if resp.StatusCode != sc.status {
					t.Errorf("%s: status %d, want %d", sc.name, resp.StatusCode, sc.status)
				}
				if p := checkCORS(resp, sc.want); p != "" {
					t.Errorf("%s: %s", sc.name, p)
				}
				// The route's timeout may expire before the timed-out request
				// reaches the app, which may then see it at any later time,
				// during another scenario: it is left out of what the app
				// saw, whichever scenario it lands in.
				got := slices.DeleteFunc(slices.Clone(sc.s.up.seen()[before:]), func(p string) bool { return strings.HasSuffix(p, "?hang=1") })
				if sc.name != "upstream_timeout" && !slices.Equal(got, sc.upstream) {
					t.Errorf("%s: the upstream saw %q, want %q", sc.name, got, sc.upstream)
				}
			}
		})
	}
}

// An upstream response near Envoy's header map limit (100 headers by
// default) on a governed route: corsproc's headers would take it past the
// limit, and Envoy would answer 500 for the mutation whatever
// failure_mode_allow says. corsproc withholds them instead: the browser
// gets the app's answer, without CORS headers once they do not fit, never a
// 500 (docs/extproc-protocol.md, "Header mutations").
func TestResponseNearEnvoyHeaderLimit(t *testing.T) {
	t.Parallel()
	s := newStack(t, func(c *emulator.Config) { c.FailureModeAllow = true })
	// The app also sends Content-Type, Content-Length, Date and (acao=)
	// its own Access-Control-Allow-Origin and -Credentials: with :status,
	// 6 entries besides the extra headers. Envoy's codec takes up to 95
	// extra ones. corsproc removes the app's 2 CORS headers and adds 3.
	for n := 88; n <= 95; n++ {
		resp, body := s.mustDo(browserRequest{path: fmt.Sprintf("/?headers=%d&acao=%s", n, evilOrigin), origin: appOrigin})
		if resp.StatusCode != 200 || body != "app" {
			t.Errorf("%d extra headers: %d %q, want the app's answer", n, resp.StatusCode, body)
			continue
		}
		want := allowedApp
		if n+6-2+3 > 100 {
			// Withheld: the app's CORS headers are still removed.
			want = nil
		}
		if p := checkCORS(resp, want); p != "" {
			t.Errorf("%d extra headers: %s", n, p)
		}
	}
}

// The shipped ExtensionWithMatcher keeps requests without Origin away from
// corsproc; CORS requests cost two messages, preflights one. As in
// envoy/envoy-origin-only.yaml, every route appends Vary: Origin itself, so a
// response to a request corsproc never saw still carries it, after any Vary
// of the upstream's.
func TestSkipWithoutOriginMessageCost(t *testing.T) {
	t.Parallel()
	s := newStack(t, func(c *emulator.Config) {
		// envoy/envoy-origin-only.yaml: the virtual host appends Vary:
		// Origin, before ext_proc sees the response.
		c.SkipWithoutOrigin = true
		c.VirtualHost.ResponseHeadersToAdd = []emulator.HeaderValueOption{{Key: "vary", Value: "Origin", Append: true}}
	})
	for _, tc := range []struct {
		name string
		r    browserRequest
		want int
		// cors, when not nil, is the CORS headers the response must carry.
		cors hdrs
	}{
		{"no_origin", browserRequest{}, 0, varyOnly},
		{"no_origin_upstream_vary", browserRequest{path: "/?vary=Accept-Encoding"}, 0, hdrs{"Vary": {"Accept-Encoding,Origin"}}},
		// corsproc sees Envoy's Vary: Origin and appends its own to the
		// same line (docs/envoy.md, "Calling corsproc only for CORS requests").
		{"actual_request", browserRequest{origin: appOrigin}, 2, hdrs{
			"Access-Control-Allow-Origin":   {appOrigin},
			"Access-Control-Expose-Headers": {"x-request-id"},
			"Vary":                          {"Origin,Origin"},
		}},
		{"preflight", browserRequest{method: "OPTIONS", origin: appOrigin, acrm: "PUT"}, 1, nil},
	} {
		streams := s.proxy.Stats().Streams
		var resp *http.Response
		if n := s.messages(func() { resp, _ = s.mustDo(tc.r) }); n != tc.want {
			t.Errorf("%s: %d ext_proc messages, want %d", tc.name, n, tc.want)
		}
		if tc.want == 0 {
			if d := s.proxy.Stats().Streams - streams; d != 0 {
				t.Errorf("%s: %d streams opened, want 0", tc.name, d)
			}
		}
		if tc.cors != nil {
			if p := checkCORS(resp, tc.cors); p != "" {
				t.Errorf("%s: %s", tc.name, p)
			}
		}
	}
}

// A request no policy governs costs one message: corsproc skips the
// response phase with mode_override.
func TestUngovernedCostsOneMessage(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	overrides := s.proxy.Stats().ModeOverrides
	var resp *http.Response
	n := s.messages(func() { resp, _ = s.mustDo(browserRequest{host: "other.example.com", origin: appOrigin}) })
	if n != 1 {
		t.Errorf("%d ext_proc messages, want 1", n)
	}
	if d := s.proxy.Stats().ModeOverrides - overrides; d != 1 {
		t.Errorf("%d mode overrides honoured, want 1", d)
	}
	wantCORS(t, resp, nil)
	s.wantUpstream("GET /")
}

// The hot path: 200 concurrent requests of every kind, each with exactly
// its own headers.
func TestHotPathConcurrent(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	type kind struct {
		r        browserRequest
		status   int
		want     hdrs
		upstream bool
	}
	kinds := []kind{
		{browserRequest{origin: appOrigin}, 200, allowedApp, true},
		{browserRequest{origin: evilOrigin}, 200, varyOnly, true},
		{browserRequest{method: "OPTIONS", origin: appOrigin, acrm: "PUT", acrh: "content-type"}, 204, preflightAllowApp, false},
		{browserRequest{method: "OPTIONS", origin: evilOrigin, acrm: "PUT"}, 403, nil, false},
		{browserRequest{path: "/shop/cart", origin: shopOrigin}, 200, allowedShop, true},
		{browserRequest{path: "/partners/x", origin: partnerOrigin}, 200, allowedPartner, true},
		{browserRequest{path: "/partners/x", origin: appOrigin}, 200, varyOnly, true},
		{browserRequest{path: "/fail?status=500", origin: appOrigin}, 500, allowedApp, true},
	}
	const n = 200
	errs := make(chan string, n)
	var wg sync.WaitGroup
	wantUpstream, wantMessages := 0, 0
	for i := range n {
		k := kinds[i%len(kinds)]
		if k.upstream {
			wantUpstream++
			wantMessages += 2
		} else {
			wantMessages++
		}
		wg.Go(func() {
			resp, _, err := s.do(k.r)
			switch {
			case err != nil:
				errs <- fmt.Sprintf("request %d %+v: %v", i, k.r, err)
			case resp.StatusCode != k.status:
				errs <- fmt.Sprintf("request %d %+v: status %d, want %d", i, k.r, resp.StatusCode, k.status)
			default:
				if p := checkCORS(resp, k.want); p != "" {
					errs <- fmt.Sprintf("request %d %+v: %s", i, k.r, p)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("%d concurrent requests did not finish within %v", n, waitLimit)
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := len(s.up.seen()); got != wantUpstream {
		t.Errorf("the upstream saw %d requests, want %d (preflights never reach it)", got, wantUpstream)
	}
	st := s.proxy.Stats()
	if st.MessagesSent != wantMessages || st.Streams != n || st.ProcessorErrors+st.Timeouts+st.SpuriousResponses+st.FailOpen != 0 {
		t.Errorf("stats %+v, want %d messages on %d streams and no failure", st, wantMessages, n)
	}
}
