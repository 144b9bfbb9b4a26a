package bench

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	jub0bs "github.com/jub0bs/cors"
	rscors "github.com/rs/cors"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// The policy every implementation enforces: n allowed origins (n-1 exact ones
// and a subdomain pattern), credentials, django-cors-headers' default methods
// and request headers, one exposed header, a day of preflight caching.
var (
	benchMethods        = []string{"DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT"}
	benchRequestHeaders = []string{"accept", "authorization", "content-type", "user-agent", "x-csrftoken", "x-requested-with"}
	benchExposed        = []string{"x-request-id"}
)

const (
	benchPattern = "https://*.example.net"
	benchMaxAge  = 86400
)

// benchOrigins returns the n allowed origins: n-1 exact ones and the pattern.
func benchOrigins(n int) []string {
	out := make([]string, 0, n)
	for i := range n - 1 {
		out = append(out, fmt.Sprintf("https://app%d.example.com", i))
	}
	return append(out, benchPattern)
}

// allowedOrigin is the last exact origin listed, so that a scan shows.
func allowedOrigin(n int) string { return fmt.Sprintf("https://app%d.example.com", n-2) }

// corsprocYAML is the policy file of the benchmark policy.
func corsprocYAML(origins []string) string {
	var b strings.Builder
	b.WriteString("default_policy: web\npolicies:\n  - name: web\n    allow_credentials: true\n")
	fmt.Fprintf(&b, "    allow_methods: [%s]\n", strings.Join(benchMethods, ", "))
	fmt.Fprintf(&b, "    allow_headers: [%s]\n", strings.Join(benchRequestHeaders, ", "))
	fmt.Fprintf(&b, "    expose_headers: [%s]\n", strings.Join(benchExposed, ", "))
	fmt.Fprintf(&b, "    preflight_max_age: %d\n", benchMaxAge)
	b.WriteString("    allowed_origins:\n")
	for _, o := range origins {
		fmt.Fprintf(&b, "      - %s\n", o)
	}
	return b.String()
}

// decisionCase is one request shape of BenchmarkDecision.
type decisionCase struct {
	name   string
	method string
	origin string // "" for none
	acrm   string
	acrh   string
	// acrhLines, when set, are Access-Control-Request-Headers header
	// lines, one value each, instead of acrh.
	acrhLines []string
	// outcome of corsproc, and whether the peers must answer with ACAO.
	want    policy.Outcome
	allowed bool
}

// adversarialACRH is an Access-Control-Request-Headers value a hostile
// client sends: thousands of commas, then one name.
var adversarialACRH = strings.Repeat(",", 4096) + "content-type"

func decisionCases(n int) []decisionCase {
	ok := allowedOrigin(n)
	return []decisionCase{
		{name: "preflight", method: "OPTIONS", origin: ok, acrm: "PUT", acrh: "content-type,x-csrftoken", want: policy.OutcomePreflightAllowed, allowed: true},
		{name: "actual_allowed", method: "GET", origin: ok, want: policy.OutcomeAllowed, allowed: true},
		{name: "actual_refused", method: "GET", origin: "https://evil.example.org", want: policy.OutcomeDenied},
		{name: "no_origin", method: "GET", want: policy.OutcomeNotCORS},
		{name: "adversarial_acrh", method: "OPTIONS", origin: ok, acrm: "PUT", acrh: adversarialACRH, want: policy.OutcomePreflightRejected},
	}
}

// httpRequest is the case as an *http.Request, with canonical header keys as
// Go's server builds them.
func (c decisionCase) httpRequest() *http.Request {
	r, err := http.NewRequest(c.method, "https://api.example.com/api/orders", nil)
	if err != nil {
		panic(err)
	}
	setCORSHeaders(r.Header, c.origin, c.acrm, c.acrh)
	if c.acrhLines != nil {
		r.Header["Access-Control-Request-Headers"] = c.acrhLines
	}
	return r
}

// setCORSHeaders sets the CORS request headers a browser sends, each only
// when its value is not empty.
func setCORSHeaders(h http.Header, origin, acrm, acrh string) {
	if origin != "" {
		h.Set("Origin", origin)
	}
	if acrm != "" {
		h.Set("Access-Control-Request-Method", acrm)
	}
	if acrh != "" {
		h.Set("Access-Control-Request-Headers", acrh)
	}
}

// policyRequest is the case as corsproc's policy.Request, as the processor
// extracts it from Envoy's request headers.
func (c decisionCase) policyRequest() *policy.Request {
	r := &policy.Request{Method: c.method, Origin: c.origin, ACRM: c.acrm, Host: "api.example.com", Path: "/api/orders"}
	if c.acrh != "" {
		r.ACRH = []string{c.acrh}
	}
	if c.acrhLines != nil {
		r.ACRH = c.acrhLines
	}
	return r
}

