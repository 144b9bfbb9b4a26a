package origins

import (
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Config is an allowed_origins entry once checked: an exact origin or a
// pattern.
type Config struct {
	Scheme   string
	Host     string // for a subdomain pattern, the base after "*."
	Port     string // "" none, "*" any, else digits
	WildSub  bool   // host was "*.base"
	Null     bool   // "null" or "file://"
	RawExact string // the canonical form, for exact origins
}

// Null is the opaque origin browsers send from sandboxed frames, file://
// pages and some redirects.
const Null = "null"

// AnyPort is the port of a pattern that matches any port or none
// (http://localhost:*).
const AnyPort = "*"

// Pattern reports whether c is a pattern rather than an exact origin.
func (c Config) Pattern() bool { return c.WildSub || c.Port == AnyPort }

// Problem is an error or warning about a configured origin or regex,
// before the policy file gives it a position.
type Problem struct {
	Msg, Fix string
	// suggest is the entry the fix writes, when it writes one; why is
	// the rest of the fix's text.
	suggest, why string
}

func problemf(fix, format string, args ...any) *Problem {
	return &Problem{Msg: fmt.Sprintf(format, args...), Fix: fix}
}

// suggestf is a problem whose fix is to write the entry value instead.
func suggestf(value, why, format string, args ...any) *Problem {
	return &Problem{Msg: fmt.Sprintf(format, args...), Fix: fmt.Sprintf("write %q", value) + why, suggest: value, why: why}
}

// ParseConfig checks one allowed_origins entry against
// docs/semantics.md, §3: canonical, ASCII, no path, no default port, and only the
// "*." subdomain and ":*" port patterns.
func ParseConfig(s string) (Config, *Problem) {
	c, p := parseConfig(s)
	if p != nil && p.suggest != "" {
		// A fix corrects one thing; follow the fixes until the entry
		// parses, so that the fix given is one the next check accepts
		// (HTTPS://Shop.Example.com/ gives https://shop.example.com, not
		// https://Shop.Example.com/).
		final := p.suggest
		for range 8 {
			_, next := parseConfig(final)
			if next == nil {
				p.Fix = fmt.Sprintf("write %q", final) + p.why
				break
			}
			if next.suggest == "" {
				break
			}
			final = next.suggest
		}
	}
	return c, p
}

func parseConfig(s string) (Config, *Problem) {
	var c Config
	switch s {
	case "*":
		return c, problemf("set allow_all_origins: true (never with credentials)", `"*" is not an origin`)
	case Null, "file://":
		c.Null, c.RawExact = true, s
		return c, nil
	case "":
		return c, problemf("remove the empty entry", "empty origin")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return c, problemf(fmt.Sprintf("write scheme and host, e.g. %q", "https://"+strings.TrimPrefix(s, "//")), "%q is not an origin (scheme://host[:port])", s)
	}
	if lower := strings.ToLower(scheme); lower != scheme {
		return c, suggestf(lower+"://"+rest, "", "scheme %q must be lower case", scheme)
	}
	if !IsScheme(scheme) {
		return c, problemf("use a scheme such as https", "%q is not a valid scheme", scheme)
	}
	c.Scheme = scheme
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		what := "a path"
		switch {
		case rest[i:] == "/":
			what = "a trailing slash"
		case rest[i] == '?':
			what = "a query"
		case rest[i] == '#':
			what = "a fragment"
		}
		return c, suggestf(scheme+"://"+rest[:i], ": browsers send the origin without it", "%q has %s; an origin is scheme://host[:port]", s, what)
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		return c, suggestf(scheme+"://"+rest[i+1:], "", "%q has user information; an origin never does", s)
	}
	hostport := rest
	var host, port string
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return c, problemf("close the IPv6 address with ]", "%q has an unterminated IPv6 address", s)
		}
		host, port = hostport[:end+1], strings.TrimPrefix(hostport[end+1:], ":")
		if hostport[end+1:] != "" && !strings.HasPrefix(hostport[end+1:], ":") {
			return c, problemf("write [address]:port", "%q has text after the IPv6 address", s)
		}
		addr, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return c, problemf("write a valid IPv6 address", "%q has an invalid IPv6 address", s)
		}
		if canon := "[" + addr.String() + "]"; canon != host {
			return c, suggestf(joinOrigin(scheme, canon, port), ": browsers send the canonical form", "%q is not in canonical form", s)
		}
	} else {
		var hasPort bool
		host, port, hasPort = strings.Cut(hostport, ":")
		if hasPort && port == "" {
			return c, suggestf(scheme+"://"+host, "", "%q has an empty port", s)
		}
	}
	if port != "" && port != AnyPort {
		if !IsPort(port) {
			return c, problemf("write a port between 1 and 65535, or * for any port", "%q has an invalid port %q", s, port)
		}
		if IsDefaultPort(scheme, port) {
			return c, suggestf(scheme+"://"+host, ": browsers omit the default port", "%q has the default port %s", s, port)
		}
	}
	c.Port = port
	if strings.HasPrefix(host, "*.") {
		c.WildSub = true
		host = host[2:]
	}
	if strings.Contains(host, "*") {
		return c, problemf("use https://*.example.com for subdomains, a regex otherwise", "%q has a * that is not a leading \"*.\" label; only https://*.example.com and :* patterns exist", s)
	}
	if host == "" {
		return c, problemf("write a host", "%q has no host", s)
	}
	if host[0] != '[' {
		if ascii, err := idna.Lookup.ToASCII(host); err == nil && ascii != host && strings.ToLower(host) != ascii {
			return c, suggestf(joinOrigin(scheme, wildPrefix(c.WildSub)+ascii, port), ": browsers send host names in punycode", "%q has a non-ASCII host", s)
		}
		if lower := strings.ToLower(host); lower != host {
			return c, suggestf(joinOrigin(scheme, wildPrefix(c.WildSub)+lower, port), ": browsers send host names in lower case", "%q has upper case in its host", s)
		}
		if !IsHostName(host) || strings.HasSuffix(host, ".") {
			return c, problemf("write a host name of letters, digits, '-' and '.'", "%q has an invalid host %q", s, host)
		}
		if c.WildSub {
			if _, err := netip.ParseAddr(host); err == nil {
				return c, problemf("list the address exactly", "%q puts a wildcard in front of an IP address", s)
			}
		}
	} else if c.WildSub {
		return c, problemf("list the address exactly", "%q puts a wildcard in front of an IP address", s)
	}
	c.Host = host
	if !c.Pattern() {
		c.RawExact = s
	}
	return c, nil
}

