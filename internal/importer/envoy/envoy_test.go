package envoy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/importer"
	"github.com/corsproc/corsproc/internal/importer/importertest"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// The helpers every source importer's tests share (importertest).
var imp = importertest.FromRead(Read)

func importFile(t *testing.T, name string) *importer.Result {
	t.Helper()
	return importertest.ImportFile(t, imp, name)
}

func importText(t *testing.T, name, text string) *importer.Result {
	t.Helper()
	return importertest.ImportText(t, imp, name, text)
}

// TestGolden pins the policy file and the warnings of each fixture, and
// that every key says where it came from.
func TestGolden(t *testing.T) { importertest.GoldenFixtures(t, imp, ".yaml", 2, true, *update) }

type check struct {
	req     policy.Request
	outcome policy.Outcome
	shadow  bool
}

func decideAll(t *testing.T, set *policy.Set, checks []check) {
	t.Helper()
	for _, c := range checks {
		var d policy.Decision
		set.Decide(&c.req, &d)
		// A refusal is a refusal, whether corsproc answers it 403 or
		// forwards it with the upstream's CORS headers removed.
		if allows(d.Outcome) != allows(c.outcome) || d.Shadow != c.shadow {
			t.Errorf("%s %s%s route %q from %q (ACRM %q): %v shadow %t (%v, policy %q), want %v shadow %t", c.req.Method, c.req.Host, c.req.Path, c.req.Route, c.req.Origin, c.req.ACRM, d.Outcome, d.Shadow, d.Reason, d.Policy, c.outcome, c.shadow)
		}
	}
}

func allows(o policy.Outcome) bool {
	return o == policy.OutcomeAllowed || o == policy.OutcomePreflightAllowed
}

func req(method, host, path, route, origin, acrm string, acrh ...string) policy.Request {
	return policy.Request{Method: method, Host: host, Path: path, Route: route, Origin: origin, ACRM: acrm, ACRH: acrh}
}

// TestSandbox checks Envoy's CORS sandbox: Envoy allows every origin on
// /cors/open (the regex \* matches the string "*", which
// CorsFilter::isOriginAllowed tries first), only *.envoyproxy.io on
// /cors/restricted, nothing on /cors/disabled, and GET only in preflights
// (the browser refuses PUT: Envoy's Access-Control-Allow-Methods is GET).
func TestSandbox(t *testing.T) {
	res := importFile(t, "sandbox.yaml")
	if res.Set == nil || res.Incomplete() {
		t.Fatalf("incomplete:\n%s", importertest.Report(res))
	}
	if !res.Unsafe() {
		t.Error("no Vary: Origin is not reported")
	}
	const h = "localhost"
	decideAll(t, res.Set, []check{
		{req("GET", h, "/cors/open", "", "https://any.example", ""), policy.OutcomeAllowed, false},
		{req("OPTIONS", h, "/cors/open", "", "https://any.example", "GET"), policy.OutcomePreflightAllowed, false},
		{req("OPTIONS", h, "/cors/open", "", "https://any.example", "PUT"), policy.OutcomePreflightRejected, false},
		// No allow_headers: Envoy sends no Access-Control-Allow-Headers,
		// so the browser refuses any non-safelisted header.
		{req("OPTIONS", h, "/cors/open", "", "https://any.example", "GET", "x-custom"), policy.OutcomePreflightRejected, false},
		{req("GET", h, "/cors/restricted", "", "https://www.envoyproxy.io", ""), policy.OutcomeAllowed, false},
		{req("GET", h, "/cors/restricted", "", "https://example.com", ""), policy.OutcomeDenied, false},
		// A preflight Envoy does not allow goes to the upstream.
		{req("OPTIONS", h, "/cors/restricted", "", "https://example.com", "GET"), policy.OutcomePreflightForwarded, false},
		// Disabled: decided, recorded, nothing changed.
		{req("GET", h, "/cors/disabled", "", "https://any.example", ""), policy.OutcomeAllowed, true},
	})
}