// responseWriter is the minimal reusable http.ResponseWriter the middleware
// write into: its header map is cleared, not reallocated, between requests.
type responseWriter struct {
	h      http.Header
	status int
}

func newResponseWriter() *responseWriter { return &responseWriter{h: make(http.Header, 8)} }

func (w *responseWriter) Header() http.Header         { return w.h }
func (w *responseWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *responseWriter) WriteHeader(status int)      { w.status = status }
func (w *responseWriter) reset()                      { clear(w.h); w.status = 0 }

// next is the wrapped application: it does nothing.
var next = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

func newRSCors(origins []string) http.Handler {
	return rscors.New(rscors.Options{
		AllowedOrigins:   origins,
		AllowedMethods:   benchMethods,
		AllowedHeaders:   benchRequestHeaders,
		ExposedHeaders:   benchExposed,
		MaxAge:           benchMaxAge,
		AllowCredentials: true,
	}).Handler(next)
}

// corsprocHTTP is corsproc's decision as http.Handler middleware, in the form
// the peers take: it reads the request from the *http.Request and writes the
// decision's headers into the response's header map, so that it pays what
// they pay. (corsproc itself runs as an ext_proc server: BenchmarkProcess in
// the processor package times a whole Envoy stream, the extraction of the
// request and the rendering of the decision included.)
type corsprocHTTP struct {
	set  *policy.Set
	next http.Handler
	// decisions holds *policy.Decision, reused so that deciding allocates
	// nothing, and one per request in flight.
	decisions sync.Pool
}

func newCorsprocHTTP(set *policy.Set, next http.Handler) http.Handler {
	h := &corsprocHTTP{set: set, next: next}
	h.decisions.New = func() any { return new(policy.Decision) }
	return h
}

// ServeHTTP decides r as the processor does: a preflight corsproc answers
// gets the decision's status and headers and never reaches next; any other
// request reaches next, its response carrying the decision's headers unless
// the policy is in shadow mode or does not govern it. As with the peers, the
// headers are written before next runs, so next may still change them: the
// processor's removal of the upstream's CORS headers has no counterpart.
func (h *corsprocHTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req := policy.Request{Method: r.Method, Host: r.Host, Path: r.URL.Path}
	// The header map's keys are canonical, as Go's server builds them. The
	// preflight headers count only in an OPTIONS request with an Origin
	// (Fetch's CORS-preflight request): elsewhere they are not looked up.
	if v := r.Header["Origin"]; len(v) > 0 {
		req.Origin, req.DuplicateOrigin = v[0], len(v) > 1
		if r.Method == http.MethodOptions {
			if v := r.Header["Access-Control-Request-Method"]; len(v) > 0 {
				req.ACRM, req.DuplicateACRM = v[0], len(v) > 1
			}
			if v := r.Header["Access-Control-Request-Private-Network"]; len(v) > 0 {
				req.ACRPN = v[0]
			}
			req.ACRH = r.Header["Access-Control-Request-Headers"] // every line
		}
	}

	d := h.decisions.Get().(*policy.Decision)
	h.set.Decide(&req, d)
	immediate, status := d.RespondImmediately(), d.Status
	if immediate || d.NeedsResponse() {
		writeHeaders(w.Header(), d.Headers())
	}
	h.decisions.Put(d)
	if immediate {
		w.WriteHeader(status)
		return
	}
	h.next.ServeHTTP(w, r)
}

// writeHeaders writes hs into out as http.Header's Add does for a header to
// append to and Set for the others, in one allocation: every value is its
// own one-element slice of one array, capped so that a later append copies.
func writeHeaders(out http.Header, hs []policy.Header) {
	if len(hs) == 0 {
		return
	}
	values := make([]string, len(hs))
	for i, hd := range hs {
		key := canonicalHeaderKey(hd.Name)
		if hd.Append {
			if old := out[key]; len(old) > 0 {
				out[key] = append(old, hd.Value)
				continue
			}
		}
		values[i] = hd.Value
		out[key] = values[i : i+1 : i+1]
	}
}