func wildPrefix(wild bool) string {
	if wild {
		return "*."
	}
	return ""
}

func joinOrigin(scheme, host, port string) string {
	if port == "" {
		return scheme + "://" + host
	}
	return scheme + "://" + host + ":" + port
}

// IsLoopback reports whether a config host is one that never leaves the
// machine: localhost, a .localhost name, or a loopback address. Plain http is
// acceptable with credentials there.
func IsLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if host == "" || !isDigit(host[0]) && host[0] != '[' {
		return false // a name; ParseAddr would only build an error
	}
	addr, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && addr.IsLoopback()
}

// IsPublicSuffix reports whether base is on the Public Suffix List (com,
// co.uk, github.io), so that *.base would let in sites run by anyone. A
// single label the list does not know (localhost, internal, corp) is not
// treated as one.
func IsPublicSuffix(base string) bool {
	ps, icann := publicsuffix.PublicSuffix(base)
	return ps == base && (icann || strings.Contains(base, "."))
}

// RegexRules are the policy's settings that decide what an
// allowed_origin_regexes entry may match.
type RegexRules struct {
	Creds, InsecureOK, PublicSuffixOK bool
}

// CheckRegex applies to a parsed allowed_origin_regexes entry
// (docs/semantics.md, §3) the rules exact origins and https://*. patterns obey, judging by the
// origins it matches (analyzeOriginRegex), not by its spelling; anchored is
// the entry compiled. A "." that is neither escaped nor a quantified
// wildcard is an error whatever it matches. With credentials, a regex that
// matches hosts it does not name, a name run into its domain
// (evilexample.com), plain http (but loopback) or any site directly under a
// public suffix is an error, as the same origins listed would be; without,
// the first two are warnings. The first of these is reported.
func CheckRegex(re *syntax.Regexp, anchored *regexp.Regexp, rules RegexRules) (errs, warns []*Problem) {
	var walk func(re, parent *syntax.Regexp)
	walk = func(re, parent *syntax.Regexp) {
		switch re.Op {
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			if parent == nil || (parent.Op != syntax.OpStar && parent.Op != syntax.OpPlus) {
				errs = append(errs, problemf(`escape it as \. (or use the pattern https://*.example.com)`,
					"an unescaped '.' matches any character, so this regex also lets in e.g. appXexample.com"))
			}
		}
		for _, sub := range re.Sub {
			walk(sub, re)
		}
	}
	walk(re, nil)
	if len(errs) > 0 {
		return errs, nil
	}
	f := analyzeOriginRegex(re, anchored)
	// risk is what a regex lets in that it should not: with credentials an
	// error (withCreds), without them a warning (without).
	risk := func(fix, withCreds, without string) {
		if rules.Creds {
			errs = append(errs, &Problem{Msg: withCreds, Fix: fix})
		} else {
			warns = append(warns, &Problem{Msg: without, Fix: fix})
		}
	}
	if f.arbitrary != "" {
		risk(`list the origins in allowed_origins, or use the pattern https://*.example.com, or a regex whose host ends in your domain after a dot, e.g. https://([a-z0-9-]+\.)*example\.com`,
			fmt.Sprintf("it matches hosts it does not name, e.g. %q: with credentials any site could read a logged-in user's responses", f.arbitrary),
			fmt.Sprintf("it matches hosts it does not name: this also allows %q, so any site can read the responses", f.arbitrary))
	}
	if f.glued != "" {
		msg := fmt.Sprintf("it lets text run into the domain name: this also allows %q, a name anyone can register", f.glued)
		risk(`put a dot between the free part and your domain, e.g. https://([a-z0-9-]+\.)?example\.com, or use the pattern https://*.example.com`,
			msg+", and with credentials it could read a logged-in user's responses", msg)
	}
	if rules.Creds && f.insecure != "" && !rules.InsecureOK {
		errs = append(errs, problemf("match https:// only (http:// is fine for localhost and loopback addresses), or set dangerously_allow_insecure_origins: true",
			"it matches plain http origins such as %q with credentials: anyone on the network path can inject a script into them", f.insecure))
	}
	if rules.Creds && f.psWild != "" && !rules.PublicSuffixOK {
		errs = append(errs, problemf("list the sites you own exactly, or set dangerously_allow_public_suffix_wildcards: true",
			"it matches any site directly under the public suffix %q, e.g. %q, where anyone can register a site", f.psSuffix, f.psWild))
	}
	if f.incomplete {
		const msg = "it has more alternatives and repetitions than corsproc checks, so what it lets in is not known"
		risk("split it into simpler regexes, or list the origins in allowed_origins", msg+"; with credentials that is refused", msg)
	}
	return errs, warns
}
