package policy_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/publicsuffix"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// entryMatches is a plain restatement of what one allowed_origins entry
// (docs/semantics.md, §3) lets in: the same origin, or for a pattern
// the same scheme, a host of one or more labels in front of the base
// (never the base itself), and the same port, or any port for ":*".
func entryMatches(entry, origin string) bool {
	if entry == origin {
		return true
	}
	eScheme, eRest, ok1 := strings.Cut(entry, "://")
	oScheme, oRest, ok2 := strings.Cut(origin, "://")
	if !ok1 || !ok2 || eScheme != oScheme {
		return false
	}
	eHost, ePort := splitHostPort(eRest)
	oHost, oPort := splitHostPort(oRest)
	switch {
	case ePort == "*":
	case ePort != oPort:
		return false
	}
	if base, ok := strings.CutPrefix(eHost, "*."); ok {
		sub, ok := strings.CutSuffix(oHost, "."+base)
		if !ok || sub == "" {
			return false
		}
		for _, l := range strings.Split(sub, ".") {
			if !regexp.MustCompile(`^[a-z0-9_-]{1,63}$`).MatchString(l) {
				return false
			}
		}
		return true
	}
	return eHost == oHost
}

func splitHostPort(s string) (host, port string) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return s, ""
		}
		host, rest := s[:end+1], s[end+1:]
		return host, strings.TrimPrefix(rest, ":")
	}
	host, port, _ = strings.Cut(s, ":")
	return host, port
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// FuzzAllowedOrigin fuzzes a configured allowed_origins entry and a request
// Origin together. Whatever the entry, the policy file is refused or the
// compiled policy lets in only origins the entry names (exactly, or as the
// pattern describes): no prefix, suffix or substring match, no unescaped
// dot, no case folding, no reflection. With credentials the same holds,
// no http:// origin but loopback ones gets in, and none of the attacker's
// origins that resemble one that does (attacksOn).
func FuzzAllowedOrigin(f *testing.F) {
	for _, s := range [][2]string{
		{"https://app.example.com", "https://app.example.com"},
		{"https://app.example.com", "https://app.example.com.evil.net"},
		{"https://app.example.com", "https://evilapp.example.com"},
		{"https://*.example.com", "https://a.b.example.com"},
		{"https://*.example.com", "https://example.com"},
		{"https://*.example.com", "https://evilexample.com"},
		{"https://*.example.com:*", "https://a.example.com:8443"},
		{"http://localhost:*", "http://localhost:3000"},
		{"http://localhost:*", "http://localhost.evil.net:3000"},
		{"https://*.github.io", "https://evil.github.io"},
		{"http://app.example.com", "http://app.example.com"},
		{"https://[::1]:8443", "https://[::1]:8443"},
		{"null", "null"},
		{"*", "https://evil.example"},
		{"https://*", "https://evil.example"},
		{"https://app.example.com/", "https://app.example.com"},
		{"https://APP.example.com", "https://app.example.com"},
		{"https://*example.com", "https://evilexample.com"},
		{"https://a.*.example.com", "https://a.b.example.com"},
	} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, entry, origin string, creds bool) {
		if !printableASCII(entry) {
			return // YAML would read another string than entry
		}
		yaml := "default_policy: p\npolicies:\n  - name: p\n    allowed_origins: [" + strconv.Quote(entry) + "]\n" +
			"    allow_credentials: " + strconv.FormatBool(creds) + "\n"
		set, err := policyfile.Parse("fuzz.yaml", []byte(yaml))
		if err != nil {
			return
		}
		for _, r := range []policy.Request{get(origin), preflight(origin, "PUT")} {
			var d policy.Decision
			set.Decide(&r, &d)
			acao, has := d.Header(policy.HeaderACAO)
			if !has {
				continue
			}
			if acao != origin {
				t.Fatalf("entry %q: ACAO %q for Origin %q", entry, acao, origin)
			}
			if !entryMatches(entry, origin) {
				t.Fatalf("entry %q lets in %q", entry, origin)
			}
			if creds && strings.HasPrefix(origin, "http://") {
				host, _ := splitHostPort(strings.TrimPrefix(origin, "http://"))
				if host != "localhost" && !strings.HasSuffix(host, ".localhost") && !strings.HasPrefix(host, "127.") && host != "[::1]" {
					t.Fatalf("entry %q lets in %q, an http origin, with credentials", entry, origin)
				}
			}
			if creds && !strings.Contains(entry, attackLabel) {
				// Nor, then, any of the attacker's origins that resemble
				// it (as for regexes, below).
				for _, a := range attacksOn(origin) {
					if _, has := allows(set, a.origin); has && a.origin != origin {
						t.Fatalf("entry %q lets in %q with credentials, and so %q: %s", entry, origin, a.origin, a.what)
					}
				}
			}
		}
	})
}