// TestCredentials checks an HttpConnectionManager with credentials: the
// prefix match lets in https://admin.example.com.evil.invalid in Envoy,
// so corsproc refuses it as unsafe at its line; ext_authz ahead of the CORS
// filter is reported; once the user deletes the refused regex, requests get
// the answers Envoy gave.
func TestCredentials(t *testing.T) {
	res := importFile(t, "credentials.yaml")
	if res.LoadError == nil || !res.Unsafe() {
		t.Fatalf("the prefix with credentials loads:\n%s", importertest.Report(res))
	}
	codes := map[importer.Code]int{}
	for _, w := range res.Warnings {
		codes[w.Code]++
		if w.Code == importer.CodeUnsafeOrigin && (w.Line != 25 || !strings.Contains(w.Setting, "allow_origin_string_match[1]")) {
			t.Errorf("unsafe origin at %d %q", w.Line, w.Setting)
		}
		if w.Code == importer.CodePreflightAuth && w.Line != 5 {
			t.Errorf("preflight auth at %d", w.Line)
		}
	}
	if codes[importer.CodeUnsafeOrigin] != 1 || codes[importer.CodePreflightAuth] != 1 {
		t.Errorf("codes %v", codes)
	}
	fixed := regexp.MustCompile(`(?m)^    allowed_origin_regexes:.*\n      - 'https://admin\\\.example\\\.com\.\*'.*\n`).ReplaceAllString(string(res.YAML), "")
	set, err := policyfile.Parse("fixed.yaml", []byte(fixed))
	if err != nil {
		t.Fatalf("%v\n%s", err.(*policy.ValidationError).Diagnostics, fixed)
	}
	decideAll(t, set, []check{
		{req("GET", "api.example.com", "/orders", "", "https://app.example.com", ""), policy.OutcomeAllowed, false},
		{req("GET", "api.example.com", "/orders", "", "https://evil.example.org", ""), policy.OutcomeDenied, false},
		{req("OPTIONS", "api.example.com", "/orders", "", "https://evil.example.org", "PUT"), policy.OutcomePreflightRejected, false},
		{req("OPTIONS", "api.example.com", "/orders", "", "https://app.example.com", "PUT", "authorization"), policy.OutcomePreflightAllowed, false},
		// The named route: its own origins, methods *, the virtual host's headers.
		{req("OPTIONS", "api.example.com", "/v2/x", "api-v2", "https://pr-1.example.com", "PATCH", "x-request-id"), policy.OutcomePreflightAllowed, false},
		{req("GET", "api.example.com", "/v2/x", "api-v2", "https://app.example.com.evil.invalid", ""), policy.OutcomeDenied, false},
		// The legacy cors fields: the route's origins, the virtual host's methods.
		{req("GET", "a.legacy.example.com", "/status", "", "https://status.example.com", ""), policy.OutcomeAllowed, false},
		{req("GET", "a.legacy.example.com", "/status", "", "https://www.example.com", ""), policy.OutcomeDenied, false},
		{req("GET", "a.legacy.example.com", "/other", "", "https://www.example.com", ""), policy.OutcomeAllowed, false},
	})
}

func TestForms(t *testing.T) {
	t.Run("route configuration alone", func(t *testing.T) {
		res := importText(t, "rc.json", `{"name": "rc", "virtual_hosts": [{"name": "v", "domains": ["a.example"],
 "typed_per_filter_config": {"envoy.filters.http.cors": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
 "allowOriginStringMatch": [{"exact": "https://b.example"}], "allowCredentials": true}}}]}`)
		if res.Set == nil || !strings.Contains(importertest.Report(res), "HttpConnectionManager of this route configuration is not in the files") {
			t.Fatal(importertest.Report(res))
		}
		decideAll(t, res.Set, []check{{req("GET", "a.example", "/", "", "https://b.example", ""), policy.OutcomeAllowed, false}})
	})
	t.Run("invalid policy is left out", func(t *testing.T) {
		res := importText(t, "bad.yaml", "virtual_hosts:\n- name: v\n  domains: ['*']\n  cors:\n    allow_origin_string_match: 3\n")
		if !res.Incomplete() || !strings.Contains(importertest.Report(res), "bad.yaml:5") && !strings.Contains(importertest.Report(res), "bad.yaml:4") {
			t.Error(importertest.Report(res))
		}
	})
	t.Run("not YAML", func(t *testing.T) {
		if _, err := Read([]importer.File{{Name: "x.yaml", Data: []byte("a: [\n")}}); err == nil {
			t.Error("no error")
		}
	})
}

func FuzzRead(f *testing.F) {
	for _, n := range []string{"sandbox.yaml", "credentials.yaml"} {
		if data, err := os.ReadFile(filepath.Join("testdata", n)); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("virtual_hosts: [{domains: ['*:*', '[::1]:8'], cors: {allow_origin_string_match: [{prefix: ''}]}, routes: [{match: {safe_regex: {regex: '('}}, route: {cors: {}}}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Read([]importer.File{{Name: "f.yaml", Data: data}})
		if err != nil {
			return
		}
		if _, err := importer.Build(rs); err != nil {
			t.Fatalf("Build: %v", err)
		}
	})
}

// TestJWTBypass checks that jwt_authn with bypass_cors_preflight, which
// lets preflights through, is not reported as refusing them, and without
// it is.
func TestJWTBypass(t *testing.T) {
	const conf = `http_filters:
- name: envoy.filters.http.jwt_authn
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
    bypass_cors_preflight: %s
- name: envoy.filters.http.cors
route_config:
  virtual_hosts:
  - name: v
    domains: [a.example]
    cors: {allow_origin_string_match: [{exact: https://b.example}]}
`
	for _, bypass := range []string{"true", "false"} {
		res := importText(t, "hcm.yaml", strings.Replace(conf, "%s", bypass, 1))
		got := strings.Contains(importertest.Report(res), "[preflight_auth,unsafe]")
		if got != (bypass == "false") {
			t.Errorf("bypass_cors_preflight %s: preflight_auth reported %t\n%s", bypass, got, importertest.Report(res))
		}
	}
}