// canonicalHeaderKey is http.CanonicalHeaderKey without its allocation for
// the lower-case names of the headers corsproc sets.
func canonicalHeaderKey(name string) string {
	switch name {
	case policy.HeaderACAO:
		return "Access-Control-Allow-Origin"
	case policy.HeaderACAC:
		return "Access-Control-Allow-Credentials"
	case policy.HeaderACAM:
		return "Access-Control-Allow-Methods"
	case policy.HeaderACAH:
		return "Access-Control-Allow-Headers"
	case policy.HeaderACEH:
		return "Access-Control-Expose-Headers"
	case policy.HeaderACMA:
		return "Access-Control-Max-Age"
	case policy.HeaderACAPN:
		return "Access-Control-Allow-Private-Network"
	case policy.HeaderVary:
		return "Vary"
	}
	return http.CanonicalHeaderKey(name)
}

func newJub0bsCors(tb testing.TB, origins []string) http.Handler {
	m, err := jub0bs.NewMiddleware(jub0bs.Config{
		Origins:         origins,
		Credentialed:    true,
		Methods:         benchMethods,
		RequestHeaders:  benchRequestHeaders,
		MaxAgeInSeconds: benchMaxAge,
		ResponseHeaders: benchExposed,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m.Wrap(next)
}

// decisionImpl is a middleware compared with corsproc's decision.
type decisionImpl struct {
	name string
	h    http.Handler
}

// decisionSetup is the benchmark policy of n allowed origins as each
// implementation holds it.
type decisionSetup struct {
	n     int
	set   *policy.Set
	impls []decisionImpl
}

func newDecisionSetup(tb testing.TB, n int) decisionSetup {
	origins := benchOrigins(n)
	set, err := policyfile.Parse("bench.yaml", []byte(corsprocYAML(origins)))
	if err != nil {
		tb.Fatal(err)
	}
	return decisionSetup{n: n, set: set, impls: []decisionImpl{
		{"corsproc-http", newCorsprocHTTP(set, next)},
		{"rs-cors", newRSCors(origins)},
		{"jub0bs-cors", newJub0bsCors(tb, origins)},
	}}
}

// decisionName names the run of case c by impl with n allowed origins.
func decisionName(impl string, c decisionCase, n int) string {
	return fmt.Sprintf("impl=%s/case=%s/origins=%d", impl, c.name, n)
}

// checkDecision fails tb unless d, corsproc's decision of c, has c's
// outcome.
func checkDecision(tb testing.TB, c decisionCase, d *policy.Decision) {
	tb.Helper()
	if d.Outcome != c.want {
		tb.Fatalf("outcome %v, want %v", d.Outcome, c.want)
	}
}

// checkAnswer fails tb unless w, a middleware's answer to c, carries
// Access-Control-Allow-Origin exactly when c is allowed.
func checkAnswer(tb testing.TB, c decisionCase, w *responseWriter) {
	tb.Helper()
	if _, got := w.h["Access-Control-Allow-Origin"]; got != c.allowed {
		tb.Fatalf("ACAO present %v, want %v; headers %v", got, c.allowed, w.h)
	}
}

// BenchmarkDecision runs one CORS decision per iteration, through corsproc's
// policy.Set.Decide (impl=corsproc, the processor's native form: a
// policy.Request in, a policy.Decision out), through the same decision as
// http.Handler middleware (impl=corsproc-http: corsprocHTTP, reading the
// http.Request and writing the response headers), and through rs/cors
// v1.11.1 and jub0bs/cors v0.13.0 as the http.Handler middleware they are.
// The middleware write into a reusable http.ResponseWriter. Every
// implementation enforces the same policy.
//
//	go test -run '^$' -bench 'Decision' -count 6 . | benchstat -col /impl -
func BenchmarkDecision(b *testing.B) {
	for _, n := range []int{5, 1000} {
		runDecisionCases(b, newDecisionSetup(b, n), decisionCases(n))
	}
}

// runDecisionCases runs each case through corsproc's decision and through
// each middleware of s, as sub-benchmarks impl=…/case=…/origins=n, and
// checks the last answer of each. TestDecisionCases makes the same checks
// without timing.
func runDecisionCases(b *testing.B, s decisionSetup, cases []decisionCase) {
	for _, c := range cases {
		b.Run(decisionName("corsproc", c, s.n), func(b *testing.B) {
			r := c.policyRequest()
			var d policy.Decision
			b.ReportAllocs()
			for b.Loop() {
				s.set.Decide(r, &d)
			}
			checkDecision(b, c, &d)
		})
		for _, impl := range s.impls {
			b.Run(decisionName(impl.name, c, s.n), func(b *testing.B) {
				r := c.httpRequest()
				w := newResponseWriter()
				b.ReportAllocs()
				for b.Loop() {
					w.reset()
					impl.h.ServeHTTP(w, r)
				}
				checkAnswer(b, c, w)
			})
		}
	}
}