// FuzzAllowedOriginRegex fuzzes a configured allowed_origin_regexes entry
// and a request Origin: a refused file (never a panic), or a regex that
// matches the whole Origin, never a part of it. And what the analysis of
// regexes promises (docs/policy.md, "Origins"): with credentials, a policy
// that loads never lets in the origins an attacker can have that resemble
// an origin it lets in (attacksOn); without, a policy that loads without a
// warning never lets in those on any host or with a name run into the
// domain.
func FuzzAllowedOriginRegex(f *testing.F) {
	for _, s := range [][2]string{
		{`https://[a-z]+\.example\.com`, "https://app.example.com"},
		{`https://[a-z]+\.example\.com`, "https://app.example.com.evil.net"},
		{`https://app.example.com`, "https://appXexample.com"},
		{`https://(.+\.)?example\.com`, "https://evilexample.com"},
		{`https://.*example\.com`, "https://evilexample.com"},
		{`.*`, "https://evil.example"},
		{`https://a\.example\.com|https://b\.example\.com`, "https://b.example.com"},
		// The regexes that once loaded with credentials, each with an origin it lets in.
		{`https://.*`, "https://app.example.com"},
		{`http://(.+\.)?example\.com`, "http://app.example.com"},
		{`https://[a-z0-9-]+\.github\.io`, "https://app.github.io"},
		{`https://[a-z0-9.-]*example\.com`, "https://example.com"},
		{`https://app\Wexample\.com`, "https://app.example.com"},
		{`https://app[^/]example\.com`, "https://app.example.com"},
		{`https?://app\.example\.com(:\d+)?`, "https://app.example.com:8443"},
		{`(?i)https://[a-z]+\.EXAMPLE\.com`, "https://app.example.com"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, re, origin string) {
		if !printableASCII(re) {
			return
		}
		for _, creds := range []bool{false, true} {
			yaml := "default_policy: p\npolicies:\n  - name: p\n    allowed_origin_regexes: [" + strconv.Quote(re) + "]\n" +
				"    allow_credentials: " + strconv.FormatBool(creds) + "\n"
			set, err := policyfile.Parse("fuzz.yaml", []byte(yaml))
			if err != nil {
				continue
			}
			acao, has := allows(set, origin)
			if !has {
				continue
			}
			// Matched whole: the leftmost-longest match of the unanchored
			// regex spans the Origin exactly (a restatement that pastes no
			// anchors around the text, which an unterminated \Q would quote).
			longest, err := regexp.Compile(re)
			if err != nil {
				t.Fatalf("regex %q accepted by Parse but not by regexp: %v", re, err)
			}
			longest.Longest()
			loc := longest.FindStringIndex(origin)
			if acao != origin || loc == nil || loc[0] != 0 || loc[1] != len(origin) {
				t.Fatalf("regex %q: ACAO %q for Origin %q, which it does not match whole", re, acao, origin)
			}
			if strings.Contains(strings.ToLower(re), attackLabel) {
				continue // the regex names the attacker's origins
			}
			attacks := attacksOn(origin)
			for _, a := range attacks {
				if a.origin == origin || !creds && (len(set.Warnings()) > 0 || !a.withoutCredentials) {
					continue
				}
				if a.glued && !creds && siblingAllowed(set, attacks) {
					// Any label under the public suffix is allowed
					// (https://[a-z]+\.github\.io, which is fine
					// without credentials): a name run into
					// app.github.io is one of those.
					continue
				}
				if _, has := allows(set, a.origin); has {
					t.Fatalf("regex %q (allow_credentials: %v) loads with %d warnings, lets in %q, and so %q: %s",
						re, creds, len(set.Warnings()), origin, a.origin, a.what)
				}
			}
		}
	})
}