// TestStarAmongNames checks the lists Envoy sends as written: a "*"
// among other methods or headers is a literal that browsers read as a
// wildcard only for requests without credentials, so under
// allow_credentials the policy allows the listed names and no others, as
// Envoy's answers did; names browsers reject in the header are left out
// with a warning, and the policy loads.
func TestStarAmongNames(t *testing.T) {
	res := importText(t, "rc.yaml", `name: rc
virtual_hosts:
- name: api
  domains: [api.example.com]
  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_origin_string_match: [{exact: "https://app.example.com"}]
      allow_methods: "GET, *, GET"
      allow_headers: "x-a, *, bad header"
      expose_headers: "*, x-b"
      allow_credentials: true
`)
	if res.Set == nil {
		t.Fatalf("the policy does not load:\n%s", importertest.Report(res))
	}
	for _, line := range []int{9, 10, 11} {
		if !strings.Contains(importertest.Report(res), fmt.Sprintf("rc.yaml:%d:", line)) {
			t.Errorf("no warning at line %d:\n%s", line, importertest.Report(res))
		}
	}
	const h, o = "api.example.com", "https://app.example.com"
	decideAll(t, res.Set, []check{
		{req("OPTIONS", h, "/", "", o, "GET", "x-a"), policy.OutcomePreflightAllowed, false},
		{req("OPTIONS", h, "/", "", o, "PUT"), policy.OutcomePreflightRejected, false},
		{req("OPTIONS", h, "/", "", o, "GET", "x-other"), policy.OutcomePreflightRejected, false},
	})
}

// TestExactOriginsBrowsersNeverSend checks that an exact matcher no
// Origin header equals (upper case in the host, a trailing slash), which
// Envoy compares byte for byte and so never matched, is left out with a
// warning at its line, as the Istio and Gateway API importers do, instead
// of being refused as unsafe; with ignore_case, upper case matched and is
// kept.
func TestExactOriginsBrowsersNeverSend(t *testing.T) {
	res := importText(t, "rc.yaml", `name: rc
virtual_hosts:
- name: api
  domains: [api.example.com]
  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_origin_string_match:
      - exact: "https://App.example.com"
      - exact: "https://b.example.com/"
      - {exact: "https://C.example.com", ignore_case: true}
      allow_credentials: true
`)
	if res.Set == nil {
		t.Fatalf("the policy does not load:\n%s", importertest.Report(res))
	}
	lines := map[int]bool{}
	for _, w := range res.Warnings {
		if w.Code == importer.CodeUnsafeOrigin {
			t.Errorf("refused as unsafe: %s", w)
		}
		if w.Code == importer.CodeDifference && strings.Contains(w.Message, "not an Origin browsers send") {
			lines[w.Line] = true
		}
	}
	if !lines[9] || !lines[10] || len(lines) != 2 {
		t.Errorf("left out at lines %v, want 9 and 10:\n%s", lines, importertest.Report(res))
	}
	const h = "api.example.com"
	decideAll(t, res.Set, []check{
		{req("GET", h, "/", "", "https://c.example.com", ""), policy.OutcomeAllowed, false},
		{req("GET", h, "/", "", "https://app.example.com", ""), policy.OutcomeDenied, false},
		{req("GET", h, "/", "", "https://b.example.com", ""), policy.OutcomeDenied, false},
	})
}

// TestSmallFraction checks that filter_enabled below 1% (50 of
// TEN_THOUSAND) is a fraction of the requests, as Envoy's runtime
// featureEnabled takes it, not 0%: the policy applies, with the warning
// that Envoy applied CORS to part of the traffic, instead of the shadow
// mode of a disabled filter.
func TestSmallFraction(t *testing.T) {
	res := importText(t, "rc.yaml", `name: rc
virtual_hosts:
- name: api
  domains: [api.example.com]
  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_origin_string_match: [{exact: "https://app.example.com"}]
      filter_enabled:
        default_value: {numerator: 50, denominator: TEN_THOUSAND}
`)
	if res.Set == nil {
		t.Fatalf("the policy does not load:\n%s", importertest.Report(res))
	}
	if !strings.Contains(importertest.Report(res), "runtime fraction (runtime key \"\", default 0.5%)") {
		t.Errorf("no warning on the fraction:\n%s", importertest.Report(res))
	}
	decideAll(t, res.Set, []check{
		{req("GET", "api.example.com", "/", "", "https://app.example.com", ""), policy.OutcomeAllowed, false},
		{req("GET", "api.example.com", "/", "", "https://evil.example", ""), policy.OutcomeDenied, false},
	})
}
