package policy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/testutil"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// mustParse compiles a policy file for a test.
var mustParse = testutil.MustParse

const webPolicy = `
default_policy: web
policies:
  - name: web
    allowed_origins:
      - https://app.example.com
      - https://*.example.com
      - http://localhost:*
      - https://*.example.org:*
      - https://static.example.net:8443
    allowed_origin_regexes: ['https://preview-[0-9]+\.example\.dev']
    allow_credentials: true
    expose_headers: [x-request-id]
    allow_private_network: true
  - name: open
    match: {path_prefixes: [/public/]}
    allow_all_origins: true
    expose_headers: [x-request-id, etag]
    allow_methods: ["*"]
    allow_headers: ["*"]
    preflight_max_age: 600
    preflight_status: 200
  - name: forward
    match: {routes: [legacy]}
    allowed_origins: [https://app.example.com]
    unmatched_preflight: forward
  - name: shadow
    match: {hosts: ["*.shadow.test"]}
    allowed_origins: [https://app.example.com]
    mode: shadow
  - name: nomax
    match: {routes: [nomax]}
    allowed_origins: [https://app.example.com]
    allow_methods: [PUT, patch]
    allow_headers: [X-Custom]
    preflight_max_age: 0
`

type decideCase struct {
	name    string
	req     policy.Request
	outcome policy.Outcome
	reason  policy.Reason
	policy  string
	status  int
	headers string // "name: value" lines joined with "; ", "+" before an appended value
}

func (c decideCase) check(t *testing.T, set *policy.Set) {
	t.Helper()
	var d policy.Decision
	set.Decide(&c.req, &d)
	if d.Outcome != c.outcome || d.Reason != c.reason {
		t.Errorf("outcome %v/%v, want %v/%v", d.Outcome, d.Reason, c.outcome, c.reason)
	}
	if d.Policy != c.policy {
		t.Errorf("policy %q, want %q", d.Policy, c.policy)
	}
	if d.Status != c.status {
		t.Errorf("status %d, want %d", d.Status, c.status)
	}
	if got := renderHeaders(d.Headers()); got != c.headers {
		t.Errorf("headers\n got %s\nwant %s", got, c.headers)
	}
	// Invariants that hold for every decision.
	acao, hasACAO := d.Header(policy.HeaderACAO)
	if acac, _ := d.Header(policy.HeaderACAC); acao == "*" && acac == "true" {
		t.Error("ACAO * together with ACAC true")
	}
	if hasACAO && acao != "*" && acao != c.req.Origin {
		t.Errorf("ACAO %q is neither * nor the request origin", acao)
	}
}

func renderHeaders(hs []policy.Header) string {
	var parts []string
	for _, h := range hs {
		op := ""
		if h.Append {
			op = "+"
		}
		parts = append(parts, fmt.Sprintf("%s: %s%s", h.Name, op, h.Value))
	}
	return strings.Join(parts, "; ")
}

func get(origin string) policy.Request {
	return policy.Request{Method: "GET", Origin: origin, Path: "/api/"}
}

func preflight(origin, method string, acrh ...string) policy.Request {
	return policy.Request{Method: "OPTIONS", Origin: origin, ACRM: method, ACRH: acrh, Path: "/api/"}
}

// onPublic sends r to webPolicy's open policy, whose allow_methods and
// allow_headers are *.
func onPublic(r policy.Request) policy.Request {
	r.Path = "/public/"
	return r
}

const (
	varyOrigin = "vary: +Origin"
	varyPre    = "vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
	webPre     = "access-control-allow-methods: DELETE, GET, OPTIONS, PATCH, POST, PUT; access-control-allow-headers: accept, authorization, content-type, user-agent, x-csrftoken, x-requested-with; access-control-max-age: 86400"
)

func allowedActual(origin string) string {
	return "access-control-allow-origin: " + origin + "; access-control-allow-credentials: true; access-control-expose-headers: x-request-id; " + varyOrigin
}

func allowedPreflight(origin string) string {
	return "access-control-allow-origin: " + origin + "; access-control-allow-credentials: true; " + webPre + "; " + varyPre
}

