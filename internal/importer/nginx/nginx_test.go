package nginx

import (
	"flag"
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
func TestGolden(t *testing.T) { importertest.GoldenFixtures(t, imp, ".conf", 3, true, *update) }

type check struct {
	req     policy.Request
	outcome policy.Outcome
}

func preflight(host, path, origin, method string, headers ...string) policy.Request {
	return policy.Request{Method: "OPTIONS", Host: host, Path: path, Origin: origin, ACRM: method, ACRH: headers}
}

func get(host, path, origin string) policy.Request {
	return policy.Request{Method: "GET", Host: host, Path: path, Origin: origin}
}

func decideAll(t *testing.T, set *policy.Set, checks []check) {
	t.Helper()
	for _, c := range checks {
		var d policy.Decision
		set.Decide(&c.req, &d)
		if d.Outcome != c.outcome {
			t.Errorf("%s %s%s from %q (ACRM %q, ACRH %q): %v (%v, policy %q), want %v", c.req.Method, c.req.Host, c.req.Path, c.req.Origin, c.req.ACRM, c.req.ACRH, d.Outcome, d.Reason, d.Policy, c.outcome)
		}
	}
}

// TestCORSForEverything checks the widely copied wide-open nginx block:
// nginx answers every origin with *, preflights for GET and POST with the
// listed headers, and nothing for other methods (not in
// Access-Control-Allow-Methods). The imported policy gives the same
// answers; DNT, a header browsers never ask for, is left out.
func TestCORSForEverything(t *testing.T) {
	res := importFile(t, "cors-for-everything.conf")
	if res.LoadError != nil || res.Incomplete() || res.Unsafe() {
		t.Fatalf("load %v, incomplete %t, unsafe %t\n%s", res.LoadError, res.Incomplete(), res.Unsafe(), importertest.Report(res))
	}
	const host = "api.example.com"
	decideAll(t, res.Set, []check{
		{preflight(host, "/items", "https://any.example", "POST", "content-type,x-requested-with"), policy.OutcomePreflightAllowed},
		{preflight(host, "/items", "https://other.example", "GET", "range"), policy.OutcomePreflightAllowed},
		{preflight(host, "/items", "https://any.example", "PUT"), policy.OutcomePreflightRejected},
		{preflight(host, "/items", "https://any.example", "POST", "x-custom"), policy.OutcomePreflightRejected},
		{get(host, "/items", "https://any.example"), policy.OutcomeAllowed},
		// Another server's host is not this server's.
		{get("www.example.com", "/", "https://any.example"), policy.OutcomeUngoverned},
	})
}

// TestAllowList checks a map allow list with credentials: the unanchored
// regex in it lets in https://example.com.evil.invalid in nginx, so
// corsproc refuses it as unsafe at its map line; once the user deletes it
// (as the error asks), the policy answers as nginx did for every other
// origin, on /api/ and the rest of the server, and refuses on /static/,
// whose own add_header drops the server's CORS headers.
func TestAllowList(t *testing.T) {
	res := importFile(t, "allowlist.conf")
	if res.LoadError == nil || !res.Unsafe() {
		t.Fatalf("the unanchored regex with credentials loads:\n%s", importertest.Report(res))
	}
	found := map[importer.Code]int{}
	for _, w := range res.Warnings {
		found[w.Code]++
		if w.Code == importer.CodeUnsafeOrigin && w.Line != 7 {
			t.Errorf("unsafe origin reported at line %d, want the map entry's 7: %s", w.Line, w)
		}
	}
	if found[importer.CodeUnsafeOrigin] == 0 || found[importer.CodePreflightAuth] != 1 || found[importer.CodeMissingVary] != 1 {
		t.Errorf("findings %v\n%s", found, importertest.Report(res))
	}
	// The user's correction: delete the refused regex.
	fixed := regexp.MustCompile(`(?m)^.*'\(\?:https://\.\*example\\\.com\)\.\*'.*\n`).ReplaceAllString(string(res.YAML), "")
	set, err := policyfile.Parse("fixed.yaml", []byte(fixed))
	if err != nil {
		t.Fatalf("%v\n%s", err, fixed)
	}
	const host = "shop.example.com"
	decideAll(t, set, []check{
		{get(host, "/api/items", "https://app.example.com"), policy.OutcomeAllowed},
		{get("a.shop.example.net", "/api/items", "https://pr-7.preview.example.com"), policy.OutcomeAllowed},
		{get(host, "/api/items", "https://evil.example.org"), policy.OutcomeDenied},
		{preflight(host, "/api/items", "https://app.example.com", "PUT", "x-request-id"), policy.OutcomePreflightAllowed},
		{preflight(host, "/api/items", "https://app.example.com", "PATCH"), policy.OutcomePreflightRejected},
		{get(host, "/", "https://app.example.com"), policy.OutcomeAllowed},
		{get(host, "/static/app.js", "https://app.example.com"), policy.OutcomeDenied},
		{get("other.example.com", "/api/items", "https://app.example.com"), policy.OutcomeUngoverned},
	})
}

// TestIdioms covers the idioms one at a time.
func TestIdioms(t *testing.T) {
	t.Run("origin if with set", func(t *testing.T) {
		res := importText(t, "site.conf", `server {
  server_name example.com;
  location / {
    if ($http_origin ~* "^https://(WWW|app)\.example\.com$") {
      set $cors $http_origin;
    }
    add_header Access-Control-Allow-Origin $cors always;
    add_header Vary Origin always;
  }
}`)
		if res.Set == nil {
			t.Fatal(importertest.Report(res))
		}
		decideAll(t, res.Set, []check{
			{get("example.com", "/", "https://www.example.com"), policy.OutcomeAllowed},
			{get("example.com", "/", "https://evil.example.com"), policy.OutcomeDenied},
		})
	})
	t.Run("reflected origin with credentials", func(t *testing.T) {
		res := importText(t, "site.conf", "server {\n  add_header Access-Control-Allow-Origin $http_origin;\n  add_header Access-Control-Allow-Credentials true;\n}\n")
		if res.LoadError == nil || !res.Unsafe() {
			t.Fatal(importertest.Report(res))
		}
	})
	t.Run("unknown variable is left out", func(t *testing.T) {
		res := importText(t, "site.conf", "server {\n  server_name a.example;\n  add_header Access-Control-Allow-Origin $upstream_http_x;\n}\n")
		if !res.Incomplete() || !strings.Contains(importertest.Report(res), "site.conf:3: add_header Access-Control-Allow-Origin: the origin comes from $upstream_http_x") {
			t.Error(importertest.Report(res))
		}
	})
	t.Run("include of a snippet", func(t *testing.T) {
		rs, err := Read([]importer.File{
			{Name: "conf/cors.conf", Data: []byte("add_header Access-Control-Allow-Origin https://app.example.com always;\nadd_header Vary Origin always;\n")},
			{Name: "conf/site.conf", Data: []byte("server {\n  server_name example.com;\n  location /api/ {\n    include cors.conf;\n  }\n}\n")},
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := importer.Build(rs)
		if err != nil || res.Set == nil || len(res.Policies) != 1 {
			t.Fatalf("%v\n%s", err, importertest.Report(res))
		}
		if !strings.Contains(string(res.YAML), "conf/cors.conf:1") {
			t.Errorf("the origin is not attributed to the snippet:\n%s", res.YAML)
		}
		decideAll(t, res.Set, []check{{get("example.com", "/api/x", "https://app.example.com"), policy.OutcomeAllowed}})
	})
	t.Run("preflight block without allow lists", func(t *testing.T) {
		// nginx answers the preflight itself with no
		// Access-Control-Allow-Methods or -Allow-Headers: browsers then
		// allow only safelisted methods and headers, and so does the policy.
		res := importText(t, "site.conf", `server {
  server_name example.com;
  location / {
    if ($request_method = OPTIONS) {
      add_header Access-Control-Allow-Origin https://app.example.com;
      return 204;
    }
    add_header Access-Control-Allow-Origin https://app.example.com always;
    add_header Vary Origin always;
  }
}`)
		if res.Set == nil {
			t.Fatal(importertest.Report(res))
		}
		importertest.CheckComments(t, res.YAML)
		const o = "https://app.example.com"
		decideAll(t, res.Set, []check{
			{preflight("example.com", "/", o, "POST"), policy.OutcomePreflightAllowed},
			{preflight("example.com", "/", o, "PUT"), policy.OutcomePreflightRejected},
			{preflight("example.com", "/", o, "GET", "authorization"), policy.OutcomePreflightRejected},
			{get("example.com", "/", o), policy.OutcomeAllowed},
		})
	})
	t.Run("case-sensitive method regex", func(t *testing.T) {
		// ~ is case-sensitive: ^options$ never matched the OPTIONS
		// browsers send, so this block never answered a preflight.
		res := importText(t, "site.conf", `server {
  server_name example.com;
  location / {
    if ($request_method ~ ^options$) {
      add_header Access-Control-Allow-Origin https://app.example.com;
      add_header Access-Control-Allow-Methods PUT;
      return 204;
    }
    add_header Access-Control-Allow-Origin https://app.example.com always;
    add_header Access-Control-Allow-Methods GET always;
    add_header Vary Origin always;
  }
}`)
		if res.Set == nil {
			t.Fatal(importertest.Report(res))
		}
		decideAll(t, res.Set, []check{
			{preflight("example.com", "/", "https://app.example.com", "PUT"), policy.OutcomePreflightRejected},
		})
	})
	t.Run("origin regex alternation", func(t *testing.T) {
		// ^a$|b$ is (^a$)|(b$): nginx lets in what ends with b too.
		res := importText(t, "site.conf", `server {
  server_name example.com;
  location / {
    if ($http_origin ~* "^https://app\.example\.com$|\.partner\.example$") {
      set $cors $http_origin;
    }
    add_header Access-Control-Allow-Origin $cors always;
    add_header Vary Origin always;
  }
}`)
		if res.Set == nil {
			t.Fatal(importertest.Report(res))
		}
		decideAll(t, res.Set, []check{
			{get("example.com", "/", "https://app.example.com"), policy.OutcomeAllowed},
			{get("example.com", "/", "https://x.partner.example"), policy.OutcomeAllowed},
			{get("example.com", "/", "https://evil.example"), policy.OutcomeDenied},
		})
	})
	t.Run("syntax error", func(t *testing.T) {
		if _, err := Read([]importer.File{{Name: "bad.conf", Data: []byte("server {\n")}}); err == nil || !strings.Contains(err.Error(), "bad.conf") {
			t.Errorf("err = %v", err)
		}
	})
}

func FuzzRead(f *testing.F) {
	for _, n := range []string{"cors-for-everything.conf", "allowlist.conf", "locations.conf"} {
		data, err := os.ReadFile(filepath.Join("testdata", n))
		if err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("if ($http_origin ~ (a) { set $x $http_origin; } add_header Access-Control-Allow-Origin $x;"))
	f.Add([]byte("map $http_origin $o { ~* 1; default *; } add_header access-control-allow-origin $o; include x;"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Read([]importer.File{{Name: "f.conf", Data: data}})
		if err != nil {
			return
		}
		if _, err := importer.Build(rs); err != nil {
			t.Fatalf("Build: %v", err)
		}
	})
}

// TestConflict checks two files giving one server different CORS rules:
// both rule sets are kept, the first with the host (nginx too uses the
// first server of a name), the second selected by name, and a conflict
// names both blocks at the lines where they start.
func TestConflict(t *testing.T) {
	server := "server {\n    server_name api.example.com;\n    add_header Access-Control-Allow-Origin %s always;\n    add_header Vary Origin always;\n}\n"
	rs, err := Read([]importer.File{
		{Name: "conf.d/a.conf", Data: []byte(strings.Replace(server, "%s", "https://app.example.com", 1))},
		{Name: "conf.d/b.conf", Data: []byte(strings.Replace(server, "%s", "https://admin.example.com", 1))},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := importer.Build(rs)
	if err != nil || res.Set == nil {
		t.Fatalf("%v\n%s", err, importertest.Report(res))
	}
	want := "warning [conflict,unsafe]: conf.d/b.conf:1: server: host api.example.com is defined with different CORS rules here and at conf.d/a.conf:1"
	if !strings.Contains(importertest.Report(res), want) || !res.Incomplete() || len(res.Policies) != 2 {
		t.Errorf("want %q:\n%s", want, importertest.Report(res))
	}
	decideAll(t, res.Set, []check{
		{get("api.example.com", "/", "https://app.example.com"), policy.OutcomeAllowed},
		{get("api.example.com", "/", "https://admin.example.com"), policy.OutcomeDenied},
	})
}

// TestLocations checks the locations fixture: nginx picks = first, then
// regex locations, then the longest prefix, and a block without CORS
// headers of its own inherits the http block's *; the imported policies
// give the same answers.
func TestLocations(t *testing.T) {
	res := importFile(t, "locations.conf")
	if res.Set == nil || res.Incomplete() {
		t.Fatal(importertest.Report(res))
	}
	const h = "cdn.example.com"
	decideAll(t, res.Set, []check{
		{get(h, "/fonts/a.woff2", "https://any.example"), policy.OutcomeAllowed},
		{get(h, "/api/v2/items", "https://v2.example.com"), policy.OutcomeAllowed},
		{get(h, "/api/v2/items", "https://app.example.com"), policy.OutcomeDenied},
		{get(h, "/api/items", "https://app.example.com"), policy.OutcomeAllowed},
		{get(h, "/api/items", "https://v2.example.com"), policy.OutcomeDenied},
		{preflight(h, "/api/items", "https://app.example.com", "PUT", "authorization"), policy.OutcomePreflightAllowed},
		{preflight(h, "/api/items", "https://app.example.com", "DELETE"), policy.OutcomePreflightRejected},
		{get(h, "/health", "https://any.example"), policy.OutcomeAllowed},
		{get(h, "/other", "https://any.example"), policy.OutcomeAllowed},
		{get("elsewhere.example", "/", "https://any.example"), policy.OutcomeAllowed},
	})
	var d policy.Decision
	r := get(h, "/api/v2/x", "https://v2.example.com")
	res.Set.Decide(&r, &d)
	if d.Policy != "cdn.example.com-api-v2" {
		t.Errorf("/api/v2/x is governed by %q, want the longest prefix's policy", d.Policy)
	}
}

// TestLocationRoot checks that location / with CORS headers of its own
// governs every path of its server, as in nginx, rather than conflicting
// with the server's own headers.
func TestLocationRoot(t *testing.T) {
	res := importText(t, "site.conf", `server {
    server_name example.com;
    add_header Access-Control-Allow-Origin https://old.example.com always;
    location / {
        add_header Access-Control-Allow-Origin https://new.example.com always;
    }
}`)
	if res.Set == nil || res.Incomplete() {
		t.Fatal(importertest.Report(res))
	}
	decideAll(t, res.Set, []check{
		{get("example.com", "/x", "https://new.example.com"), policy.OutcomeAllowed},
		{get("example.com", "/x", "https://old.example.com"), policy.OutcomeDenied},
	})
}

// TestFlagIdiom checks the idiom that marks allowed origins with a flag
// variable and adds the headers under if ($cors = "true").
func TestFlagIdiom(t *testing.T) {
	res := importText(t, "site.conf", `server {
    server_name api.example.com;
    set $cors "";
    if ($http_origin ~* "^https://(app|admin)\.example\.com$") {
        set $cors "true";
    }
    if ($http_origin = "https://partner.example.org") {
        set $cors "true";
    }
    location / {
        if ($cors = "true") {
            add_header Access-Control-Allow-Origin $http_origin always;
            add_header Access-Control-Allow-Credentials true always;
            add_header Vary Origin always;
        }
        proxy_pass http://api;
    }
}`)
	if res.Set == nil || res.Incomplete() {
		t.Fatal(importertest.Report(res))
	}
	decideAll(t, res.Set, []check{
		{get("api.example.com", "/x", "https://admin.example.com"), policy.OutcomeAllowed},
		{get("api.example.com", "/x", "https://partner.example.org"), policy.OutcomeAllowed},
		{get("api.example.com", "/x", "https://evil.example.com"), policy.OutcomeDenied},
	})
}

// TestGlobInclude checks include by glob (include sites-enabled/*;): the
// http block's CORS headers reach the servers of the included files, which
// are not read again on their own; and files including each other by glob
// end with a warning, not an endless expansion.
func TestGlobInclude(t *testing.T) {
	rs, err := Read([]importer.File{
		{Name: "etc/nginx/nginx.conf", Data: []byte("http {\n  add_header Access-Control-Allow-Origin https://app.example.com always;\n  add_header Vary Origin always;\n  include /etc/nginx/sites-enabled/*;\n}\n")},
		{Name: "etc/nginx/sites-enabled/shop", Data: []byte("server {\n  server_name shop.example.com;\n  location /api/ {\n    add_header Access-Control-Allow-Origin https://admin.example.com always;\n    add_header Vary Origin always;\n  }\n}\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := importer.Build(rs)
	if err != nil || res.Set == nil || len(res.Policies) != 2 {
		t.Fatalf("%v\n%s", err, importertest.Report(res))
	}
	decideAll(t, res.Set, []check{
		{get("shop.example.com", "/", "https://app.example.com"), policy.OutcomeAllowed},
		{get("shop.example.com", "/api/x", "https://admin.example.com"), policy.OutcomeAllowed},
		{get("shop.example.com", "/api/x", "https://app.example.com"), policy.OutcomeDenied},
	})

	loop := []importer.File{}
	for _, n := range []string{"a", "b", "c", "d"} {
		loop = append(loop, importer.File{Name: "d/" + n + ".conf", Data: []byte("include d/*.conf;\nadd_header Access-Control-Allow-Origin https://" + n + ".example always;\n")})
	}
	loop = append(loop, importer.File{Name: "r/root.conf", Data: []byte("include d/*.conf;\n")})
	rs, err = Read(loop)
	if err != nil {
		t.Fatal(err)
	}
	res, err = importer.Build(rs)
	if err != nil || !strings.Contains(importertest.Report(res), "includes expanded: the rest are not read") {
		t.Errorf("%v\n%s", err, importertest.Report(res))
	}
}
