package policy

import (
	"fmt"
	"net/netip"
	"regexp/syntax"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// configOrigin is an allowed_origins entry once checked: an exact origin or a
// pattern.
type configOrigin struct {
	scheme   string
	host     string // for a subdomain pattern, the base after "*."
	port     string // "" none, "*" any, else digits
	wildSub  bool   // host was "*.base"
	null     bool   // "null" or "file://"
	rawExact string // the canonical form, for exact origins
}

func (c configOrigin) pattern() bool { return c.wildSub || c.port == anyPortSpec }

// problem is a config error or warning before it gets a file position.
type problem struct {
	msg, fix string
}

func problemf(fix, format string, args ...any) *problem {
	return &problem{msg: fmt.Sprintf(format, args...), fix: fix}
}

// parseConfigOrigin checks one allowed_origins entry against section 3 of
// the semantics: canonical, ASCII, no path, no default port, and only the
// "*." subdomain and ":*" port patterns.
func parseConfigOrigin(s string) (configOrigin, *problem) {
	var c configOrigin
	switch s {
	case "*":
		return c, problemf("set allow_all_origins: true (never with credentials)", `"*" is not an origin`)
	case nullOrigin, "file://":
		c.null, c.rawExact = true, s
		return c, nil
	case "":
		return c, problemf("remove the empty entry", "empty origin")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return c, problemf(fmt.Sprintf("write scheme and host, e.g. %q", "https://"+strings.TrimPrefix(s, "//")), "%q is not an origin (scheme://host[:port])", s)
	}
	if lower := strings.ToLower(scheme); lower != scheme {
		return c, problemf(fmt.Sprintf("write %q", lower+"://"+rest), "scheme %q must be lower case", scheme)
	}
	if !isScheme(scheme) {
		return c, problemf("use a scheme such as https", "%q is not a valid scheme", scheme)
	}
	c.scheme = scheme
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
		return c, problemf(fmt.Sprintf("write %q: browsers send the origin without it", scheme+"://"+rest[:i]), "%q has %s; an origin is scheme://host[:port]", s, what)
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		return c, problemf(fmt.Sprintf("write %q", scheme+"://"+rest[i+1:]), "%q has user information; an origin never does", s)
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
			return c, problemf(fmt.Sprintf("write %q: browsers send the canonical form", joinOrigin(scheme, canon, port)), "%q is not in canonical form", s)
		}
	} else {
		var hasPort bool
		host, port, hasPort = strings.Cut(hostport, ":")
		if hasPort && port == "" {
			return c, problemf(fmt.Sprintf("write %q", scheme+"://"+host), "%q has an empty port", s)
		}
	}
	if port != "" && port != anyPortSpec {
		if !isPort(port) {
			return c, problemf("write a port between 1 and 65535, or * for any port", "%q has an invalid port %q", s, port)
		}
		if isDefaultPort(scheme, port) {
			return c, problemf(fmt.Sprintf("write %q: browsers omit the default port", scheme+"://"+host), "%q has the default port %s", s, port)
		}
	}
	c.port = port
	if strings.HasPrefix(host, "*.") {
		c.wildSub = true
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
			return c, problemf(fmt.Sprintf("write %q: browsers send host names in punycode", joinOrigin(scheme, wildPrefix(c.wildSub)+ascii, port)), "%q has a non-ASCII host", s)
		}
		if lower := strings.ToLower(host); lower != host {
			return c, problemf(fmt.Sprintf("write %q: browsers send host names in lower case", joinOrigin(scheme, wildPrefix(c.wildSub)+lower, port)), "%q has upper case in its host", s)
		}
		if !isHostName(host) || strings.HasSuffix(host, ".") {
			return c, problemf("write a host name of letters, digits, '-' and '.'", "%q has an invalid host %q", s, host)
		}
		if c.wildSub {
			if _, err := netip.ParseAddr(host); err == nil {
				return c, problemf("list the address exactly", "%q puts a wildcard in front of an IP address", s)
			}
		}
	} else if c.wildSub {
		return c, problemf("list the address exactly", "%q puts a wildcard in front of an IP address", s)
	}
	c.host = host
	if !c.pattern() {
		c.rawExact = s
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

// isLoopback reports whether a config host is one that never leaves the
// machine: localhost, a .localhost name, or a loopback address. Plain http is
// acceptable with credentials there.
func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && addr.IsLoopback()
}

// isPublicSuffix reports whether base is on the Public Suffix List (com,
// co.uk, github.io), so that *.base would let in sites run by anyone. A
// single label the list does not know (localhost, internal, corp) is not
// treated as one.
func isPublicSuffix(base string) bool {
	ps, icann := publicsuffix.PublicSuffix(base)
	return ps == base && (icann || strings.Contains(base, "."))
}

// checkOriginRegex finds the classic regex mistakes (section 3) in a parsed
// allowed_origin_regexes entry: a "." that is neither escaped nor a
// quantified wildcard is an error; a ".*" or ".+" directly followed by a
// letter or digit is a warning.
func checkOriginRegex(re *syntax.Regexp) (errs, warns []*problem) {
	var walk func(re, parent *syntax.Regexp)
	walk = func(re, parent *syntax.Regexp) {
		switch re.Op {
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			if parent == nil || (parent.Op != syntax.OpStar && parent.Op != syntax.OpPlus) {
				errs = append(errs, problemf(`escape it as \. (or use the pattern https://*.example.com)`,
					"an unescaped '.' matches any character, so this regex also lets in e.g. appXexample.com"))
			}
		case syntax.OpConcat:
			for i := 0; i+1 < len(re.Sub); i++ {
				if isWildcardRun(re.Sub[i]) && startsAlnum(re.Sub[i+1]) {
					warns = append(warns, problemf(`write https://(.+\.)?example\.com, or use the pattern https://*.example.com`,
						"a .* or .+ directly followed by a letter or digit also matches e.g. https://evilexample.com"))
				}
			}
		}
		for _, sub := range re.Sub {
			walk(sub, re)
		}
	}
	walk(re, nil)
	return errs, warns
}

func isWildcardRun(re *syntax.Regexp) bool {
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	return (re.Op == syntax.OpStar || re.Op == syntax.OpPlus) &&
		(re.Sub[0].Op == syntax.OpAnyChar || re.Sub[0].Op == syntax.OpAnyCharNotNL)
}

func startsAlnum(re *syntax.Regexp) bool {
	for (re.Op == syntax.OpCapture || re.Op == syntax.OpConcat) && len(re.Sub) > 0 {
		re = re.Sub[0]
	}
	if re.Op != syntax.OpLiteral || len(re.Rune) == 0 {
		return false
	}
	r := re.Rune[0]
	return r < 0x80 && (isLowerAlpha(byte(r)) || isDigit(byte(r)) || (r >= 'A' && r <= 'Z'))
}