func TestDecideOrigins(t *testing.T) {
	set := mustParse(t, webPolicy)
	allowed := []string{
		"https://app.example.com",
		"https://a.example.com",
		"https://a.b.example.com",
		"http://localhost",
		"http://localhost:3000",
		"https://x.example.org",
		"https://x.example.org:8443",
		"https://static.example.net:8443",
		"https://preview-42.example.dev",
	}
	for _, o := range allowed {
		t.Run("allowed/"+o, func(t *testing.T) {
			decideCase{req: get(o), outcome: policy.OutcomeAllowed, policy: "web", headers: allowedActual(o)}.check(t, set)
		})
	}
	denied := map[string]policy.Reason{
		"https://example.com":                                 policy.ReasonOriginNotAllowed, // the apex
		"https://evilexample.com":                             policy.ReasonOriginNotAllowed,
		"https://example.com.evil.net":                        policy.ReasonOriginNotAllowed,
		"https://app.example.com.evil.net":                    policy.ReasonOriginNotAllowed,
		"http://app.example.com":                              policy.ReasonOriginNotAllowed, // scheme differs
		"https://a.example.com:8443":                          policy.ReasonOriginNotAllowed, // port differs
		"https://localhost:3000":                              policy.ReasonOriginNotAllowed,
		"http://localhost.evil.net":                           policy.ReasonOriginNotAllowed,
		"https://static.example.net":                          policy.ReasonOriginNotAllowed,
		"https://preview-x.example.dev":                       policy.ReasonOriginNotAllowed,
		"https://preview-1.example.dev.evil.net":              policy.ReasonOriginNotAllowed, // regexes match whole
		"xhttps://preview-1.example.dev":                      policy.ReasonOriginNotAllowed,
		"null":                                                policy.ReasonOriginNotAllowed,
		"https://App.example.com":                             policy.ReasonOriginMalformed,
		"HTTPS://app.example.com":                             policy.ReasonOriginMalformed,
		"https://app.example.com/":                            policy.ReasonOriginMalformed,
		"https://app.example.com/path":                        policy.ReasonOriginMalformed,
		"https://user@app.example.com":                        policy.ReasonOriginMalformed,
		"https://app.example.com:443":                         policy.ReasonOriginMalformed,
		"http://localhost:80":                                 policy.ReasonOriginMalformed,
		"https://app.example.com, https://evil.com":           policy.ReasonOriginMalformed,
		"https://app.example.com ":                            policy.ReasonOriginMalformed,
		"https://app.example.com:0":                           policy.ReasonOriginMalformed,
		"https://app.example.com:65536":                       policy.ReasonOriginMalformed,
		"https://app.example.com:08443":                       policy.ReasonOriginMalformed,
		"https://\xffapp.example.com":                         policy.ReasonOriginMalformed,
		"https://":                                            policy.ReasonOriginMalformed,
		"app.example.com":                                     policy.ReasonOriginMalformed,
		"https://" + strings.Repeat("a.", 300) + "c":          policy.ReasonOriginMalformed,
		"https://a.example.com..":                             policy.ReasonOriginMalformed, // an empty label
		"https://a..example.com":                              policy.ReasonOriginMalformed,
		"https://.a.example.com":                              policy.ReasonOriginMalformed,
		"https://" + strings.Repeat("a", 64) + ".example.com": policy.ReasonOriginMalformed,  // a label of 64
		"https://app.example.com.":                            policy.ReasonOriginNotAllowed, // a trailing dot is allowed, but not equal
		"https://a.example.com:":                              policy.ReasonOriginMalformed,
		"https:/a.example.com":                                policy.ReasonOriginMalformed,
		"1https://a.example.com":                              policy.ReasonOriginMalformed,
	}
	for o, reason := range denied {
		t.Run("denied/"+o, func(t *testing.T) {
			decideCase{req: get(o), outcome: policy.OutcomeDenied, reason: reason, policy: "web", headers: varyOrigin}.check(t, set)
		})
	}
	t.Run("several origin headers", func(t *testing.T) {
		r := get("https://app.example.com")
		r.DuplicateOrigin = true
		decideCase{req: r, outcome: policy.OutcomeDenied, reason: policy.ReasonOriginMalformed, policy: "web", headers: varyOrigin}.check(t, set)
	})
}

