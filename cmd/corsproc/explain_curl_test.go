package main

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/corsproc/corsproc/policy/policyfile"
)

// chromiumPUT is what Chromium's DevTools "Copy as cURL (bash)" gives for a
// fetch(url, {method: 'PUT', headers: {'content-type': 'application/json',
// 'x-trace': '1'}, body}) from https://app.example.com.
const chromiumPUT = `curl 'https://api.example.com/v1/items?page=2' \
  -X 'PUT' \
  -H 'accept: */*' \
  -H 'accept-language: en-US,en;q=0.9' \
  -H 'content-type: application/json' \
  -H 'origin: https://app.example.com' \
  -H 'priority: u=1, i' \
  -H 'referer: https://app.example.com/' \
  -H 'sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24"' \
  -H 'sec-ch-ua-mobile: ?0' \
  -H 'sec-ch-ua-platform: "Linux"' \
  -H 'sec-fetch-dest: empty' \
  -H 'sec-fetch-mode: cors' \
  -H 'sec-fetch-site: same-site' \
  -H 'user-agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36' \
  -H 'x-trace: 1' \
  --data-raw $'{"name":"it\'s"}'`

func explainOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout bytes.Buffer
	err := Run(t.Context(), append([]string{"explain"}, args...), &stdout, io.Discard)
	return stdout.String(), err
}

func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// explain --curl explains what the browser sends for a copied request: the
// preflight it derives (method, and the headers the page set that are not
// safelisted, browser-set ones left out), then the request if the
// preflight passes. The browser's message names the real URL.
func TestExplainCurl(t *testing.T) {
	path := writePolicy(t, t.TempDir(), "policy.yaml", explainPolicy)
	out, err := explainOut(t, "--policy", path, "--curl", chromiumPUT)
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, out,
		"The browser first sends a preflight:",
		"Request:  OPTIONS api.example.com/v1/items?page=2 from origin https://app.example.com (preflight for PUT with content-type,x-trace)",
		"Outcome:  preflight_rejected (header_not_allowed)",
		"The preflight fails, so the browser never sends the request itself.",
		"Access to fetch at 'https://api.example.com/v1/items?page=2' from origin 'https://app.example.com' has been blocked by CORS policy",
		`Fix: add "x-trace" to allow_headers of policy "web"`)
	if strings.Contains(out, "sends the request:") {
		t.Errorf("a refused preflight is followed by the request, which the browser never sends:\n%s", out)
	}

	// Once the header is allowed, the preflight passes and the request follows.
	allowed := writePolicy(t, t.TempDir(), "policy.yaml", strings.Replace(explainPolicy, "    expose_headers: [x-request-id]\n",
		"    expose_headers: [x-request-id]\n    allow_headers: [content-type, x-trace]\n", 1))
	out, err = explainOut(t, "--policy", allowed, "--curl", chromiumPUT)
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, out, "Outcome:  preflight_allowed", "The preflight is allowed, so the browser sends the request:",
		"Request:  PUT api.example.com/v1/items?page=2 from origin https://app.example.com", "Outcome:  allowed")

	// JSON: both, in the order the browser sends them, one key style.
	out, err = explainOut(t, "--policy", allowed, "--curl", chromiumPUT, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Requests []map[string]any `json:"requests"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Requests) != 2 || doc.Requests[0]["kind"] != "preflight" || doc.Requests[1]["kind"] != "actual" {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if keys := regexp.MustCompile(`"([^"]+)":`).FindAllStringSubmatch(out, -1); len(keys) > 0 {
		for _, k := range keys {
			if k[1] != strings.ToLower(k[1]) || strings.Contains(k[1], "-") {
				t.Errorf("json key %q is not snake_case", k[1])
			}
		}
	}

	// A simple request needs no preflight; cookies mean credentials.
	out, err = explainOut(t, "--policy", path, "--curl",
		`curl 'https://api.example.com/v1/me' -H 'origin: https://app.example.com' -b 'session=1' -H 'accept: application/json' --compressed`)
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, out, "Request:  GET api.example.com/v1/me from origin https://app.example.com, with credentials",
		"Outcome:  allowed by corsproc, but the browser blocks it (below)", "credentials      FAIL")
	if strings.Contains(out, "preflight") {
		t.Errorf("a simple request got a preflight:\n%s", out)
	}

	// A copied preflight is explained as it is; - reads standard input.
	stdin = strings.NewReader(`curl 'https://api.example.com/x' -X 'OPTIONS' -H 'origin: https://app.example.com' -H 'access-control-request-method: DELETE' -H 'access-control-request-headers: x-trace'`)
	t.Cleanup(func() { stdin = nil })
	out, err = explainOut(t, "--policy", path, "--curl", "-")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, out, "(preflight for DELETE with x-trace)", "Outcome:  preflight_rejected (header_not_allowed)")
}

