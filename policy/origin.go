package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
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
//
// Every request whose Origin is not an exact entry is parsed here, refused
// ones included, so the scheme and host are read in one hand-written pass
// each: on origins this short, calls into strings' assembly cost more than
// the bytes.
func parseOrigin(s string, o *origin) bool {
	if len(s) > maxOriginLen {
		return false
	}
	i := schemeLen(s)
	if i == 0 || len(s) < i+3 || s[i] != ':' || s[i+1] != '/' || s[i+2] != '/' {
		return false
	}
	o.scheme, s = s[:i], s[i+3:]
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 || !isIPv6Literal(s[1:end]) {
			return false
		}
		o.host, s = s[:end+1], s[end+1:]
	} else {
		end, ok := hostNameLen(s)
		if !ok {
			return false
		}
		o.host, s = s[:end], s[end:]
	}
	if s == "" {
		return true
	}
	if s[0] != ':' || !isPort(s[1:]) || isDefaultPort(o.scheme, s[1:]) {
		return false
	}
	o.port = s[1:]
	return true
}

// schemeLen returns the length of the scheme s starts with: a lower-case
// letter, then letters, digits, '+', '-' and '.'; 0 if there is none.
func schemeLen(s string) int {
	if s == "" || !isLowerAlpha(s[0]) {
		return 0
	}
	i := 1
	for i < len(s) && schemeByte[s[i]] {
		i++
	}
	return i
}

func isScheme(s string) bool { return s != "" && schemeLen(s) == len(s) }

// isHostName accepts lower-case ASCII host names and IPv4 addresses as
// browsers serialize them: labels of 1 to 63 letters, digits, '-' and '_',
// and perhaps a trailing dot.
func isHostName(s string) bool {
	n, ok := hostNameLen(s)
	return ok && n == len(s)
}

// hostNameLen reads the host name s starts with, up to a ':' or the end, and
// returns its length and whether it is well formed (see isHostName).
func hostNameLen(s string) (int, bool) {
	start, i := 0, 0
	for ; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			if i == start || i-start > 63 {
				return i, false // an empty or overlong label
			}
			start = i + 1
			continue
		}
		if !hostByte[c] {
			if c == ':' {
				break
			}
			return i, false
		}
	}
	// After a trailing dot the last label is empty, which is allowed.
	return i, i > 0 && i <= 253 && i-start <= 63
}

// hostByte holds the bytes of a host label: a-z, 0-9, '-' and '_';
// schemeByte those of a scheme after its first letter.
var hostByte, schemeByte = func() (h, s [256]bool) {
	for c := range 256 {
		b := byte(c)
		h[c] = isLowerAlpha(b) || isDigit(b) || b == '-' || b == '_'
		s[c] = isLowerAlpha(b) || isDigit(b) || b == '+' || b == '-' || b == '.'
	}
	return h, s
}()

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
	exact   map[string]int
	anyPort map[schemeHost]int // http://localhost:*
	// wild holds the subdomain patterns (https://*.example.com[:port|:*])
	// by base domain: one string-keyed lookup per host label, with the
	// scheme and port checked in the few entries of that base. Bases
	// shorter than wildMin or longer than wildMax are not looked up.
	wild             map[string][]wildEntry
	wildMin, wildMax int
	// wildTLDs are the last labels of the bases: a host ending in another
	// one cannot match a pattern, and is not looked up at all.
	wildTLDs   []string
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

// wildEntry is a subdomain pattern of one base domain (the part after
// "*."): its scheme, its port ("" for none, "*" for any) and its index in
// allowed_origins.
type wildEntry struct {
	scheme, port string
	index        int
}

// addWild adds the pattern scheme://*.base[:port]; a pattern listed twice
// keeps the index of its last occurrence.
func (s *originSet) addWild(scheme, base, port string, index int) {
	if s.wild == nil {
		s.wild = map[string][]wildEntry{}
		s.wildMin, s.wildMax = len(base), len(base)
	}
	s.wildMin, s.wildMax = min(s.wildMin, len(base)), max(s.wildMax, len(base))
	if tld := lastLabel(base); !slices.Contains(s.wildTLDs, tld) {
		s.wildTLDs = append(s.wildTLDs, tld)
	}
	es := s.wild[base]
	for i := range es {
		if es[i].scheme == scheme && es[i].port == port {
			es[i].index = index
			return
		}
	}
	s.wild[base] = append(es, wildEntry{scheme, port, index})
}

// lastLabel returns the last label of a host name, a trailing dot aside.
func lastLabel(host string) string {
	host = strings.TrimSuffix(host, ".")
	return host[strings.LastIndexByte(host, '.')+1:]
}

// wildIndex returns the entry of es matching scheme and port: the pattern
// with that very port first, then the one with any port.
func wildIndex(es []wildEntry, scheme, port string) (int, bool) {
	for _, e := range es {
		if e.scheme == scheme && e.port == port {
			return e.index, true
		}
	}
	for _, e := range es {
		if e.scheme == scheme && e.port == anyPortSpec {
			return e.index, true
		}
	}
	return -1, false
}

const anyPortSpec = "*"

// allowsPattern reports whether the serialized origin raw, parsed as o, is
// allowed by a pattern or a regex, and by which entry: an index in
// allowed_origins, or len(allowed_origins) plus an index in
// allowed_origin_regexes. Exact origins are looked up before parsing, in
// matchOrigin.
func (s *originSet) allowsPattern(raw string, o *origin) (int, bool) {
	if len(s.anyPort) > 0 {
		if i, ok := s.anyPort[schemeHost{o.scheme, o.host}]; ok {
			return i, true
		}
	}
	if len(s.wild) > 0 && o.host[0] != '[' && slices.Contains(s.wildTLDs, lastLabel(o.host)) {
		// Try every proper suffix that starts after a dot: for
		// a.b.example.com that is b.example.com, example.com and com.
		for i := 1; i < len(o.host)-1; i++ {
			if o.host[i] != '.' {
				continue
			}
			base := o.host[i+1:]
			if len(base) < s.wildMin {
				break // the suffixes only get shorter
			}
			if len(base) > s.wildMax {
				continue
			}
			if es, ok := s.wild[base]; ok {
				if e, ok := wildIndex(es, o.scheme, o.port); ok {
					return e, true
				}
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
