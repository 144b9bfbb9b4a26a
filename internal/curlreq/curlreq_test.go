package curlreq

import (
	"strings"
	"testing"
)

// The preflight a browser sends: for a method other than GET, HEAD and
// POST, or for a header the page set that Fetch does not safelist; the
// headers the browser sets itself are never asked for.
func TestPreflight(t *testing.T) {
	for _, c := range []struct {
		cmd        string
		acrm, acrh string
		needed     bool
	}{
		{`curl 'https://a.example/x' -H 'origin: https://b.example' -H 'accept: application/json'`, "GET", "", false},
		{`curl 'https://a.example/x' -H 'content-type: text/plain;charset=UTF-8' --data-raw 'x'`, "POST", "", false},
		{`curl 'https://a.example/x' -H 'content-type: application/json' --data-raw '{}'`, "POST", "content-type", true},
		{`curl 'https://a.example/x' -X 'DELETE'`, "DELETE", "", true},
		{`curl 'https://a.example/x' -H 'X-Trace: 1' -H 'Authorization: Bearer t' -H 'sec-fetch-mode: cors' -H 'user-agent: M' -H 'cache-control: no-cache' -H 'priority: u=1' -b 'a=1'`, "GET", "authorization,x-trace", true},
		// Forbidden request headers in any case, Fetch's (policy.IsForbiddenRequestHeader)
		// and Private Network Access's request header: a page cannot set them.
		{`curl 'https://a.example/x' -H 'Proxy-Authorization: x' -H 'Sec-CH-UA: y' -H 'Referer: https://b.example/' -H 'access-control-request-private-network: true' -H 'x-a: 1'`, "GET", "x-a", true},
		{`curl 'https://a.example/x' -H 'accept-language: en-US,en;q=0.9'`, "GET", "", false},
		{`curl 'https://a.example/x' -H 'accept-language: en(US)'`, "GET", "accept-language", true},
		{`curl 'https://a.example/x' --json '{}'`, "POST", "content-type", true},
		{`curl -sSL --compressed 'https://a.example/x' -I`, "HEAD", "", false},
	} {
		r, err := Parse(c.cmd)
		if err != nil {
			t.Fatalf("%s: %v", c.cmd, err)
		}
		acrm, acrh, needed := r.Preflight()
		if acrm != c.acrm || acrh != c.acrh || needed != c.needed {
			t.Errorf("%s: Preflight = %q, %q, %v; want %q, %q, %v", c.cmd, acrm, acrh, needed, c.acrm, c.acrh, c.needed)
		}
	}
}

// The shell words of DevTools' bash copy: $'…' with escapes, a backslash
// and newline between options; nothing is expanded.
func TestParseWords(t *testing.T) {
	r, err := Parse("curl 'https://a.example/p?q=1' \\\n  -H $'x-quote: it\\'s' \\\n  -H \"x-dq: \\\"a\\\"\" -H x-brace:{1..99999999} --data-raw $'{\"a\":\"\\u00e9\"}'")
	if err != nil {
		t.Fatal(err)
	}
	if r.URL.String() != "https://a.example/p?q=1" || r.Method != "POST" || !r.Body {
		t.Errorf("got %s %s body %v", r.Method, r.URL, r.Body)
	}
	if v, _ := r.Header("x-quote"); v != "it's" {
		t.Errorf("x-quote = %q", v)
	}
	if v, _ := r.Header("x-dq"); v != `"a"` {
		t.Errorf("x-dq = %q", v)
	}
	if v, _ := r.Header("x-brace"); v != "{1..99999999}" {
		t.Errorf("x-brace = %q: a brace expansion was expanded", v)
	}
	for _, bad := range []string{"curl https://a.example/`id`", "curl https://a.example/$(id)", `curl "https://$HOME"`, "curl https://a.example/$((1<<62))", "curl <(id)"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%s: accepted; nothing may be expanded or run", bad)
		}
	}
	if _, err := Parse("curl " + strings.Repeat("a", MaxLen)); err == nil {
		t.Error("a command longer than MaxLen was read")
	}
}

// Whatever the text, Parse returns a request or an error, never panics.
func FuzzParse(f *testing.F) {
	f.Add("curl 'https://a.example/x' -X 'PUT' -H 'origin: https://b.example' --data-raw $'{\"a\":1}'")
	f.Add("curl -sSL https://a.example -H 'x;' -H 'y:' --url=https://b.example")
	f.Add("curl $'\\x00' -- https://a.example")
	f.Fuzz(func(t *testing.T, line string) {
		r, err := Parse(line)
		if (r == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v", r, err)
		}
		if r != nil {
			r.Preflight()
			r.ExplainRequests("", "", false)
		}
	})
}

// A request the browser blocked before sending has only provisional
// headers in DevTools, without Origin: the page's origin comes from its
// Referer, when that is another origin.
func TestOriginFromReferer(t *testing.T) {
	for _, c := range []struct{ cmd, want string }{
		{`curl 'https://api.example/x' -H 'origin: https://app.example'`, "https://app.example"},
		{`curl 'https://api.example/x' -H 'referer: https://app.example/page?q=1'`, "https://app.example"},
		{`curl 'https://api.example/x' -H 'referer: https://api.example/page'`, ""},
		{`curl 'https://api.example/x'`, ""},
	} {
		r, err := Parse(c.cmd)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Origin(); got != c.want {
			t.Errorf("%s: Origin = %q, want %q", c.cmd, got, c.want)
		}
	}
}