// --curl refuses what it cannot read, and flags that would contradict it;
// nothing in the command runs or expands.
func TestExplainCurlErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--curl", "wget https://x.example"}, "not a curl command"},
		{[]string{"--curl", "curl -H 'origin: https://a.example'"}, "no URL"},
		{[]string{"--curl", "curl 'https://api.example.com' --upload-file x"}, `curl option "--upload-file" is not one explain reads`},
		{[]string{"--curl", "curl \"https://$(touch /tmp/pwned)api.example.com\""}, "reading the curl command"},
		{[]string{"--curl", "curl 'ftp://x.example'"}, "want http:// or https://"},
		{[]string{"--curl", "curl 'https://a.example'", "--origin", "https://b.example"}, "--origin and --curl"},
		{[]string{"--url", "https://api.example.com/x", "--host", "other.example"}, "--url sets the host and path"},
	} {
		_, err := explainOut(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one saying %q", c.args, err, c.want)
		}
	}
}

// --url names the resource in the browser's message; without a host the
// message never shows a URL with an empty host.
func TestExplainURL(t *testing.T) {
	out, err := explainOut(t, "--origin", "https://evil.example", "--url", "https://api.example.com/v1/items?x=1")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, out, "Request:  GET api.example.com/v1/items?x=1", "Access to fetch at 'https://api.example.com/v1/items?x=1' from origin 'https://evil.example'")
	out, err = explainOut(t, "--origin", "https://evil.example", "--path", "/v1/items")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "https:///") {
		t.Errorf("the browser message has an empty host:\n%s", out)
	}
}

const hintsPolicy = `
default_policy: web
policies:
  - name: web
    allowed_origins: [https://app.example.com]
    allow_credentials: true
  - name: public
    match: {path_prefixes: [/public/]}
    allowed_origins: [https://partner.example.net]
  - name: admin
    match: {routes: [admin]}
    allowed_origins: [https://evil.example]
`

// explain points at near misses (an allowed origin that differs only in
// scheme, port or subdomain) and at the policies of the set that would
// allow the request, with why they were not selected.
func TestExplainHints(t *testing.T) {
	path := writePolicy(t, t.TempDir(), "policy.yaml", hintsPolicy)
	for _, c := range []struct {
		origin string
		want   string
	}{
		{"http://app.example.com", `"http://app.example.com" differs from the allowed origin "https://app.example.com" only in scheme`},
		{"https://app.example.com:8443", `"https://app.example.com:8443" differs from the allowed origin "https://app.example.com" only in port`},
		{"https://www.example.com", `"https://www.example.com" differs from the allowed origin "https://app.example.com" only in subdomain`},
		{"https://partner.example.net", `policy "public" (` + path + `) would allow this request, but it was not selected: its match does not hold for host "api.example.com" and path "/v1/items"`},
		{"https://evil.example", `policy "admin" (` + path + `) would allow this request, but it was not selected: it is selected by route only, and the request's route is ""`},
	} {
		out, err := explainOut(t, "--policy", path, "--origin", c.origin, "--url", "https://api.example.com/v1/items")
		if err != nil {
			t.Fatal(err)
		}
		wantLines(t, out, "Note: "+c.want)
	}
}