// allows returns the ACAO the set answers a GET from origin with.
func allows(set *policy.Set, origin string) (string, bool) {
	r := get(origin)
	var d policy.Decision
	set.Decide(&r, &d)
	return d.Header(policy.HeaderACAO)
}

// attackLabel is the label of the attacker's origins: no policy names it.
const attackLabel = "zq7x"

// attack is an origin an attacker can have, what it shows, and whether it
// must stay out even without credentials (it is refused with a warning).
type attack struct {
	origin, what       string
	withoutCredentials bool
	glued, sibling     bool // a name run into the domain; a site under the public suffix
}

func siblingAllowed(set *policy.Set, attacks []attack) bool {
	for _, a := range attacks {
		if _, has := allows(set, a.origin); a.sibling && has {
			return true
		}
	}
	return false
}

// attacksOn returns origins an attacker can have that resemble the origin
// o, which a policy lets in: one on a host of the attacker's (under
// .invalid), the same over plain http (unless o is on loopback), one whose
// name runs the attacker's label into o's registrable domain, and one
// directly under o's public suffix, when the Public Suffix List has it.
// A policy with credentials lets in none (docs/policy.md, "Origins"); this
// restates the rules with golang.org/x/net/publicsuffix, independently of
// the analysis in internal/origins/regex.go.
func attacksOn(o string) []attack {
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok {
		return nil
	}
	host, port := splitHostPort(rest)
	at := func(h string) string {
		if port != "" {
			h += ":" + port
		}
		return scheme + "://" + h
	}
	out := []attack{
		{"https://" + attackLabel + ".invalid", "a host the regex does not name", true, false, false},
		{at(attackLabel + ".invalid"), "a host the regex does not name", true, false, false},
	}
	if h := strings.TrimSuffix(host, "."); h != "localhost" && !strings.HasSuffix(h, ".localhost") && !strings.HasPrefix(h, "127.") && h != "[::1]" {
		out = append(out, attack{"http://" + rest, "plain http with credentials", false, false, false})
	}
	if reg, err := publicsuffix.EffectiveTLDPlusOne(strings.TrimSuffix(host, ".")); err == nil {
		out = append(out, attack{at(attackLabel + reg), "a name run into the domain " + reg, true, true, false})
		if ps, icann := publicsuffix.PublicSuffix(reg); icann || strings.Contains(ps, ".") {
			out = append(out, attack{at(attackLabel + "." + ps), "a site directly under the public suffix " + ps, false, false, true})
		}
	}
	return out
}

// Regression (FuzzAllowedOriginRegex): a regex with an unterminated \Q,
// which quotes the rest of it, made compiling the policy panic, since the
// anchors pasted around its text were quoted too. It now means what RE2
// says it means, anchored, in allowed_origin_regexes and urls_regex alike.
func TestRegexUnterminatedQuote(t *testing.T) {
	set := mustParse(t, "policies:\n  - name: p\n    match: {urls_regex: '\\Q/api/'}\n    allowed_origin_regexes: ['\\Qhttps://app.example.com']\n")
	for origin, want := range map[string]bool{
		"https://app.example.com":      true,
		"https://appXexample.com":      false,
		"https://app.example.com.evil": false,
	} {
		r := policy.Request{Method: "GET", Origin: origin, Path: "/api/"}
		var d policy.Decision
		set.Decide(&r, &d)
		if _, got := d.Header(policy.HeaderACAO); got != want {
			t.Errorf("%s: allowed %v, want %v (decision %v)", origin, got, want, d.Outcome)
		}
	}
	r := policy.Request{Method: "GET", Origin: "https://app.example.com", Path: "/api/x"}
	var d policy.Decision
	set.Decide(&r, &d)
	if d.Outcome != policy.OutcomeUngoverned {
		t.Errorf("urls_regex matched /api/x: %v", d.Outcome)
	}
}
