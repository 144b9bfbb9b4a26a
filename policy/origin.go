package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// maxOriginLen bounds the Origin values corsproc parses: a host name is at
// most 253 bytes, so anything longer is not an origin a browser sends.
const maxOriginLen = 512

// origin is a serialized origin split into parts that alias the input.
type origin struct {
	scheme, host, port string // port is "" when the origin has none
}

// parseOrigin parses a request's Origin strictly: it must be exactly what a
// browser serializes, scheme "://" host [":" port], all lower case, with no
// path, query, fragment, userinfo or default port. It never allocates.
func parseOrigin(s string) (origin, bool) {
	var o origin
	if len(s) > maxOriginLen {
		return o, false
	}
	i := strings.Index(s, "://")
	if i <= 0 || !isScheme(s[:i]) {
		return o, false
	}
	o.scheme, s = s[:i], s[i+3:]
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 || !isIPv6Literal(s[1:end]) {
			return o, false
		}
		o.host, s = s[:end+1], s[end+1:]
	} else {
		end := strings.IndexByte(s, ':')
		if end < 0 {
			end = len(s)
		}
		if !isHostName(s[:end]) {
			return o, false
		}
		o.host, s = s[:end], s[end:]
	}
	if s == "" {
		return o, true
	}
	if s[0] != ':' || !isPort(s[1:]) || isDefaultPort(o.scheme, s[1:]) {
		return o, false
	}
	o.port = s[1:]
	return o, true
}

func isScheme(s string) bool {
	if s == "" || !isLowerAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLowerAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// isHostName accepts lower-case ASCII host names and IPv4 addresses as
// browsers serialize them: labels of letters, digits, '-' and '_'.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if label == 0 && i != len(s)-1 || i == 0 {
				return false // empty label (a trailing dot is allowed)
			}
			label = 0
			continue
		case isLowerAlpha(c), isDigit(c), c == '-', c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return true
}

func isIPv6Literal(s string) bool {
	if s == "" || len(s) > 45 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && !(c >= 'a' && c <= 'f') && c != ':' && c != '.' {
			return false
		}
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && a.Zone() == "" && a.String() == s
}

func isPort(s string) bool {
	if s == "" || len(s) > 5 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n > 0 && n <= 65535
}

func isDefaultPort(scheme, port string) bool {
	switch scheme {
	case "http", "ws":
		return port == "80"
	case "https", "wss":
		return port == "443"
	}
	return false
}

func isLowerAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }

// nullOrigin is the opaque origin browsers send from sandboxed frames,
// file:// pages and some redirects.
const nullOrigin = "null"

// originSet decides whether an origin is allowed. Exact origins are one hash
// lookup; patterns are hash lookups keyed by the origin's parts, a few per
// host label, so neither depends on how many origins are configured. Regexes
// are tried last. The maps hold the index of the entry in allowed_origins,
// so that explain can say which configured entry let an origin in.
type originSet struct {
	exact      map[string]int
	anyPort    map[schemeHost]int // http://localhost:*
	wild       map[wildKey]int    // https://*.example.com[:port|:*]
	regexes    []*regexp.Regexp
	regexIndex []int    // index in allowed_origin_regexes of each regex
	origins    []string // allowed_origins as written
	regexSrcs  []string // allowed_origin_regexes as written
}

// entry describes the configured entry allows returned.
func (s *originSet) entry(i int) string {
	if i < len(s.origins) {
		return fmt.Sprintf("allowed_origins[%d] %q", i, s.origins[i])
	}
	i -= len(s.origins)
	return fmt.Sprintf("allowed_origin_regexes[%d] %q", i, s.regexSrcs[i])
}

type schemeHost struct{ scheme, host string }

// wildKey is a subdomain pattern: scheme, the base domain after "*.", and
// the port: "" for none, "*" for any.
type wildKey struct{ scheme, base, port string }

const anyPortSpec = "*"

// allows reports whether the serialized origin raw, parsed as o, is allowed,
// and by which entry: an index in allowed_origins, or len(allowed_origins)
// plus an index in allowed_origin_regexes.
func (s *originSet) allows(raw string, o origin) (int, bool) {
	if i, ok := s.exact[raw]; ok {
		return i, true
	}
	if len(s.anyPort) > 0 {
		if i, ok := s.anyPort[schemeHost{o.scheme, o.host}]; ok {
			return i, true
		}
	}
	if len(s.wild) > 0 && o.host[0] != '[' {
		// Try every proper suffix that starts after a dot: for
		// a.b.example.com that is b.example.com, example.com and com.
		for i := 0; i < len(o.host); i++ {
			if o.host[i] != '.' || i == 0 || i == len(o.host)-1 {
				continue
			}
			base := o.host[i+1:]
			if e, ok := s.wild[wildKey{o.scheme, base, o.port}]; ok {
				return e, true
			}
			if e, ok := s.wild[wildKey{o.scheme, base, anyPortSpec}]; ok {
				return e, true
			}
		}
	}
	for i, re := range s.regexes {
		if re.MatchString(raw) {
			return len(s.origins) + s.regexIndex[i], true
		}
	}
	return -1, false
}