func TestDecide(t *testing.T) {
	set := mustParse(t, webPolicy)
	app := "https://app.example.com"
	withACRPN := preflight(app, "PUT")
	withACRPN.ACRPN = "true"
	openPre := preflight(app, "PURGE", "Authorization, X-Trace", "x-b3")
	openPre.Path = "/public/x"
	openGet := get(app)
	openGet.Path = "/public/x?q=1"
	openNoOrigin := get("")
	openNoOrigin.Path = "/public/"
	legacy := preflight(app, "DELETE", "x-not-allowed")
	legacy.Route = "legacy"
	legacyOK := preflight(app, "DELETE")
	legacyOK.Route = "legacy"
	shadowPre := preflight("https://evil.com", "PUT")
	shadowPre.Host = "api.shadow.test:8443"
	nomax := preflight(app, "patch", "x-custom")
	nomax.Route = "nomax"
	nomaxUpper := preflight(app, "PATCH")
	nomaxUpper.Route = "nomax"
	dupACRM := preflight(app, "PUT")
	dupACRM.DuplicateACRM = true

	cases := []decideCase{
		{name: "no origin", req: get(""), outcome: policy.OutcomeNotCORS, policy: "web", headers: varyOrigin},
		{name: "no origin, all origins allowed", req: openNoOrigin, outcome: policy.OutcomeNotCORS, policy: "open",
			headers: "access-control-allow-origin: *; access-control-expose-headers: x-request-id, etag"},
		{name: "actual", req: get(app), outcome: policy.OutcomeAllowed, policy: "web", headers: allowedActual(app)},
		{name: "OPTIONS without ACRM is actual", req: policy.Request{Method: "OPTIONS", Origin: app}, outcome: policy.OutcomeAllowed, policy: "web", headers: allowedActual(app)},
		{name: "actual, all origins", req: openGet, outcome: policy.OutcomeAllowed, policy: "open",
			headers: "access-control-allow-origin: *; access-control-expose-headers: x-request-id, etag"},
		{name: "preflight", req: preflight(app, "PUT", "Content-Type, X-CSRFToken"), outcome: policy.OutcomePreflightAllowed, policy: "web", status: 204, headers: allowedPreflight(app)},
		{name: "preflight GET always allowed", req: preflight(app, "GET"), outcome: policy.OutcomePreflightAllowed, policy: "web", status: 204, headers: allowedPreflight(app)},
		{name: "preflight origin refused", req: preflight("https://evil.com", "PUT"), outcome: policy.OutcomePreflightRejected, reason: policy.ReasonOriginNotAllowed, policy: "web", status: 403},
		{name: "preflight method is case-sensitive", req: preflight(app, "put"), outcome: policy.OutcomePreflightRejected, reason: policy.ReasonMethodNotAllowed, policy: "web", status: 403},
		{name: "preflight method not allowed", req: preflight(app, "PURGE"), outcome: policy.OutcomePreflightRejected, reason: policy.ReasonMethodNotAllowed, policy: "web", status: 403},
		{name: "preflight two ACRM", req: dupACRM, outcome: policy.OutcomePreflightRejected, reason: policy.ReasonMethodNotAllowed, policy: "web", status: 403},
		{name: "preflight header not allowed", req: preflight(app, "PUT", "content-type, x-other"), outcome: policy.OutcomePreflightRejected, reason: policy.ReasonHeaderNotAllowed, policy: "web", status: 403},
		{name: "preflight headers across lines, spaces, tabs and empty elements", req: preflight(app, "PUT", " ,accept,\t", "", "X-Requested-With ,, authorization"), outcome: policy.OutcomePreflightAllowed, policy: "web", status: 204, headers: allowedPreflight(app)},
		{name: "preflight header not a token", req: preflight(app, "PUT", "x y"), outcome: policy.OutcomePreflightRejected, reason: policy.ReasonHeadersMalformed, policy: "web", status: 403},
		{name: "preflight 64 names", req: preflight(app, "PUT", strings.Repeat("accept,", 64)), outcome: policy.OutcomePreflightAllowed, policy: "web", status: 204, headers: allowedPreflight(app)},
		{name: "preflight 65 names", req: preflight(app, "PUT", strings.Repeat("accept,", 65)), outcome: policy.OutcomePreflightRejected, reason: policy.ReasonHeadersMalformed, policy: "web", status: 403},
		{name: "preflight 1024 bytes", req: preflight(app, "PUT", strings.Repeat(" ", 1018)+"accept"), outcome: policy.OutcomePreflightAllowed, policy: "web", status: 204, headers: allowedPreflight(app)},
		{name: "preflight 1025 bytes", req: preflight(app, "PUT", strings.Repeat(" ", 1019)+"accept"), outcome: policy.OutcomePreflightRejected, reason: policy.ReasonHeadersMalformed, policy: "web", status: 403},
		{name: "preflight thousands of commas", req: preflight(app, "PUT", strings.Repeat(",", 5000)), outcome: policy.OutcomePreflightRejected, reason: policy.ReasonHeadersMalformed, policy: "web", status: 403},
		{name: "preflight private network allowed", req: withACRPN, outcome: policy.OutcomePreflightAllowed, policy: "web", status: 204,
			headers: "access-control-allow-origin: " + app + "; access-control-allow-credentials: true; " + webPre + "; access-control-allow-private-network: true; " + varyPre},
		{name: "preflight, all allowed, echoes method and headers", req: openPre, outcome: policy.OutcomePreflightAllowed, policy: "open", status: 200,
			headers: "access-control-allow-origin: *; access-control-allow-methods: PURGE; access-control-allow-headers: authorization, x-trace, x-b3; access-control-max-age: 600; " + varyPre},
		{name: "preflight forwarded", req: legacy, outcome: policy.OutcomePreflightForwarded, reason: policy.ReasonHeaderNotAllowed, policy: "forward", headers: varyOrigin},
		{name: "preflight allowed under forward", req: legacyOK, outcome: policy.OutcomePreflightAllowed, policy: "forward", status: 204,
			headers: "access-control-allow-origin: " + app + "; " + webPre + "; " + varyPre},
		{name: "shadow records the outcome", req: shadowPre, outcome: policy.OutcomePreflightRejected, reason: policy.ReasonOriginNotAllowed, policy: "shadow", status: 403},
		{name: "lower-case method allowed as written, no max age", req: nomax, outcome: policy.OutcomePreflightAllowed, policy: "nomax", status: 204,
			headers: "access-control-allow-origin: " + app + "; access-control-allow-methods: PUT, patch; access-control-allow-headers: X-Custom; " + varyPre},
		{name: "PATCH is not patch", req: nomaxUpper, outcome: policy.OutcomePreflightRejected, reason: policy.ReasonMethodNotAllowed, policy: "nomax", status: 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.check(t, set) })
	}
}

