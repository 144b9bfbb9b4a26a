package istio

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/importer"
	"github.com/corsproc/corsproc/internal/importer/importertest"
	"github.com/corsproc/corsproc/policy"
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

// TestRatingsExample checks Istio's own corsPolicy example: Envoy allows
// https://example.com, sends Access-Control-Allow-Methods: POST,GET and
// Access-Control-Allow-Headers: X-Foo-Bar, so browsers allow those and
// nothing else; a preflight from another origin goes to the upstream
// (FORWARD), which answers without CORS headers, so it fails. The
// imported policy gives the same answers on every name the sidecar's
// virtual host answers, and leaves other hosts alone.
func TestRatingsExample(t *testing.T) {
	res := importFile(t, "ratings.yaml")
	if res.LoadError != nil || res.Incomplete() {
		t.Fatalf("load %v, incomplete %t\n%s", res.LoadError, res.Incomplete(), importertest.Report(res))
	}
	const o = "https://example.com"
	var checks []check
	for _, host := range []string{"ratings.prod.svc.cluster.local", "ratings.prod", "ratings.prod.svc:9080"} {
		checks = append(checks,
			check{preflight(host, "/ratings/0", "", o, "POST", "x-foo-bar"), policy.OutcomePreflightAllowed},
			check{preflight(host, "/ratings/0", "", o, "GET"), policy.OutcomePreflightAllowed},
			check{preflight(host, "/ratings/0", "", o, "PUT"), policy.OutcomePreflightForwarded},
			check{preflight(host, "/ratings/0", "", o, "POST", "x-other"), policy.OutcomePreflightForwarded},
			check{preflight(host, "/ratings/0", "", "https://evil.example", "POST"), policy.OutcomePreflightForwarded},
			check{get(host, "/ratings/0", "", o), policy.OutcomeAllowed},
			check{get(host, "/ratings/0", "", "https://example.com.evil.invalid"), policy.OutcomeDenied},
		)
	}
	checks = append(checks, check{get("reviews.prod.svc.cluster.local", "/", "", o), policy.OutcomeUngoverned})
	decideAll(t, res.Set, checks)
	var d policy.Decision
	r := get("ratings.prod", "/", "", o)
	res.Set.Decide(&r, &d)
	if v, ok := d.Header(policy.HeaderACAC); ok {
		t.Errorf("allowCredentials: false sent ACAC %q", v)
	}
}

// TestGatewayExample checks an ingress VirtualService with named routes.
// Istio's prefix https://admin.example.com also lets in
// https://admin.example.com.evil.invalid, with credentials: corsproc
// refuses it at its line (docs/policy.md, Origins). Once the user writes
// the one origin meant, the policy answers as Istio did for every other
// request: by route name, by host and exact path for the unnamed route,
// preflights from other origins answered with a refusal (IGNORE), and
// the route without corsPolicy left alone.
func TestGatewayExample(t *testing.T) {
	res := importFile(t, "gateway.yaml")
	if res.LoadError == nil || !res.Unsafe() {
		t.Fatalf("the prefix origin with credentials loads:\n%s", importertest.Report(res))
	}
	for _, w := range res.Warnings {
		if w.Code == importer.CodeUnsafeOrigin && w.Line != 36 {
			t.Errorf("unsafe origin reported at line %d, want the prefix's 36: %s", w.Line, w)
		}
	}
	set := fix(t, res, `'https://admin\.example\.com.*'`, `'https://admin\.example\.com'`)
	const host = "shop.example.com"
	shop, admin := "https://shop.example.com", "https://admin.example.com"
	decideAll(t, set, []check{
		{preflight(host, "/api/v1/cart", "api.v1", shop, "PUT", "authorization", "content-type"), policy.OutcomePreflightAllowed},
		{preflight(host, "/api/v2/cart", "api.v2", admin, "DELETE"), policy.OutcomePreflightAllowed},
		{preflight(host, "/api/v1/cart", "api.v1", "https://pr-42.preview.example.com", "POST", "x-request-id"), policy.OutcomePreflightAllowed},
		{preflight(host, "/api/v1/cart", "api.v1", shop, "PATCH"), policy.OutcomePreflightRejected},
		{preflight(host, "/api/v1/cart", "api.v1", "https://evil.example", "POST"), policy.OutcomePreflightRejected},
		{get(host, "/api/v1/cart", "api.v1", admin), policy.OutcomeAllowed},
		// What Istio's prefix allowed and corsproc refuses.
		{get(host, "/api/v1/cart", "api.v1", "https://admin.example.com.evil.invalid"), policy.OutcomeDenied},
		{preflight(host, "/graphql", "", shop, "POST", "content-type"), policy.OutcomePreflightAllowed},
		{preflight(host, "/graphql", "", admin, "POST"), policy.OutcomePreflightRejected},
		{get(host, "/graphql", "", shop), policy.OutcomeAllowed},
		{get(host, "/graphql/x", "", shop), policy.OutcomeUngoverned},
		{get(host, "/healthz", "health", shop), policy.OutcomeUngoverned},
	})
	var d policy.Decision
	r := preflight(host, "/graphql", "", shop, "POST")
	set.Decide(&r, &d)
	if _, ok := d.Header(policy.HeaderACMA); ok {
		t.Error("a corsPolicy without maxAge sends Access-Control-Max-Age")
	}
	r = preflight(host, "/api/v1/cart", "api.v1", shop, "PUT")
	set.Decide(&r, &d)
	if v, _ := d.Header(policy.HeaderACMA); v != "3600" {
		t.Errorf("maxAge 1h: Access-Control-Max-Age %q", v)
	}
}

