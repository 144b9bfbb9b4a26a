package policy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

func checksString(cs []policy.Check) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, c.Name+":"+c.Result)
	}
	return strings.Join(parts, " ")
}

func TestExplain(t *testing.T) {
	set := mustParse(t, webPolicy)
	app := "https://app.example.com"
	pre := func(origin, method string, acrh ...string) policy.ExplainRequest {
		return policy.ExplainRequest{Request: preflight(origin, method, acrh...), URL: "https://api.example.com/v1/items"}
	}
	act := func(origin string, creds bool) policy.ExplainRequest {
		return policy.ExplainRequest{Request: get(origin), Credentials: creds, URL: "https://api.example.com/v1/items"}
	}
	openCreds := act(app, true)
	openCreds.Path = "/public/x"
	legacy := pre(app, "PURGE")
	legacy.Route = "legacy"
	for _, c := range []struct {
		name                       string
		req                        policy.ExplainRequest
		kind, outcome, checks, why string
		browser, fix, response     string
		wantHeaders                bool
	}{
		{
			name: "preflight allowed", req: pre(app, "PUT", "content-type"),
			kind: "preflight", outcome: "preflight_allowed", why: "default_policy",
			checks: "origin:pass method:pass headers:pass private_network:pass", wantHeaders: true,
		},
		{
			name: "preflight header refused", req: pre(app, "PUT", "content-type, X-Trace"),
			kind: "preflight", outcome: "preflight_rejected",
			checks:  "origin:pass method:pass headers:fail private_network:not evaluated",
			browser: "Access to fetch at 'https://api.example.com/v1/items' from origin 'https://app.example.com' has been blocked by CORS policy: Response to preflight request doesn't pass access control check: No 'Access-Control-Allow-Origin' header is present on the requested resource.",
			fix:     `add "x-trace" to allow_headers of policy "web" (test.yaml)`,
		},
		{
			name: "preflight origin refused", req: pre("https://evil.example", "PUT"),
			kind: "preflight", outcome: "preflight_rejected",
			checks: "origin:fail method:not evaluated headers:not evaluated private_network:not evaluated",
			fix:    `add "https://evil.example" to allowed_origins of policy "web" (test.yaml)`,
		},
		{
			name: "preflight method refused", req: pre(app, "PURGE"),
			kind: "preflight", outcome: "preflight_rejected", checks: "origin:pass method:fail headers:not evaluated private_network:not evaluated",
			fix: `add "PURGE" to allow_methods of policy "web" (test.yaml)`,
		},
		{
			// The upstream answers, but its CORS headers are removed: the
			// browser's preflight fails (it used to say the upstream
			// decides).
			name: "forwarded preflight fails in the browser", req: legacy,
			kind: "preflight", outcome: "preflight_forwarded", why: `route "legacy" is in policies[2].match.routes`,
			checks:   "origin:pass method:fail headers:not evaluated private_network:not evaluated",
			response: "removes every CORS header", wantHeaders: true,
			browser: "Response to preflight request doesn't pass access control check: No 'Access-Control-Allow-Origin' header is present on the requested resource.",
			fix:     `add "PURGE" to allow_methods of policy "forward"`,
		},
		{
			name: "actual allowed with credentials", req: act(app, true),
			kind: "actual", outcome: "allowed", checks: "origin:pass credentials:pass", wantHeaders: true,
		},
		{
			name: "actual refused", req: act("https://evil.example", false),
			kind: "actual", outcome: "disallowed_origin", checks: "origin:fail", wantHeaders: true,
			fix:     `add "https://evil.example" to allowed_origins`,
			browser: "Access to fetch at 'https://api.example.com/v1/items' from origin 'https://evil.example' has been blocked by CORS policy: No 'Access-Control-Allow-Origin' header is present on the requested resource.",
		},
		{
			name: "credentials against *", req: openCreds,
			kind: "actual", outcome: "allowed", checks: "origin:pass credentials:fail", wantHeaders: true,
			why:     "its match holds",
			browser: "must not be the wildcard '*' when the request's credentials mode is 'include'",
			fix:     "replace allow_all_origins with the origins in allowed_origins",
		},
		{
			name: "unknown policy", req: policy.ExplainRequest{Request: policy.Request{Method: "GET", Origin: app, PolicyName: "gone"}},
			kind: "actual", outcome: "disallowed_origin", checks: "policy:fail", why: `names "gone", which the policy set does not define: an unknown policy governs and allows nothing`,
			response: "CORS headers removed", wantHeaders: true,
			browser: "No 'Access-Control-Allow-Origin' header is present on the requested resource.",
			fix:     "define the policy the Envoy route names",
		},
		{
			name: "unknown policy, preflight", req: func() policy.ExplainRequest { r := pre(app, "PUT"); r.PolicyName = "gone"; return r }(),
			kind: "preflight", outcome: "preflight_rejected", checks: "policy:fail", why: `names "gone", which the policy set does not define`,
			response: "corsproc answers 403 itself",
			browser:  "Response to preflight request doesn't pass access control check",
			fix:      "define the policy the Envoy route names",
		},
		{
			name: "star refuses a forbidden method", req: func() policy.ExplainRequest { r := pre(app, "CONNECT"); r.Path = "/public/"; return r }(),
			kind: "preflight", outcome: "preflight_rejected", checks: "origin:pass method:fail headers:not evaluated private_network:not evaluated",
			browser: "Response to preflight request", fix: "corsproc never allows a method a policy may not list",
		},
		{
			name: "star refuses cookie", req: func() policy.ExplainRequest { r := pre(app, "PUT", "x-a, Cookie"); r.Path = "/public/"; return r }(),
			kind: "preflight", outcome: "preflight_rejected", checks: "origin:pass method:pass headers:fail private_network:not evaluated",
			browser: "Response to preflight request", fix: `scripts cannot set "cookie"`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := set.Explain(&c.req)
			if e.Kind != c.kind || e.Outcome != c.outcome {
				t.Errorf("kind %s outcome %s, want %s %s", e.Kind, e.Outcome, c.kind, c.outcome)
			}
			if got := checksString(e.Checks); got != c.checks {
				t.Errorf("checks %q, want %q", got, c.checks)
			}
			if !strings.Contains(e.Why, c.why) {
				t.Errorf("why %q does not contain %q", e.Why, c.why)
			}
			if !strings.Contains(e.BrowserError, c.browser) || (c.browser == "" && c.fix == "" && e.BrowserError != "") {
				t.Errorf("browser error %q, want %q", e.BrowserError, c.browser)
			}
			if !strings.Contains(e.Fix, c.fix) || (c.fix == "" && e.Fix != "") {
				t.Errorf("fix %q, want %q", e.Fix, c.fix)
			}
			if !strings.Contains(e.Response, c.response) {
				t.Errorf("response %q does not contain %q", e.Response, c.response)
			}
			if (len(e.Headers) > 0) != c.wantHeaders {
				t.Errorf("headers %v", e.Headers)
			}
			// Explain must agree with Decide: same code, same answer.
			var d policy.Decision
			set.Decide(&c.req.Request, &d)
			if d.Outcome.String() != e.Outcome || renderHeaders(d.Headers()) != renderHeaders(e.Headers) {
				t.Errorf("Explain disagrees with Decide: %v %v", d.Outcome, d.Headers())
			}
		})
	}
}

