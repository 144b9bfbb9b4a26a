package policy_test

import (
	"strings"
	"testing"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// oracleAllowed is a deliberately simple restatement of which origins
// webPolicy allows. The fuzzers check that corsproc never allows an origin
// this says is not allowed.
func oracleAllowed(o string) bool {
	switch o {
	case "https://app.example.com", "https://static.example.net:8443", "http://localhost":
		return true
	}
	lowerHost := func(h string) bool {
		if h == "" || strings.HasPrefix(h, ".") || strings.Contains(h, "..") {
			return false
		}
		for _, c := range h {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
				return false
			}
		}
		return true
	}
	port := func(p string) bool {
		if p == "" || len(p) > 5 || p[0] == '0' {
			return false
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	if rest, ok := strings.CutPrefix(o, "http://localhost:"); ok {
		return port(rest) && rest != "80"
	}
	if sub, ok := strings.CutSuffix(o, ".example.com"); ok {
		if sub, ok := strings.CutPrefix(sub, "https://"); ok {
			return lowerHost(sub)
		}
	}
	if rest, ok := strings.CutPrefix(o, "https://"); ok {
		host, p, hasPort := strings.Cut(rest, ":")
		if sub, ok := strings.CutSuffix(host, ".example.org"); ok && lowerHost(sub) {
			return !hasPort || (port(p) && p != "443")
		}
		if n, ok := strings.CutPrefix(rest, "preview-"); ok {
			digits, ok := strings.CutSuffix(n, ".example.dev")
			return ok && digits != "" && strings.Trim(digits, "0123456789") == ""
		}
	}
	return false
}

// checkInvariants asserts what must hold for every decision, whatever the
// input: no ACAO for an origin the policy does not allow, never ACAO * with
// ACAC true, headers only from the fixed set.
func checkInvariants(t *testing.T, r *policy.Request, d *policy.Decision, allowAll bool) {
	t.Helper()
	acao, has := d.Header(policy.HeaderACAO)
	if acac, _ := d.Header(policy.HeaderACAC); acao == "*" && acac == "true" {
		t.Fatalf("ACAO * with ACAC true for %+v", r)
	}
	if has && !allowAll {
		if acao != r.Origin || r.DuplicateOrigin || !oracleAllowed(r.Origin) {
			t.Fatalf("ACAO %q for origin %q, which the policy does not allow", acao, r.Origin)
		}
	}
	if has && allowAll && acao != "*" {
		t.Fatalf("allow_all_origins answered ACAO %q", acao)
	}
	grants := d.Outcome == policy.OutcomeAllowed || d.Outcome == policy.OutcomePreflightAllowed ||
		d.Outcome == policy.OutcomeNotCORS && allowAll
	if grants != has {
		t.Fatalf("outcome %v with ACAO present=%v", d.Outcome, has)
	}
	for _, h := range d.Headers() {
		if !strings.HasPrefix(h.Name, "access-control-") && h.Name != policy.HeaderVary {
			t.Fatalf("unexpected header %q", h.Name)
		}
		if strings.ContainsAny(h.Value, "\r\n\x00") {
			t.Fatalf("header %s carries a control character: %q", h.Name, h.Value)
		}
	}
}

func FuzzOrigin(f *testing.F) {
	for _, seed := range []string{
		"https://app.example.com", "https://a.b.example.com", "https://example.com", "https://evilexample.com",
		"https://app.example.com.evil.net", "http://localhost:3000", "http://localhost", "http://localhost:80",
		"https://x.example.org:8443", "https://preview-1.example.dev", "https://App.example.com",
		"https://app.example.com/", "https://user@app.example.com", "https://app.example.com:443", "null",
		"file://", "https://[::1]:8080", "https://.example.com", "https://..example.com", "",
	} {
		f.Add(seed, "GET", false)
		f.Add(seed, "OPTIONS", true)
	}
	web := mustParse(f, webPolicy)
	open := mustParse(f, "default_policy: open\npolicies:\n  - name: open\n    allow_all_origins: true\n")
	f.Fuzz(func(t *testing.T, origin, method string, duplicate bool) {
		r := policy.Request{Method: method, Origin: origin, DuplicateOrigin: duplicate, ACRM: "PUT", Path: "/api/"}
		var d policy.Decision
		web.Decide(&r, &d)
		checkInvariants(t, &r, &d, false)
		open.Decide(&r, &d)
		checkInvariants(t, &r, &d, true)
	})
}

// splitACRH is a simple restatement of the parsing of
// Access-Control-Request-Headers (docs/semantics.md, §5 step 3).
func splitACRH(lines ...string) (names []string, bytes int) {
	for _, l := range lines {
		bytes += len(l)
		for _, n := range strings.Split(l, ",") {
			if n = strings.Trim(n, " \t"); n != "" {
				names = append(names, strings.ToLower(n))
			}
		}
	}
	return names, bytes
}

func FuzzACRH(f *testing.F) {
	for _, seed := range [][2]string{
		{"content-type", ""}, {"Content-Type, X-CSRFToken", "authorization"}, {" ,accept,\t", ""},
		{strings.Repeat("accept,", 65), ""}, {strings.Repeat(",", 3000), ""}, {"x y", ""}, {"x-other", "accept"},
		{"\xff", ""}, {strings.Repeat(" ", 1019) + "accept", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	web := mustParse(f, webPolicy)
	open := mustParse(f, "default_policy: open\npolicies:\n  - name: open\n    allow_all_origins: true\n    allow_headers: ['*']\n")
	allowed := map[string]bool{}
	for _, h := range policyfile.DefaultAllowHeaders {
		allowed[h] = true
	}
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		r := policy.Request{Method: "OPTIONS", Origin: "https://app.example.com", ACRM: "PUT", ACRH: []string{line1, line2}}
		names, size := splitACRH(line1, line2)
		var d policy.Decision
		web.Decide(&r, &d)
		checkInvariants(t, &r, &d, false)
		if d.Outcome == policy.OutcomePreflightAllowed {
			if size > policy.MaxACRHBytes || len(names) > policy.MaxACRHNames {
				t.Fatalf("allowed a preflight beyond the bounds: %d bytes, %d names", size, len(names))
			}
			for _, n := range names {
				if !allowed[n] {
					t.Fatalf("allowed a preflight asking for %q", n)
				}
			}
		}
		open.Decide(&r, &d)
		checkInvariants(t, &r, &d, true)
		if d.Outcome == policy.OutcomePreflightAllowed {
			acah, _ := d.Header(policy.HeaderACAH)
			if want := strings.Join(names, ", "); acah != want {
				t.Fatalf("ACAH %q, want the requested names %q", acah, want)
			}
		}
	})
}

// FuzzParse feeds arbitrary bytes to the policy file decoder and validator:
// the result is an error or a usable set, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(webPolicy))
	f.Add([]byte("policies: []\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("policies:\n  - name: web\n    <<: {allow_credentials: true}\n"))
	// The regexes that once reflected any origin with credentials: refused, so nothing is
	// answered.
	for _, re := range []string{`.*`, `https://.*`, `http://(.+\.)?example\.com`, `https://[a-z0-9-]+\.github\.io`,
		`https://[a-z0-9.-]*example\.com`, `https://app\Wexample\.com`, `https://app[^/]example\.com`} {
		f.Add([]byte("default_policy: web\npolicies:\n  - name: web\n    allow_credentials: true\n    allowed_origin_regexes: ['" + re + "']\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := policyfile.Parse("fuzz.yaml", data)
		if (set == nil) == (err == nil) {
			t.Fatalf("Parse returned set=%v err=%v", set, err)
		}
		if set == nil {
			return
		}
		// Whatever the set, its answers stay within the invariants: ACAO
		// is "*" or the request's own well-formed origin, never "*" with
		// credentials, never for "null" unless the set says so
		// explicitly, and header values carry no control characters.
		origins := []string{"https://app.example.com", "https://evil.example", "null", "http://localhost:3000",
			"https://App.example.com", "https://app.example.com/", ""}
		// Origins that no policy with credentials allows unless it names
		// them or says it is dangerous (docs/policy.md, "Origins"),
		// whether by an exact origin, a pattern or a regex: a host of
		// the attacker's, plain http, a name run into a domain, a site
		// directly under a public suffix.
		attacker := map[string]bool{
			"https://" + attackLabel + ".invalid":    strings.Contains(string(data), attackLabel),
			"http://app.example.com":                 strings.Contains(string(data), "dangerously_allow_insecure_origins"),
			"https://" + attackLabel + "example.com": strings.Contains(string(data), attackLabel),
			"https://" + attackLabel + ".github.io":  strings.Contains(string(data), attackLabel) || strings.Contains(string(data), "dangerously_allow_public_suffix_wildcards"),
		}
		for o := range attacker {
			origins = append(origins, o)
		}
		for _, o := range origins {
			for _, r := range []policy.Request{get(o), preflight(o, "PUT", "x"), preflight(o, "GET")} {
				var d policy.Decision
				set.Decide(&r, &d)
				acao, has := d.Header(policy.HeaderACAO)
				acac, _ := d.Header(policy.HeaderACAC)
				if acao == "*" && acac == "true" {
					t.Fatal("ACAO * with ACAC true")
				}
				if has && acao != "*" && acao != r.Origin {
					t.Fatalf("ACAO %q for Origin %q", acao, r.Origin)
				}
				if has && acao != "*" && (o == "https://App.example.com" || o == "https://app.example.com/" || o == "") {
					t.Fatalf("ACAO for the malformed Origin %q", o)
				}
				if has && o == "null" && acao == "null" && !strings.Contains(string(data), "dangerously_allow_null_origin") {
					t.Fatal("ACAO null without dangerously_allow_null_origin")
				}
				if acac == "true" && acao == "null" {
					t.Fatal("ACAO null with credentials")
				}
				if named, ok := attacker[o]; ok && acac == "true" && acao == o && !named {
					t.Fatalf("ACAO %q with credentials, which no policy may allow without naming it or saying it is dangerous", o)
				}
				for _, h := range d.Headers() {
					if strings.ContainsAny(h.Value, "\r\n\x00") {
						t.Fatalf("header %s carries a control character: %q", h.Name, h.Value)
					}
				}
			}
		}
	})
}