// Every fix explain suggests passes check: applied to the policy file, the
// file loads without an error, and the request is then allowed or the fix
// says no policy change exists.
func TestExplainFixesPassCheck(t *testing.T) {
	base := `
default_policy: web
policies:
  - name: web
    allowed_origins: [https://app.example.com]
    allow_credentials: true
  - name: open
    match: {path_prefixes: [/open/]}
    allowed_origins: [https://app.example.com]
`
	path := writePolicy(t, t.TempDir(), "policy.yaml", base)
	for _, args := range [][]string{
		{"--origin", "http://shop.example.com"},   // plain http with credentials
		{"--origin", "null"},                      // null with credentials: no fix
		{"--origin", "null", "--path", "/open/x"}, // null without credentials
		{"--origin", "https://new.example.com"},   // an origin to add
		{"--preflight", "--origin", "https://app.example.com", "--method", "PURGE"},
		{"--preflight", "--origin", "https://app.example.com", "--method", "TRACE"},  // forbidden: no fix
		{"--preflight", "--origin", "https://app.example.com", "--method", "delete"}, // not a browser: no fix
		{"--preflight", "--origin", "https://app.example.com", "--method", "PUT", "--request-headers", "X-Trace"},
		{"--preflight", "--origin", "https://app.example.com", "--method", "PUT", "--request-headers", "cookie"}, // forbidden: no fix
	} {
		out, err := explainOut(t, append([]string{"--policy", path, "--format", "json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var x struct {
			Fix string `json:"fix"`
		}
		if err := json.Unmarshal([]byte(out), &x); err != nil || x.Fix == "" {
			t.Fatalf("%q: no fix: %v\n%s", args, err, out)
		}
		if strings.HasPrefix(x.Fix, "none") {
			continue
		}
		fixed := applyFix(t, base, x.Fix)
		if _, err := policyfile.Parse("fixed.yaml", []byte(fixed)); err != nil {
			t.Errorf("%q: the fix %q does not pass check:\n%v", args, x.Fix, err)
		}
	}
}

// applyFix applies the shapes of fix explain writes to a policy file:
// `add "V" to LIST of policy "P"` (also `serve the page over https and
// add …`) and `set KEY: true in policy "P"`.
func applyFix(t *testing.T, file, fix string) string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(file), &doc); err != nil {
		t.Fatal(err)
	}
	policyNode := func(name string) *yaml.Node {
		for _, p := range doc.Content[0].Content[3].Content {
			for i := 0; i+1 < len(p.Content); i += 2 {
				if p.Content[i].Value == "name" && p.Content[i+1].Value == name {
					return p
				}
			}
		}
		t.Fatalf("fix %q: no policy %q", fix, name)
		return nil
	}
	set := func(p *yaml.Node, key string, value *yaml.Node) *yaml.Node {
		for i := 0; i+1 < len(p.Content); i += 2 {
			if p.Content[i].Value == key {
				return p.Content[i+1]
			}
		}
		p.Content = append(p.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, value)
		return value
	}
	applied := false
	for _, m := range regexp.MustCompile(`add ("[^"]*") to (\w+) (?:of|and [^"]*in) policy "([^"]+)"`).FindAllStringSubmatch(fix, -1) {
		list := set(policyNode(m[3]), m[2], &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle})
		v := strings.Trim(m[1], `"`)
		list.Content = append(list.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: v, Style: yaml.DoubleQuotedStyle})
		applied = true
	}
	for _, m := range regexp.MustCompile(`set (\w+): true in policy "([^"]+)"`).FindAllStringSubmatch(fix, -1) {
		set(policyNode(m[2]), m[1], &yaml.Node{Kind: yaml.ScalarNode, Value: "true", Tag: "!!bool"}).Value = "true"
		applied = true
	}
	if !applied {
		t.Fatalf("fix %q has no shape applyFix knows", fix)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