// TestDump checks a kubectl dump of many teams' VirtualServices: the
// regex .* with credentials reflects every origin in Istio, which
// corsproc refuses; two VirtualServices define CORS for the same host and
// path differently, which is a conflict; a delegate's policy gets its
// root's hosts; and an AuthorizationPolicy that preflights reach before
// Istio's CORS filter is reported.
func TestDump(t *testing.T) {
	res := importFile(t, "dump.yaml")
	if res.LoadError == nil || !res.Unsafe() || !res.Incomplete() {
		t.Fatalf("load %v, unsafe %t, incomplete %t\n%s", res.LoadError, res.Unsafe(), res.Incomplete(), importertest.Report(res))
	}
	found := map[importer.Code]int{}
	for _, w := range res.Warnings {
		found[w.Code]++
	}
	if found[importer.CodeUnsafeOrigin] != 1 || found[importer.CodeConflict] != 1 || found[importer.CodePreflightAuth] != 1 || found[importer.CodeMissingVary] != 4 {
		t.Errorf("findings %v\n%s", found, importertest.Report(res))
	}
	// The decision the refusal asks for: no credentials.
	set := fix(t, res, "allow_credentials: true  # corsPolicy.allowCredentials, dump.yaml:26", "allow_credentials: false")
	decideAll(t, set, []check{
		// reviews: any origin, GET only, by route name or host.
		{get("reviews.bookinfo.svc.cluster.local", "/", "reviews-v1", "https://anything.example"), policy.OutcomeAllowed},
		{preflight("reviews.bookinfo", "/", "reviews-v1", "https://anything.example", "DELETE"), policy.OutcomePreflightForwarded},
		// catalog: team-a's rules hold the host and path; "GET, POST" is two
		// methods; allowHeaders * is echoed, so any header passes.
		{preflight("catalog.example.com", "/v1/items", "", "https://catalog.example.com", "POST", "x-anything", "authorization"), policy.OutcomePreflightAllowed},
		{preflight("catalog.example.com", "/v1/items", "", "https://catalog.example.com", "PUT"), policy.OutcomePreflightForwarded},
		{get("catalog.example.com", "/v1/items", "", "https://other.example"), policy.OutcomeDenied},
		{get("catalog.example.com", "/v2/items", "", "https://catalog.example.com"), policy.OutcomeUngoverned},
		// The delegate's route, under its root's host.
		{preflight("www.example.com", "/account/me", "account", "https://www.example.com", "PATCH", "content-type"), policy.OutcomePreflightAllowed},
		{get("www.example.com", "/account/me", "account", "https://evil.example"), policy.OutcomeDenied},
	})
}

