package gatewayapi

import (
	"flag"
	"os"
	"path/filepath"
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

// TestGolden pins the policy file and the warnings of each fixture.
func TestGolden(t *testing.T) { importertest.GoldenFixtures(t, imp, ".yaml", 3, true, *update) }

type check struct {
	req     policy.Request
	outcome policy.Outcome
}

func decideAll(t *testing.T, set *policy.Set, checks []check) {
	t.Helper()
	cs := make([]importertest.Check, len(checks))
	for i, c := range checks {
		cs[i] = importertest.Check{Req: c.req, Outcome: c.outcome}
	}
	importertest.DecideAll(t, set, cs)
}

var (
	preflight = importertest.Preflight
	get       = importertest.Get
	fix       = importertest.Fix
)

// TestConformance checks Gateway API's CORS conformance manifests
// against the answers its conformance test expects
// (conformance/tests/httproute-cors.go, v1.6.1). One route allows "*"
// with credentials, which the test expects to be answered with the
// request's Origin: corsproc refuses that (docs/policy.md, Origins), at
// its line. With the decision the refusal asks for (list the origins),
// every other answer is the conformance test's.
func TestConformance(t *testing.T) {
	res := importFile(t, "conformance.yaml")
	if res.LoadError == nil || !res.Unsafe() {
		t.Fatalf("* with credentials loads:\n%s", importertest.Report(res))
	}
	for _, w := range res.Warnings {
		if w.Code == importer.CodeUnsafeOrigin && w.Line != 97 {
			t.Errorf("unsafe origin at line %d, want the allowOrigins of the credentialed route, 97: %s", w.Line, w)
		}
	}
	y := string(res.YAML)
	i := strings.Index(y, "cors-wildcard-methods-headers.rule-0")
	j := i + strings.Index(y[i:], "allow_all_origins: true")
	y = y[:j] + "allowed_origins: [https://other.foo.com]" + y[j+len("allow_all_origins: true"):]
	set, err := policyfile.Parse("fixed.yaml", []byte(y))
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	const host = "gateway.example"
	decideAll(t, set, []check{
		{preflight(host, "/cors-1", "", "https://www.foo.com", "GET", "x-header-1, x-header-2"), policy.OutcomePreflightAllowed},
		{preflight(host, "/cors-1", "", "https://www.bar.com", "GET", "x-header-1, x-header-2"), policy.OutcomePreflightAllowed},
		{preflight(host, "/cors-1", "", "https://xpto.www.bar.com", "GET", "x-header-1, x-header-2"), policy.OutcomePreflightAllowed},
		{preflight(host, "/cors-1", "", "https://foobar.com", "GET"), policy.OutcomePreflightRejected},
		{get(host, "/cors-1", "", "https://www.foo.com"), policy.OutcomeAllowed},
		{get(host, "/cors-1", "", "https://www.bar.com"), policy.OutcomeAllowed},
		{get(host, "/cors-1", "", "https://foobar.com"), policy.OutcomeDenied},
		{preflight(host, "/cors-2", "", "https://www.foo.com", "POST"), policy.OutcomePreflightAllowed},
		{preflight(host, "/cors-wildcard-origin", "", "https://foobar.com", "PUT"), policy.OutcomePreflightAllowed},
		{preflight(host, "/cors-wildcard-origin", "", "https://foobar.com:12345", "PUT"), policy.OutcomePreflightAllowed},
		{get(host, "/cors-wildcard-origin", "", "https://foobar.com:12345"), policy.OutcomeAllowed},
		{preflight(host, "/cors-wildcard-methods-headers", "", "https://other.foo.com", "PUT", "x-header-1, x-header-2"), policy.OutcomePreflightAllowed},
		{get(host, "/cors-wildcard-methods-headers", "", "https://other.foo.com"), policy.OutcomeAllowed},
		{preflight(host, "/cors-wildcard-methods-headers-unauth", "", "https://other.foo.com", "PUT", "x-header-1, x-header-2"), policy.OutcomePreflightAllowed},
		{get(host, "/cors-wildcard-methods-headers-unauth", "", "https://other.foo.com"), policy.OutcomeAllowed},
	})
	headers := func(r policy.Request) *policy.Decision {
		var d policy.Decision
		set.Decide(&r, &d)
		return &d
	}
	d := headers(preflight(host, "/cors-1", "", "https://www.foo.com", "GET", "x-header-1, x-header-2"))
	for name, want := range map[string]string{policy.HeaderACAO: "https://www.foo.com", policy.HeaderACMA: "3600", policy.HeaderACAC: "true"} {
		if v, _ := d.Header(name); v != want {
			t.Errorf("/cors-1 preflight: %s %q, want %q", name, v, want)
		}
	}
	for _, path := range []string{"/cors-2", "/cors-wildcard-methods-headers-unauth"} {
		if v, ok := headers(get(host, path, "", "https://www.foo.com")).Header(policy.HeaderACAC); ok {
			t.Errorf("%s: Access-Control-Allow-Credentials %q without allowCredentials", path, v)
		}
	}
	if v, _ := headers(get(host, "/cors-wildcard-methods-headers", "", "https://other.foo.com")).Header(policy.HeaderACAC); v != "true" {
		t.Errorf("credentialed route: Access-Control-Allow-Credentials %q", v)
	}
}

// TestSecurityPolicyExample checks Envoy Gateway's CORS task: its
// http://*.foo.com with credentials is refused by corsproc (plain http
// with credentials, docs/policy.md), at its line. With https instead, the
// policy answers as Envoy Gateway did: subdomains of foo.com at any depth,
// never the apex, GET and POST, the two headers, on the route's host only.
func TestSecurityPolicyExample(t *testing.T) {
	res := importFile(t, "eg-securitypolicy.yaml")
	if res.LoadError == nil || !res.Unsafe() {
		t.Fatalf("http:// with credentials loads:\n%s", importertest.Report(res))
	}
	set := fix(t, res, "- http://*.foo.com", "- https://*.foo.com")
	const host = "www.example.com"
	decideAll(t, set, []check{
		{preflight(host, "/", "", "https://a.foo.com", "POST", "x-header-1"), policy.OutcomePreflightAllowed},
		{preflight(host, "/get", "", "https://a.b.foo.com", "GET", "x-header-2"), policy.OutcomePreflightAllowed},
		{preflight(host, "/", "", "https://a.foo.com", "PUT"), policy.OutcomePreflightRejected},
		{preflight(host, "/", "", "https://a.foo.com", "POST", "x-header-3"), policy.OutcomePreflightRejected},
		{get(host, "/", "", "https://foo.com"), policy.OutcomeDenied},
		{get(host, "/", "", "https://a.foo.com"), policy.OutcomeAllowed},
		{get("api.example.com", "/", "", "https://a.foo.com"), policy.OutcomeUngoverned},
	})
}

// TestGatewayPolicies checks SecurityPolicies on a Gateway (by
// targetSelectors) and on its listener (by sectionName) whose routes are
// not among the input: each listener's hostname selects its policy, the
// listener's displacing the Gateway's.
func TestGatewayPolicies(t *testing.T) {
	res := importFile(t, "gateway-policies.yaml")
	if res.LoadError != nil || res.Incomplete() {
		t.Fatalf("load %v, incomplete %t\n%s", res.LoadError, res.Incomplete(), importertest.Report(res))
	}
	decideAll(t, res.Set, []check{
		{preflight("api.example.com", "/v1", "", "https://app.example.com", "PATCH", "authorization"), policy.OutcomePreflightAllowed},
		{preflight("api.example.com", "/v1", "", "https://x.app.example.com", "DELETE"), policy.OutcomePreflightRejected},
		{get("api.example.com", "/v1", "", "https://admin.example.com"), policy.OutcomeDenied},
		// apps: any https origin, any method and header.
		{preflight("a.apps.example.com", "/", "", "https://anything.example", "DELETE", "x-custom"), policy.OutcomePreflightAllowed},
		{get("a.apps.example.com", "/", "", "http://anything.example"), policy.OutcomeDenied},
		{get("www.example.com", "/", "", "https://app.example.com"), policy.OutcomeUngoverned},
	})
}

// TestPrecedence checks which CORS each rule gets: its own CORS filter,
// else the SecurityPolicy on the rule, else the one on the route (the
// newer one on the same route is Conflicted in Envoy Gateway, and left
// out), else the Gateway's; the exact path before the prefixes.
func TestPrecedence(t *testing.T) {
	res := importFile(t, "precedence.yaml")
	if res.LoadError != nil || !res.Incomplete() {
		t.Fatalf("load %v, incomplete %t (the Conflicted policy asks for a decision)\n%s", res.LoadError, res.Incomplete(), importertest.Report(res))
	}
	const shop = "shop.example.com"
	o := "https://shop.example.com"
	decideAll(t, res.Set, []check{
		{preflight(shop, "/graphql", "", o, "POST", "content-type"), policy.OutcomePreflightAllowed},
		{preflight(shop, "/graphql", "", "https://m.shop.example.com", "POST"), policy.OutcomePreflightRejected},
		{preflight(shop, "/api/cart", "", "https://m.shop.example.com", "PUT", "authorization"), policy.OutcomePreflightAllowed},
		{preflight(shop, "/assets/0af.js", "", o, "PUT"), policy.OutcomePreflightRejected},
		{get(shop, "/assets/0af.js", "", o), policy.OutcomeAllowed},
		{get(shop, "/assets/0af.js", "", "https://evil.example"), policy.OutcomeDenied},
		{get("blog.example.com", "/post/1", "", "https://www.example.com"), policy.OutcomeAllowed},
		{get("blog.example.com", "/post/1", "", o), policy.OutcomeDenied},
	})
	for _, w := range res.Warnings {
		if w.Code == importer.CodeConflict && w.Line != 108 {
			t.Errorf("conflict at line %d, want storefront-old's targetRef, 108: %s", w.Line, w)
		}
	}
	for _, p := range res.Policies {
		if strings.Contains(p, "old") {
			t.Errorf("the Conflicted SecurityPolicy got policy %s", p)
		}
	}
}

// TestReadErrors checks what stops an import: a file that is not YAML, or
// is larger than importer.MaxFileSize. Objects of other kinds, and
// documents that are not objects, are skipped.
func TestReadErrors(t *testing.T) {
	if _, err := Read([]importer.File{{Name: "bad.yaml", Data: []byte("kind: [VirtualService\n")}}); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("not YAML: %v", err)
	}
	big := make([]byte, importer.MaxFileSize+1)
	if _, err := Read([]importer.File{{Name: "big.yaml", Data: big}}); err == nil {
		t.Error("a file over MaxFileSize is read")
	}
	rs, err := Read([]importer.File{{Name: "other.yaml", Data: []byte("- a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n")}})
	if err != nil || len(rs.Policies) != 0 || len(rs.Warnings) != 1 {
		t.Errorf("other kinds: %v, %d policies, warnings %v", err, len(rs.Policies), rs.Warnings)
	}
}

func FuzzRead(f *testing.F) {
	names, _ := filepath.Glob("testdata/*.yaml")
	for _, n := range names {
		if data, err := os.ReadFile(n); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nspec: {rules: [{matches: [{path: {type: RegularExpression, value: '('}}], filters: [{type: CORS, cors: {maxAge: x}}]}]}"))
	f.Add([]byte("kind: SecurityPolicy\napiVersion: gateway.envoyproxy.io/v1alpha1\nspec: {targetSelectors: [{kind: Gateway}], cors: {allowOrigins: ['*', 'https://*.', 'a*b']}}\n---\nkind: Gateway\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: g}"))
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
