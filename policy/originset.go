package policy

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/corsproc/corsproc/internal/origins"
)

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
	if tld := origins.LastLabel(base); !slices.Contains(s.wildTLDs, tld) {
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

// wildIndex returns the entry of es matching scheme and port: the pattern
// with that very port first, then the one with any port.
func wildIndex(es []wildEntry, scheme, port string) (int, bool) {
	for _, e := range es {
		if e.scheme == scheme && e.port == port {
			return e.index, true
		}
	}
	for _, e := range es {
		if e.scheme == scheme && e.port == origins.AnyPort {
			return e.index, true
		}
	}
	return -1, false
}

// allowsPattern reports whether the serialized origin raw, parsed as o, is
// allowed by a pattern or a regex, and by which entry: an index in
// allowed_origins, or len(allowed_origins) plus an index in
// allowed_origin_regexes. Exact origins are looked up before parsing, in
// matchOrigin.
func (s *originSet) allowsPattern(raw string, o *origins.Origin) (int, bool) {
	if len(s.anyPort) > 0 {
		if i, ok := s.anyPort[schemeHost{o.Scheme, o.Host}]; ok {
			return i, true
		}
	}
	if len(s.wild) > 0 && o.TLD != "" && slices.Contains(s.wildTLDs, o.TLD) {
		// Try every proper suffix that starts after a dot: for
		// a.b.example.com that is b.example.com, example.com and com.
		for i := 1; i < len(o.Host)-1; i++ {
			if o.Host[i] != '.' {
				continue
			}
			base := o.Host[i+1:]
			if len(base) < s.wildMin {
				break // the suffixes only get shorter
			}
			if len(base) > s.wildMax {
				continue
			}
			if es, ok := s.wild[base]; ok {
				if e, ok := wildIndex(es, o.Scheme, o.Port); ok {
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