func TestDecisionActions(t *testing.T) {
	set := mustParse(t, webPolicy)
	for _, c := range []struct {
		name                string
		req                 policy.Request
		immediate, response bool
	}{
		{"preflight allowed", preflight("https://app.example.com", "PUT"), true, false},
		{"preflight rejected", preflight("https://evil.com", "PUT"), true, false},
		{"actual", get("https://app.example.com"), false, true},
		{"denied", get("https://evil.com"), false, true},
		{"no origin", get(""), false, true},
		// A forwarded preflight takes the response phase, which removes
		// the upstream's CORS headers (it used to skip it, letting the
		// upstream allow what corsproc refused).
		{"forwarded", policy.Request{Method: "OPTIONS", Origin: "https://evil.com", ACRM: "PUT", Route: "legacy"}, false, true},
		{"shadow", policy.Request{Method: "OPTIONS", Origin: "https://evil.com", ACRM: "PUT", Host: "a.shadow.test"}, false, false},
		// An unknown policy governs and refuses (it used to leave the
		// request to the upstream).
		{"unknown policy", policy.Request{Method: "GET", Origin: "https://app.example.com", PolicyName: "nope"}, false, true},
		{"unknown policy, no origin", policy.Request{Method: "GET", PolicyName: "nope"}, false, true},
		{"unknown policy, preflight", policy.Request{Method: "OPTIONS", Origin: "https://app.example.com", ACRM: "PUT", PolicyName: "nope"}, true, false},
	} {
		var d policy.Decision
		set.Decide(&c.req, &d)
		if d.RespondImmediately() != c.immediate || d.NeedsResponse() != c.response {
			t.Errorf("%s: immediate %v response %v, want %v %v", c.name, d.RespondImmediately(), d.NeedsResponse(), c.immediate, c.response)
		}
		if c.response != (len(d.Remove()) > 0) {
			t.Errorf("%s: Remove() = %v", c.name, d.Remove())
		}
	}
}