// TestDelegateRouteNames checks the route names of a delegate's routes:
// Istio names them after the delegating route, "-", then their own.
func TestDelegateRouteNames(t *testing.T) {
	res := importText(t, "vs.yaml", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: web}
spec:
  hosts: [www.example.com]
  http:
  - name: web
    match: [{uri: {prefix: /shop/}}]
    delegate: {name: shop}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: web}
spec:
  http:
  - name: cart
    match: [{uri: {prefix: /shop/cart}}]
    route: [{destination: {host: cart}}]
    corsPolicy:
      allowOrigins: [{exact: https://www.example.com}]
`)
	if res.LoadError != nil {
		t.Fatal(res.LoadError)
	}
	want := "routes: [web-cart]"
	if !strings.Contains(string(res.YAML), want) {
		t.Errorf("no %q in\n%s", want, res.YAML)
	}
	decideAll(t, res.Set, []check{
		{get("www.example.com", "/shop/cart/1", "web-cart", "https://www.example.com"), policy.OutcomeAllowed},
		{get("api.example.com", "/shop/cart/1", "web-cart", "https://www.example.com"), policy.OutcomeUngoverned},
	})
}

// TestStarMatchers checks Envoy's rule that a matcher matching the string
// "*" allows every origin: the prefix "*" and the regex "[^/]*" do, so
// the policy allows all origins (and says why); the regex "https://.*"
// does not match "*" and stays a regex.
func TestStarMatchers(t *testing.T) {
	for _, tt := range []struct {
		entry    string
		allowAll bool
	}{
		{`{prefix: "*"}`, true},
		{`{regex: "[^/]*"}`, true},
		{`{exact: "*"}`, true},
		{`{regex: "https://.*"}`, false},
	} {
		res := importText(t, "vs.yaml", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api.example.com]
  http:
  - corsPolicy:
      allowOrigins: [`+tt.entry+`]
`)
		if got := strings.Contains(string(res.YAML), "allow_all_origins: true"); got != tt.allowAll {
			t.Errorf("%s: allow_all_origins %t, want %t\n%s", tt.entry, got, tt.allowAll, res.YAML)
		}
		if res.Set == nil {
			t.Fatalf("%s: %v", tt.entry, res.LoadError)
		}
		// Every one of them lets any https origin in.
		decideAll(t, res.Set, []check{{get("api.example.com", "/", "", "https://any.example"), policy.OutcomeAllowed}})
	}
}