// TestExplainRouteIndexInDirectory: explain names a route-bound policy by
// its index in its own file, not in the whole directory's set.
func TestExplainRouteIndexInDirectory(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"1.yaml": "policies:\n  - {name: one, match: {routes: [r1]}, allowed_origins: [https://a.example]}\n",
		"2.yaml": "policies:\n  - {name: two, match: {routes: [r2]}, allowed_origins: [https://a.example]}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := policyfile.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := get("https://a.example")
	r.Route = "r2"
	e := set.Explain(&policy.ExplainRequest{Request: r, URL: "https://api.example.com/"})
	if want := `route "r2" is in policies[0].match.routes of ` + filepath.Join(dir, "2.yaml"); e.Why != want {
		t.Fatalf("Why = %q, want %q", e.Why, want)
	}
}

// A refusal says what was refused and which policy decided, in one line
// that is safe in a header value and a log whatever the client sent; an
// allowed request has none.
func TestRefusal(t *testing.T) {
	set := mustParse(t, webPolicy)
	app := "https://app.example.com"
	long := "https://" + strings.Repeat("a", 300) + ".evil.test"
	dupACRM := preflight(app, "PUT")
	dupACRM.DuplicateACRM = true
	pna := preflight(app, "GET")
	pna.Route, pna.ACRPN = "nomax", "true"
	nomaxPUT := preflight(app, "DELETE")
	nomaxPUT.Route = "nomax"
	unknown := get(app)
	unknown.PolicyName = "typo"
	for _, c := range []struct {
		name string
		req  policy.Request
		want string
	}{
		{"allowed", preflight(app, "GET", "content-type"), ""},
		{"origin", get("https://evil.test"), `origin "https://evil.test" is not allowed by policy "web"`},
		{"origin with control characters", get("https://evil.test\x01\u00e9"), `origin "https://evil.test\x01\u00e9" is not an origin a browser sends (policy "web")`},
		{"long origin", get(long), `origin "https://` + strings.Repeat("a", 120) + `"... is not an origin a browser sends (policy "web")`},
		{"method", nomaxPUT, `method "DELETE" is not in allow_methods of policy "nomax"`},
		{"two methods", dupACRM, `the preflight has more than one Access-Control-Request-Method header (policy "web")`},
		{"header", preflight(app, "GET", "content-type, X-Api-Key"), `request header "x-api-key" is not in allow_headers of policy "web"`},
		{"header not a token", preflight(app, "GET", "x(y)"), `Access-Control-Request-Headers names "x(y)", which is not a header name (policy "web")`},
		{"private network", pna, `private network access is not allowed: allow_private_network is false in policy "nomax"`},
		{"unknown policy", unknown, `the route names a policy in x-corsproc-policy that the policy set does not define`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var d policy.Decision
			set.Decide(&c.req, &d)
			got := d.Refusal(&c.req)
			if got != c.want {
				t.Errorf("Refusal = %s\nwant      %s", got, c.want)
			}
			for i := 0; i < len(got); i++ {
				if got[i] < 0x20 || got[i] > 0x7e {
					t.Fatalf("Refusal has byte %#x at %d: not safe in a header value", got[i], i)
				}
			}
		})
	}
}