func TestSelect(t *testing.T) {
	set := mustParse(t, `
default_policy: fallback
policies:
  - name: fallback
    allowed_origins: [https://fallback.example]
  - name: storefront
    match: {routes: [storefront]}
    allowed_origins: [https://shop.example]
  - name: scoped-route
    match: {routes: [admin], path_prefixes: [/admin/]}
    allowed_origins: [https://admin.example]
  - name: api
    match: {hosts: [api.example.com, "*.api.example.com"], path_prefixes: [/v1/, /v2/]}
    allowed_origins: [https://app.example]
  - name: api-any
    match: {hosts: [api.example.com]}
    allowed_origins: [https://app.example]
  - name: django
    match: {urls_regex: '/dj/.*'}
    allowed_origins: [https://app.example]
`)
	for _, c := range []struct {
		name string
		req  policy.Request
		want string
		sel  policy.Selection
	}{
		{"metadata wins over route", policy.Request{PolicyName: "api", Route: "storefront"}, "api", policy.SelectedByMetadata},
		{"route", policy.Request{Route: "storefront", Host: "api.example.com", Path: "/v1/"}, "storefront", policy.SelectedByRoute},
		{"route with its path condition", policy.Request{Route: "admin", Path: "/admin/users"}, "scoped-route", policy.SelectedByRoute},
		{"route whose path condition fails falls through", policy.Request{Route: "admin", Path: "/other"}, "fallback", policy.SelectedByDefault},
		{"unknown route falls through to match", policy.Request{Route: "nope", Host: "api.example.com", Path: "/v2/x"}, "api", policy.SelectedByMatch},
		{"host and path, file order", policy.Request{Host: "API.example.com:8443", Path: "/v1/users?x=1"}, "api", policy.SelectedByMatch},
		{"wildcard host", policy.Request{Host: "eu.api.example.com", Path: "/v1/"}, "api", policy.SelectedByMatch},
		{"wildcard host is not the apex", policy.Request{Host: "example.com", Path: "/v1/"}, "fallback", policy.SelectedByDefault},
		{"second policy when the path fails the first", policy.Request{Host: "api.example.com", Path: "/v3/"}, "api-any", policy.SelectedByMatch},
		{"query is not part of the path", policy.Request{Host: "x", Path: "/x?/v1/"}, "fallback", policy.SelectedByDefault},
		{"urls_regex matches the whole path", policy.Request{Path: "/dj/users?q"}, "django", policy.SelectedByMatch},
		{"urls_regex is anchored", policy.Request{Path: "/x/dj/users"}, "fallback", policy.SelectedByDefault},
		{"default", policy.Request{Host: "other.example"}, "fallback", policy.SelectedByDefault},
	} {
		var d policy.Decision
		c.req.Method = "GET"
		set.Decide(&c.req, &d)
		if d.Policy != c.want || d.Selection != c.sel {
			t.Errorf("%s: got %q by %v, want %q by %v", c.name, d.Policy, d.Selection, c.want, c.sel)
		}
	}
	for _, r := range []policy.Request{{PolicyName: "nope"}, {PolicyName: "api", AmbiguousPolicyName: true}} {
		var d policy.Decision
		r.Method = "GET"
		set.Decide(&r, &d)
		if d.Selection != policy.SelectedUnknown || d.Reason != policy.ReasonUnknownPolicy || d.Policy != "" {
			t.Errorf("metadata %+v: got %+v, want an unknown policy", r, d)
		}
	}

	none := mustParse(t, "policies:\n  - name: web\n    match: {routes: [r]}\n    allowed_origins: [https://a.example]\n")
	var d policy.Decision
	none.Decide(&policy.Request{Method: "GET", Origin: "https://a.example", Route: "other"}, &d)
	if d.Outcome != policy.OutcomeUngoverned || d.Policy != "" || len(d.Headers()) != 0 || d.NeedsResponse() || d.RespondImmediately() {
		t.Errorf("ungoverned: %+v", d)
	}
}