// TestWildcardListsWithCredentials checks "*" among other methods,
// headers and exposed headers with credentials: Envoy sends the list as
// it is, and browsers read "*" as a literal name for credentialed
// requests, so it allowed nothing more; it is left out, with a warning.
func TestWildcardListsWithCredentials(t *testing.T) {
	res := importText(t, "vs.yaml", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api.example.com]
  http:
  - corsPolicy:
      allowOrigins: [{exact: https://app.example.com}]
      allowCredentials: true
      allowMethods: [GET, "*"]
      allowHeaders: [content-type, "*"]
      exposeHeaders: ["*", x-request-id]
      unmatchedPreflights: IGNORE
`)
	if res.LoadError != nil {
		t.Fatalf("%v\n%s", res.LoadError, importertest.Report(res))
	}
	for _, want := range []string{"allow_methods: [GET]", "allow_headers: [content-type]", "expose_headers: [x-request-id]"} {
		if !strings.Contains(string(res.YAML), want) {
			t.Errorf("no %q in\n%s", want, res.YAML)
		}
	}
	decideAll(t, res.Set, []check{
		{preflight("api.example.com", "/", "", "https://app.example.com", "PUT"), policy.OutcomePreflightRejected},
		{preflight("api.example.com", "/", "", "https://app.example.com", "POST", "x-custom"), policy.OutcomePreflightRejected},
		{preflight("api.example.com", "/", "", "https://app.example.com", "POST", "content-type"), policy.OutcomePreflightAllowed},
	})
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
	f.Add([]byte("kind: VirtualService\napiVersion: networking.istio.io/v1\nspec: {hosts: [a], http: [{corsPolicy: {allowOrigins: [{regex: '('}], maxAge: -1s}}]}"))
	f.Add([]byte("a: &a [*a]\nkind: VirtualService\napiVersion: networking.istio.io/v1\nspec: {http: [&h {name: x, corsPolicy: {}}, *h, *h]}"))
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

// TestRootCORSWithDelegate checks a delegating route that has a
// corsPolicy: Istio gives it to the delegate's routes that have none, under
// the delegate's route names, so the policy selects by host and path, and
// the delegate's own corsPolicy, bound by its route name, comes first.
func TestRootCORSWithDelegate(t *testing.T) {
	res := importText(t, "vs.yaml", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: web}
spec:
  hosts: [www.example.com]
  http:
  - name: web
    match: [{uri: {prefix: /shop/}}]
    delegate: {name: shop}
    corsPolicy:
      allowOrigins: [{exact: https://www.example.com}]
      unmatchedPreflights: IGNORE
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: web}
spec:
  http:
  - name: cart
    match: [{uri: {prefix: /shop/cart}}]
    corsPolicy:
      allowOrigins: [{exact: https://m.example.com}]
      unmatchedPreflights: IGNORE
  - name: list
    route: [{destination: {host: shop}}]
`)
	if res.LoadError != nil {
		t.Fatal(res.LoadError)
	}
	decideAll(t, res.Set, []check{
		{get("www.example.com", "/shop/list", "web-list", "https://www.example.com"), policy.OutcomeAllowed},
		{get("www.example.com", "/shop/list", "web-list", "https://m.example.com"), policy.OutcomeDenied},
		{get("www.example.com", "/shop/cart/1", "web-cart", "https://m.example.com"), policy.OutcomeAllowed},
		{get("www.example.com", "/shop/cart/1", "web-cart", "https://www.example.com"), policy.OutcomeDenied},
		{get("www.example.com", "/about", "", "https://www.example.com"), policy.OutcomeUngoverned},
	})
}

// TestEveryHost checks an unnamed route of hosts: ["*"] that matches every
// path: nothing but default_policy can select its policy, and it is the
// default_policy.
func TestEveryHost(t *testing.T) {
	res := importText(t, "vs.yaml", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: all, namespace: web}
spec:
  hosts: ["*"]
  http:
  - corsPolicy:
      allowOrigins: [{exact: https://www.example.com}]
`)
	if res.LoadError != nil || res.DefaultPolicy != "web.all.http-0" {
		t.Fatalf("default %q, %v\n%s", res.DefaultPolicy, res.LoadError, res.YAML)
	}
	decideAll(t, res.Set, []check{{get("any.example.com", "/x", "", "https://www.example.com"), policy.OutcomeAllowed}})
}

// TestEarlierRoute checks the warning for an unnamed route after a route
// without corsPolicy whose paths overlap: Istio sends /api/admin/ to the
// first route, without CORS, but the policy of the second, selected by
// host and path, takes it too. A route whose paths cannot overlap gets no
// warning.
func TestEarlierRoute(t *testing.T) {
	const vs = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: web}
spec:
  hosts: [api.example.com]
  http:
  - match: [{uri: {prefix: FIRST}}]
    route: [{destination: {host: admin}}]
  - match: [{uri: {prefix: /api/}}]
    corsPolicy:
      allowOrigins: [{exact: https://www.example.com}]
`
	for first, want := range map[string]bool{"/api/admin/": true, "/api": true, "/healthz": false} {
		res := importText(t, "vs.yaml", strings.Replace(vs, "FIRST", first, 1))
		got := false
		for _, w := range res.Warnings {
			got = got || strings.Contains(w.Message, "requests that Istio sends to the route before it (http[0]")
		}
		if got != want {
			t.Errorf("first route %s: warning %t, want %t\n%s", first, got, want, importertest.Report(res))
		}
	}
}