// TestDecideUnknownPolicy checks a request whose x-corsproc-policy names
// no policy of the set (or several): corsproc governs it and grants
// nothing. Its preflight is answered 403 by corsproc, whatever the
// policy's unmatched_preflight would have been; an actual request and a
// request without Origin go to the upstream, whose CORS headers are
// removed, and get Vary: Origin. Decision.Policy stays "": the name never
// becomes a metric label. Before, such a request was left to the upstream
// (no headers, no response phase), so the upstream's own CORS headers
// reached the browser.
func TestDecideUnknownPolicy(t *testing.T) {
	set := mustParse(t, webPolicy)
	app := "https://app.example.com"
	named := func(r policy.Request, name string) policy.Request { r.PolicyName = name; return r }
	ambiguous := get(app)
	ambiguous.PolicyName, ambiguous.AmbiguousPolicyName = "web", true
	openPre := preflight(app, "PUT")
	openPre.Path = "/public/" // would select "open" by path, which allows all
	for _, c := range []decideCase{
		{name: "preflight", req: named(preflight(app, "PUT"), "nope"), outcome: policy.OutcomePreflightRejected, reason: policy.ReasonUnknownPolicy, status: 403},
		{name: "preflight whose path another policy matches", req: named(openPre, "nope"), outcome: policy.OutcomePreflightRejected, reason: policy.ReasonUnknownPolicy, status: 403},
		{name: "preflight on a forward route", req: func() policy.Request { r := named(preflight(app, "PUT"), "nope"); r.Route = "legacy"; return r }(),
			outcome: policy.OutcomePreflightRejected, reason: policy.ReasonUnknownPolicy, status: 403},
		{name: "actual", req: named(get(app), "nope"), outcome: policy.OutcomeDenied, reason: policy.ReasonUnknownPolicy, headers: varyOrigin},
		{name: "OPTIONS without ACRM", req: named(policy.Request{Method: "OPTIONS", Origin: app}, "nope"), outcome: policy.OutcomeDenied, reason: policy.ReasonUnknownPolicy, headers: varyOrigin},
		{name: "no origin", req: named(get(""), "nope"), outcome: policy.OutcomeNotCORS, reason: policy.ReasonUnknownPolicy, headers: varyOrigin},
		{name: "several values", req: ambiguous, outcome: policy.OutcomeDenied, reason: policy.ReasonUnknownPolicy, headers: varyOrigin},
		{name: "truncated OPTIONS", req: policy.Request{Method: "OPTIONS", Truncated: true, PolicyName: "gone"}, outcome: policy.OutcomePreflightRejected, reason: policy.ReasonUnknownPolicy, status: 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, set)
			var d policy.Decision
			set.Decide(&c.req, &d)
			if d.Selection != policy.SelectedUnknown || d.Shadow {
				t.Errorf("selection %v, shadow %v; want unknown, enforced", d.Selection, d.Shadow)
			}
			if d.RespondImmediately() == d.NeedsResponse() {
				t.Errorf("immediate %v, response phase %v: corsproc must answer or see the response", d.RespondImmediately(), d.NeedsResponse())
			}
			if d.NeedsResponse() && !slices.Equal(d.Remove(), policy.ManagedHeaders()) {
				t.Errorf("Remove() = %q, want every CORS response header %q", d.Remove(), policy.ManagedHeaders())
			}
		})
	}
}

// TestDecideForwardStrips checks unmatched_preflight: forward: a failed
// preflight goes to the upstream, and its response loses every CORS header
// the upstream sends and gets Vary: Origin, so the upstream can never
// allow what corsproc refused. Before, the response phase was skipped and
// the upstream's Access-Control-Allow-Origin reached the browser.
func TestDecideForwardStrips(t *testing.T) {
	set := mustParse(t, webPolicy)
	for _, r := range []policy.Request{
		{Method: "OPTIONS", Origin: "https://evil.com", ACRM: "PUT", Route: "legacy"},
		{Method: "OPTIONS", Origin: "https://app.example.com", ACRM: "PURGE", Route: "legacy"},
		{Method: "OPTIONS", Truncated: true, Route: "legacy"},
	} {
		var d policy.Decision
		set.Decide(&r, &d)
		if d.Outcome != policy.OutcomePreflightForwarded || d.RespondImmediately() || !d.NeedsResponse() {
			t.Errorf("%+v: outcome %v, immediate %v, response phase %v; want forwarded through the response phase", r, d.Outcome, d.RespondImmediately(), d.NeedsResponse())
		}
		if !slices.Equal(d.Remove(), policy.ManagedHeaders()) {
			t.Errorf("%+v: Remove() = %q, want %q", r, d.Remove(), policy.ManagedHeaders())
		}
		if got := renderHeaders(d.Headers()); got != varyOrigin {
			t.Errorf("%+v: headers %q, want only %q", r, got, varyOrigin)
		}
	}
	want := []string{policy.HeaderACAO, policy.HeaderACAC, policy.HeaderACEH, policy.HeaderACAM, policy.HeaderACAH, policy.HeaderACMA, policy.HeaderACAPN}
	if got := policy.ManagedHeaders(); !slices.Equal(got, want) {
		t.Errorf("ManagedHeaders() = %q, want every CORS response header %q", got, want)
	}
}

// TestDecideWildcardNeverAllowsRefused checks allow_methods: ["*"] and
// allow_headers: ["*"]: a preflight asking for what a policy may not list
// (a forbidden method, a forbidden request header, a CORS response header)
// is refused, never echoed. Every name the compiler refuses in a list is
// refused under *, and every name it accepts is allowed under *. Before,
// * echoed CONNECT and cookie.
func TestDecideWildcardNeverAllowsRefused(t *testing.T) {
	set := mustParse(t, webPolicy)
	app := "https://app.example.com"
	onOpen := func(r policy.Request) policy.Request { r.Path = "/public/"; return r }
	for _, m := range []string{"CONNECT", "TRACE", "TRACK", "connect", "Trace", "PURGE", "PROPFIND", "patch"} {
		var d policy.Decision
		r := onOpen(preflight(app, m))
		set.Decide(&r, &d)
		_, listErr := policyfile.Parse("m.yaml", []byte("policies:\n  - name: m\n    allowed_origins: [https://a.example]\n    allow_methods: [\""+m+"\"]\n"))
		refused := d.Outcome == policy.OutcomePreflightRejected && d.Reason == policy.ReasonMethodNotAllowed
		if refused != (listErr != nil) || d.Policy != "open" {
			t.Errorf("method %s under *: %v/%v; listing it: %v", m, d.Outcome, d.Reason, listErr)
		}
		if acam, ok := d.Header(policy.HeaderACAM); ok && refused {
			t.Errorf("method %s under *: echoed %q", m, acam)
		}
	}
	for _, h := range []string{"cookie", "Cookie", "cookie2", "host", "origin", "referer", "set-cookie", "content-length",
		"transfer-encoding", "sec-fetch-mode", "Sec-CH-UA", "proxy-authorization", "access-control-request-method",
		"access-control-allow-origin", "Access-Control-Allow-Credentials", "access-control-expose-headers", "access-control-max-age",
		"x-custom", "authorization", "content-type", "x-cookie", "secret", "proxy"} {
		var d policy.Decision
		r := onOpen(preflight(app, "PUT", "x-ok, "+h))
		set.Decide(&r, &d)
		_, listErr := policyfile.Parse("h.yaml", []byte("policies:\n  - name: h\n    allowed_origins: [https://a.example]\n    allow_headers: [\""+h+"\"]\n"))
		refused := d.Outcome == policy.OutcomePreflightRejected && d.Reason == policy.ReasonHeaderNotAllowed
		if refused != (listErr != nil) {
			t.Errorf("header %s under *: %v/%v; listing it: %v", h, d.Outcome, d.Reason, listErr)
		}
		if acah, ok := d.Header(policy.HeaderACAH); ok && refused {
			t.Errorf("header %s under *: echoed %q", h, acah)
		}
	}
}

// TestNullOrigin checks the dangerously_allow_null_origin escape hatch.
func TestNullOrigin(t *testing.T) {
	set := mustParse(t, `
default_policy: web
policies:
  - name: web
    allowed_origins: ["null", "file://"]
    dangerously_allow_null_origin: true
`)
	for _, o := range []string{"null", "file://"} {
		decideCase{req: get(o), outcome: policy.OutcomeAllowed, policy: "web", headers: "access-control-allow-origin: " + o + "; " + varyOrigin}.check(t, set)
	}
}

func TestDecideAllocations(t *testing.T) {
	set := mustParse(t, webPolicy)
	for name, r := range map[string]policy.Request{
		"actual allowed":  get("https://a.b.example.com"),
		"actual regex":    get("https://preview-7.example.dev"),
		"actual denied":   get("https://evil.com"),
		"no origin":       get(""),
		"preflight fixed": preflight("https://app.example.com", "PUT", "content-type"),
		// allow_methods' and allow_headers' * check every requested name
		// against the forbidden lists, in any case (IsForbiddenMethod,
		// IsForbiddenRequestHeader), allowed or refused. (Allowing
		// requested headers under * builds the echoed list: one string.)
		"preflight wildcard":           onPublic(preflight("https://app.example.com", "purge")),
		"preflight wildcard method":    onPublic(preflight("https://app.example.com", "Trace")),
		"preflight wildcard header":    onPublic(preflight("https://app.example.com", "PUT", "x-ok, Sec-Fetch-Mode")),
		"preflight wildcard acaheader": onPublic(preflight("https://app.example.com", "PUT", "Access-Control-Allow-Origin")),
	} {
		var d policy.Decision
		if n := testing.AllocsPerRun(100, func() { set.Decide(&r, &d) }); n != 0 {
			t.Errorf("%s: %v allocations per decision, want 0", name, n)
		}
	}
}

// TestDecideTruncated checks requests whose headers the processor could not
// all read: CORS is refused, whatever the inspected part said.
func TestDecideTruncated(t *testing.T) {
	set := mustParse(t, webPolicy)
	open := mustParse(t, "default_policy: open\npolicies:\n  - name: open\n    allow_all_origins: true\n")
	for _, c := range []decideCase{
		{name: "actual", req: policy.Request{Method: "GET", Truncated: true}, outcome: policy.OutcomeDenied, reason: policy.ReasonOriginMalformed, policy: "web", headers: varyOrigin},
		{name: "actual with an allowed origin read", req: policy.Request{Method: "GET", Origin: "https://app.example.com", Truncated: true}, outcome: policy.OutcomeDenied, reason: policy.ReasonOriginMalformed, policy: "web", headers: varyOrigin},
		{name: "OPTIONS", req: policy.Request{Method: "OPTIONS", Truncated: true}, outcome: policy.OutcomePreflightRejected, reason: policy.ReasonOriginMalformed, policy: "web", status: 403},
	} {
		t.Run(c.name, func(t *testing.T) { c.check(t, set) })
	}
	t.Run("all origins", func(t *testing.T) {
		decideCase{req: policy.Request{Method: "GET", Truncated: true}, outcome: policy.OutcomeAllowed, policy: "open", headers: "access-control-allow-origin: *"}.check(t, open)
		decideCase{req: policy.Request{Method: "OPTIONS", Truncated: true}, outcome: policy.OutcomePreflightRejected, reason: policy.ReasonMethodNotAllowed, policy: "open", status: 403}.check(t, open)
	})
}
