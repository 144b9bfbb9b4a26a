package origins

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/net/publicsuffix"
)

// This file finds out what an allowed_origin_regexes entry actually lets
// in, so that a regex obeys the rules exact origins and https://*. patterns
// obey (docs/policy.md, "Origins"; docs/security.md). It judges the regex by
// the origins it matches, not by its spelling: it builds origins from the
// parsed regex, with attacker-chosen text in each place where the regex
// leaves a choice, and keeps those the compiled (anchored) regex really
// matches and that Parse accepts, the only ones a regex is ever asked
// about. Two such origins that differ only in the attacker's text show
// whether that text can change the site: the public suffix (any host at
// all), the label directly under a public suffix (anyone's site on
// github.io), or a registrable name the text is glued into
// (evilexample.com). Every finding is an origin the regex matches, so the
// analysis never refuses a regex for what it does not allow; the one
// exception is a regex too large to try in full (incomplete), whose
// matches are not known.

// regexFindings are the unsafe origins a regex matches, one witness of each
// kind; "" when none was found.
type regexFindings struct {
	// arbitrary is an origin on a host the regex does not name: the
	// attacker's text decides the public suffix.
	arbitrary string
	// insecure is a plain http:// origin that is not loopback.
	insecure string
	// psWild is an origin whose label directly under the public suffix
	// psSuffix is the attacker's.
	psWild, psSuffix string
	// glued is an origin whose registrable domain is the attacker's text
	// run into text of the regex (evilexample.com for .*example\.com).
	glued string
	// incomplete is set when the regex has more places to vary than the
	// analysis tries (maxRegexWork): what it did not try is unknown.
	incomplete bool
}

// regexSite is a place in a regex where the matched text may vary.
type regexSite struct {
	kind     siteKind
	min, max int // repetitions (max -1: unbounded)
	// allowed holds the printable ASCII bytes a single-character matcher
	// (a class, ., or the matcher a string site repeats) accepts.
	allowed [128]bool
	benign  byte // the character used when the site is not varied; 0 if none
	// values are the values of a dimension: branches of an alternation,
	// or repetition counts; dflt is the one used when it is not varied,
	// and dim its index in regexAnalyzer.dims.
	values []int
	dflt   int
	dim    int
	// path is what the dimensions around this one must be for the text
	// to go through it.
	path []dimValue
}

type siteKind uint8

const (
	siteChar   siteKind = iota + 1 // one character of a class or .
	siteString                     // a repetition of a class or .
	siteAlt                        // an alternation: which branch
	siteCount                      // a repetition of anything else: how many times
)

// maxWitnessLen bounds the text a witness is built up to: Parse
// refuses longer origins anyway.
const maxWitnessLen = MaxLen + 1

// maxRegexWork bounds the work of the analysis of one regex: a unit for each
// node of the tree visited while building a string, and for each byte
// matched against the regex, times a share of its size (matchCost). A regex
// written to match the sites of a domain needs a few thousand; one with
// hundreds of alternatives, more than there is. The bound keeps a file of
// huge regexes from taking long to load (a few milliseconds a regex at
// most). A regex that needs more is not trusted (incomplete).
const maxRegexWork = 1 << 18

// payloads are the attacker's texts tried in each varying place, in pairs
// that share no first or last character: the whole origin, its start (up to
// a dot or hyphen), the rest after a scheme, a host, a host run into what
// follows, a label, and a label joined to what follows by a hyphen (where a
// \b keeps letters apart).
var payloads = [][2]string{
	{"https://evil.invalid", "https://pwnd.example"},
	{"https://evil", "https://pwnd"},
	{"https://evil.", "https://pwnd."},
	{"https://evil-", "https://pwnd-"},
	{"//evil.invalid", "//pwnd.example"},
	{"evil.invalid", "pwnd.example"},
	{".evil.invalid", ".pwnd.example"},
	{"evil", "pwnd"},
	{"evil-", "pwnd-"},
}

// charPayload is the pair tried in a place that holds one character.
var charPayload = [2]string{"x", "q"}

// payloadPool is the order in which characters stand in for a payload's
// letters that a class does not accept.
const payloadPool = "abcdefghijklmnopqrstuvwxyz1234567890-_."

type regexAnalyzer struct {
	re    *regexp.Regexp // anchored
	sites map[*syntax.Regexp]*regexSite
	dims  []*syntax.Regexp // sites of kind siteAlt and siteCount, in tree order
	// seen caches what each built string turned out to be.
	seen   map[string]*witness
	budget int       // work left (maxRegexWork)
	gen    generator // reused by build
	// afterEnd are the parts of the regex after an end anchor.
	afterEnd []*syntax.Regexp
	// bestEffort is set once every single choice has been tried: running
	// out of work then leaves the findings complete.
	bestEffort bool
	nodes      int // in the tree
	f          regexFindings
}

// witness is a built string the regex matches and Parse accepts.
type witness struct {
	s      string
	origin Origin
	// site is siteOf(origin.Host), once asked (known).
	site          hostSite
	known, siteOK bool
}

func (w *witness) hostSite() (hostSite, bool) {
	if !w.known {
		w.site, w.siteOK = siteOf(w.origin.Host)
		w.known = true
	}
	return w.site, w.siteOK
}

// analyzeOriginRegex returns the unsafe origins re (parsed with syntax.Perl)
// matches; anchored is re compiled to match whole strings.
func analyzeOriginRegex(re *syntax.Regexp, anchored *regexp.Regexp) regexFindings {
	a := &regexAnalyzer{re: anchored, sites: map[*syntax.Regexp]*regexSite{}, seen: map[string]*witness{}, budget: maxRegexWork}
	a.collect(re, nil)
	// The combinations tried: every choice at its default, then each
	// choice at each of its other values, the choices around it set so
	// that the text goes through it, the others at their defaults. The
	// budget bounds them.
	dflt := make([]int, len(a.dims))
	for i, d := range a.dims {
		dflt[i] = a.sites[d].dflt
	}
	config := slices.Clone(dflt)
	bases := [][]int{dflt}
	if tuned := a.tune(re, dflt); !slices.Equal(tuned, dflt) {
		// The defaults build no origin; these choices do.
		bases = append(bases, tuned)
	}
	for _, base := range bases {
		a.try(re, base)
		for i, d := range a.dims {
			s := a.sites[d]
			for _, v := range s.values {
				if a.f.incomplete {
					return a.f
				}
				if v == base[i] && len(s.path) == 0 {
					continue
				}
				copy(config, base)
				for _, p := range s.path {
					config[p.dim] = p.value
				}
				config[i] = v
				a.try(re, config)
			}
		}
	}
	a.probeAddresses()
	// Then two choices at once, where the analysis has work left: a
	// string may need both (https:/+ twice, and .* in an alternation).
	// Best effort: running out here leaves the findings complete as
	// above.
	a.bestEffort = true
	for i := range a.dims {
		for j := i + 1; j < len(a.dims); j++ {
			for _, v := range a.sites[a.dims[i]].values {
				for _, w := range a.sites[a.dims[j]].values {
					if a.budget == 0 {
						return a.f
					}
					if v == dflt[i] || w == dflt[j] {
						continue // tried above
					}
					copy(config, dflt)
					for _, p := range slices.Concat(a.sites[a.dims[i]].path, a.sites[a.dims[j]].path) {
						config[p.dim] = p.value
					}
					config[i], config[j] = v, w
					a.try(re, config)
				}
			}
		}
	}
	return a.f
}

// addressProbes are hosts on public IP addresses of unrelated networks
// (Google's and Cloudflare's resolvers, and a documentation network). No
// one registers an IP address, so the comparison of registrable domains in
// classify says nothing of a regex such as https://[0-9.]+; yet anyone with
// a server can serve a site on its own address, over https too (public CAs
// issue certificates for IP addresses). A regex that matches two of these,
// not written in it, lets in hosts it does not name.
var addressProbes = [][]string{
	{"8.8.8.8", "1.1.1.1", "203.0.113.7"},
	{"[2001:4860:4860::8888]", "[2606:4700:4700::1111]", "[2001:db8::7]"},
}

// probeAddresses tries the addressProbes over https and http, without a
// port and with each port of the origins found so far (a regex may require
// one), and records an arbitrary host when two addresses of a family match.
func (a *regexAnalyzer) probeAddresses() {
	src := a.re.String()
	var found []string
	for _, w := range a.seen {
		if w != nil && w.origin.Port != "" && !slices.Contains(found, w.origin.Port) {
			found = append(found, w.origin.Port)
		}
	}
	// a.seen is a map: sort before keeping three, so that the ports tried,
	// and the finding and witness quoted, do not vary from run to run.
	slices.Sort(found)
	ports := append([]string{""}, found[:min(len(found), 3)]...)
	for _, family := range addressProbes {
		for _, scheme := range []string{"https://", "http://"} {
			for _, port := range ports {
				var matched []*witness
				for _, host := range family {
					if strings.Contains(src, host) || strings.Contains(src, regexp.QuoteMeta(host)) {
						continue // named by the regex
					}
					s := scheme + host
					if port != "" {
						s += ":" + port
					}
					if w := a.check(s); w != nil {
						matched = append(matched, w)
					}
				}
				if len(matched) >= 2 {
					if a.f.arbitrary == "" {
						a.f.arbitrary = matched[0].s
					}
					return
				}
			}
		}
	}
}

// tune returns choices, from dflt, under which the plain text of re comes
// closest to an origin: one dimension at a time takes the value that brings
// the text nearest (originScore), for a few rounds. (?:https?)?:?/* needs
// four choices at once to spell https://.
func (a *regexAnalyzer) tune(re *syntax.Regexp, dflt []int) []int {
	config := slices.Clone(dflt)
	score := func() int {
		s, _ := a.build(re, config, fill{}, fill{})
		return originScore(s)
	}
	best := score()
	if best == originScore("https://a") {
		return config // an origin already
	}
	for range 4 {
		improved := false
		for i, d := range a.dims {
			keep := config[i]
			for _, v := range a.sites[d].values {
				if v == keep {
					continue
				}
				config[i] = v
				if sc := score(); sc > best {
					best, keep, improved = sc, v, true
				}
			}
			config[i] = keep
		}
		if !improved || a.f.incomplete {
			break
		}
	}
	return config
}

// originScore says how close s is to an origin: how much of "https://" or
// "http://" it starts with, and more when it is one.
func originScore(s string) int {
	var o Origin
	if Parse(s, &o) {
		return 16
	}
	n := 0
	for _, p := range []string{"https://", "http://"} {
		k := 0
		for k < len(s) && k < len(p) && s[k] == p[k] {
			k++
		}
		n = max(n, k)
	}
	return n
}

// try builds re with the dimensions at config, then with the attacker's
// text in each place the text goes through, and compares what they match.
// The other places hold their plain text; when that is no origin the
// regex matches, every run that may be empty is empty, or one run holds
// one of planTexts ("https://a", so that (.+\.)?[a-z]+ is seen to end in a
// suffix of the attacker's), or both.
func (a *regexAnalyzer) try(re *syntax.Regexp, config []int) {
	first, reached := a.build(re, config, fill{}, fill{})
	reached = slices.Clone(reached) // build reuses its buffer
	plans := []fill{{}}
	seen := map[*syntax.Regexp]bool{}
	if a.check(first) == nil {
		// The plain text is no origin the regex matches: other texts
		// may be.
		plans = append(plans, fill{zero: true})
		for _, site := range reached {
			s := a.sites[site]
			if seen[site] || s.kind != siteString {
				continue
			}
			seen[site] = true
			for _, text := range planTexts {
				if p, ok := s.fit([2]string{text, text + "b"}); ok && p[0] == text {
					plans = append(plans, fill{site: site, text: text}, fill{site: site, text: text, zero: true})
				}
			}
		}
	}
	for i, plan := range plans {
		base, _ := a.build(re, config, plan, fill{})
		w := a.check(base)
		if i > 0 && w == nil {
			continue
		}
		clear(seen)
		for _, site := range reached {
			if seen[site] || site == plan.site || a.f.incomplete {
				continue
			}
			seen[site] = true
			s := a.sites[site]
			switch s.kind {
			case siteChar:
				if p, ok := s.fit(charPayload); ok {
					a.pair(re, config, plan, site, p)
				}
			case siteString:
				for _, p := range payloads {
					if p, ok := s.fit(p); ok {
						a.pair(re, config, plan, site, p)
					}
				}
			case siteCount:
				// An unbounded repetition: one more time is text the
				// attacker adds.
				if w == nil {
					continue
				}
				more := slices.Clone(config)
				more[s.dim]++
				s2, _ := a.build(re, more, plan, fill{})
				if w2 := a.check(s2); w2 != nil {
					a.classify(w, w2, [2]string{})
				}
			}
		}
	}
}

// planTexts are the texts a run holds, in turn, when the plain text is no
// origin: a scheme and host (ending in a dot or hyphen too, before a \b), a
// scheme (for a regex that spells :// later), a label ending in a dot or a
// hyphen.
var planTexts = []string{"https://a", "https://a.", "https://a-", "https", "a.", "a-"}

// fill is text put in a site instead of its plain text; zero leaves every
// run that may be empty empty (so that [0-9]* adds nothing after a $).
type fill struct {
	site *syntax.Regexp
	text string
	zero bool
}

// pair builds the regex with each of the two payloads in site and compares
// the origins.
func (a *regexAnalyzer) pair(re *syntax.Regexp, config []int, plan fill, site *syntax.Regexp, p [2]string) {
	sa, _ := a.build(re, config, plan, fill{site: site, text: p[0]})
	wa := a.check(sa)
	if wa == nil {
		return
	}
	sb, _ := a.build(re, config, plan, fill{site: site, text: p[1]})
	if wb := a.check(sb); wb != nil {
		a.classify(wa, wb, p)
	}
}

// check returns the witness s is when the regex matches it and it is an
// origin, and records what a single origin shows: plain http.
func (a *regexAnalyzer) check(s string) *witness {
	if s == "" || len(s) > MaxLen {
		return nil
	}
	if w, ok := a.seen[s]; ok {
		return w
	}
	var w *witness
	var o Origin
	if Parse(s, &o) && a.spend(a.matchCost(s)) && a.re.MatchString(s) {
		w = &witness{s: s, origin: o}
	}
	a.seen[s] = w
	if w == nil {
		return nil
	}
	switch {
	case IsLoopback(o.Host):
	case o.Scheme == "http":
		a.note(&a.f.insecure, s)
	case a.f.insecure == "":
		// The same origin over plain http.
		if h := "http" + s[len(o.Scheme):]; a.spend(a.matchCost(h)) && a.re.MatchString(h) {
			a.note(&a.f.insecure, h)
		}
	}
	return w
}

// matchCost is the work of matching s against the regex: its length times
// a share of the regex's size, which bounds the states the matcher follows.
func (a *regexAnalyzer) matchCost(s string) int {
	return len(s) * (1 + a.nodes/32)
}

// spend takes n units of work from the budget; false when it is spent.
func (a *regexAnalyzer) spend(n int) bool {
	if a.budget < n {
		a.budget = 0
		a.f.incomplete = a.f.incomplete || !a.bestEffort
		return false
	}
	a.budget -= n
	return true
}

// note keeps the shortest witness of a kind.
func (a *regexAnalyzer) note(dst *string, s string) {
	if *dst == "" || len(s) < len(*dst) {
		*dst = s
	}
}

// classify compares two matched origins built with different attacker
// text in the same place: the payloads p, or none.
func (a *regexAnalyzer) classify(wa, wb *witness, p [2]string) {
	fa, oka := wa.hostSite()
	fb, okb := wb.hostSite()
	if !oka || !okb || fa.registrable == fb.registrable {
		return
	}
	switch {
	case fa.suffix != fb.suffix:
		// The attacker's text decides the public suffix: any host.
		for _, w := range []*witness{wa, wb} {
			w = a.overHTTPS(w)
			if a.f.arbitrary == "" || plainer(w.s, a.f.arbitrary) {
				a.f.arbitrary = w.s
			}
		}
	case !fa.listed:
		// Under a suffix the Public Suffix List does not know (internal,
		// localhost): like https://*.internal, no one else's site.
	case sharesAffix(firstLabel(fa.registrable), firstLabel(fb.registrable), p):
		a.note(&a.f.glued, a.overHTTPS(wa).s)
	default:
		if w := a.overHTTPS(wa); a.f.psWild == "" || len(w.s) < len(a.f.psWild) {
			a.f.psWild, a.f.psSuffix = w.s, fa.suffix
		}
	}
}

// overHTTPS returns the witness w over https, if the regex matches that
// too: the plainer origin to quote.
func (a *regexAnalyzer) overHTTPS(w *witness) *witness {
	if w.origin.Scheme != "https" {
		if hw := a.check("https" + w.s[len(w.origin.Scheme):]); hw != nil {
			return hw
		}
	}
	return w
}

// plainer reports whether the witness s shows the attack more plainly than
// old: a host on .invalid, the attacker's payload as a label of its own,
// then the shorter.
func plainer(s, old string) bool {
	score := func(s string) int {
		var o Origin
		if !Parse(s, &o) {
			return 0
		}
		n := 0
		if strings.HasSuffix(o.Host, ".invalid") {
			n += 4
		}
		if o.Scheme == "https" {
			n += 2
		}
		if o.Host == "evil.invalid" || strings.Contains(o.Host, ".evil.invalid") {
			n++
		}
		return n
	}
	if a, b := score(s), score(old); a != b {
		return a > b
	}
	return len(s) < len(old)
}

// hostSite is a host's place in the domain name system.
type hostSite struct {
	suffix      string // its public suffix
	listed      bool   // the Public Suffix List has suffix (not only its default rule)
	registrable string // suffix and the label before it; the host itself when it is a suffix
}

// siteOf returns where host sits; false for IP addresses, which no one
// registers.
func siteOf(host string) (hostSite, bool) {
	host = strings.TrimSuffix(host, ".")
	if host == "" || host[0] == '[' {
		return hostSite{}, false
	}
	if last := LastLabel(host); strings.Trim(last, "0123456789") == "" {
		return hostSite{}, false
	}
	ps, icann := publicsuffix.PublicSuffix(host)
	reg, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		reg = host
	}
	return hostSite{suffix: ps, listed: icann || strings.Contains(ps, "."), registrable: reg}, true
}

func firstLabel(host string) string {
	l, _, _ := strings.Cut(host, ".")
	return l
}

// sharesAffix reports whether two labels begin or end alike beyond what the
// payloads they were built with share: text of the regex around the
// attacker's.
func sharesAffix(a, b string, p [2]string) bool {
	return commonPrefix(a, b) > commonPrefix(p[0], p[1]) || commonSuffix(a, b) > commonSuffix(p[0], p[1])
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func commonSuffix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return n
}

// collect records the sites of re. path is what the dimensions around re
// must be for the text to go through it.
func (a *regexAnalyzer) collect(re *syntax.Regexp, path []dimValue) {
	a.nodes++
	switch re.Op {
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		s := &regexSite{kind: siteChar, min: 1, max: 1}
		s.allow(re)
		a.sites[re] = s
	case syntax.OpAlternate:
		s := &regexSite{kind: siteAlt, dim: len(a.dims), path: path}
		for i := range re.Sub {
			s.values = append(s.values, i)
		}
		a.sites[re] = s
		a.dims = append(a.dims, re)
		for i, sub := range re.Sub {
			a.collect(sub, append(path[:len(path):len(path)], dimValue{s.dim, i}))
		}
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := repeatRange(re)
		sub := unwrapCapture(re.Sub[0])
		if single(sub) {
			s := &regexSite{min: lo, max: hi}
			s.allow(sub)
			if s.variable() {
				s.kind = siteString
				a.sites[re] = s
				return
			}
		}
		// A count, whose values are choices: bounded, the least, one
		// more and the most, the least by default (an optional part is
		// left out); unbounded, the least, one or the least by default,
		// and one more, which is text the attacker adds.
		s := &regexSite{kind: siteCount, min: lo, max: hi, dim: len(a.dims), path: path}
		if hi < 0 {
			s.dflt = max(lo, 1)
			s.values = []int{lo, s.dflt, s.dflt + 1}
		} else {
			s.dflt = lo
			s.values = []int{lo, min(lo+1, hi), hi}
		}
		s.values = slices.Compact(s.values)
		a.sites[re] = s
		a.dims = append(a.dims, re)
		if hi != 0 {
			a.collect(re.Sub[0], append(path[:len(path):len(path)], dimValue{s.dim, max(lo, 1)}))
		}
	case syntax.OpConcat:
		// What follows an end anchor can only be empty: its runs are
		// left empty when not varied.
		end := false
		for _, sub := range re.Sub {
			if end {
				a.afterEnd = append(a.afterEnd, sub)
			}
			end = end || sub.Op == syntax.OpEndText || sub.Op == syntax.OpEndLine
			a.collect(sub, path)
		}
	default:
		for _, sub := range re.Sub {
			a.collect(sub, path)
		}
	}
}

// dimValue is a value of a dimension.
type dimValue struct{ dim, value int }

func repeatRange(re *syntax.Regexp) (lo, hi int) {
	switch re.Op {
	case syntax.OpStar:
		return 0, -1
	case syntax.OpPlus:
		return 1, -1
	case syntax.OpQuest:
		return 0, 1
	}
	return re.Min, re.Max
}

func unwrapCapture(re *syntax.Regexp) *syntax.Regexp {
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	return re
}

// single reports whether re matches exactly one character.
func single(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpLiteral:
		return len(re.Rune) == 1
	}
	return false
}

// allow records the printable ASCII characters the one-character matcher re
// accepts, and picks the one used when the site is not varied.
func (s *regexSite) allow(re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		for c := 0x21; c < 0x7f; c++ {
			s.allowed[c] = true
		}
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for c := max(re.Rune[i], 0x21); c <= min(re.Rune[i+1], 0x7e); c++ {
				s.allowed[c] = true
			}
		}
	case syntax.OpLiteral:
		r := re.Rune[0]
		if re.Flags&syntax.FoldCase != 0 {
			r = unicode.ToLower(r)
		}
		if r > 0x20 && r < 0x7f {
			s.allowed[r] = true
		}
	}
	for c := 'A'; c <= 'Z'; c++ {
		s.allowed[c] = false // browsers send host names in lower case
	}
	for _, c := range []byte("a1" + payloadPool) {
		if s.allowed[c] {
			s.benign = c
			return
		}
	}
	for c := 0x21; c < 0x7f; c++ {
		if s.allowed[c] {
			s.benign = byte(c)
			return
		}
	}
}

// variable reports whether the site accepts more than one character a
// browser can send.
func (s *regexSite) variable() bool {
	n := 0
	for _, ok := range s.allowed {
		if ok {
			n++
		}
	}
	return n > 1
}

// fit turns a pair of payloads into ones the site accepts: a letter it does
// not accept becomes one it does (the first for one payload, the second
// for the other), and a label is cut or padded to the length the site
// allows. Dots, colons and slashes are structure and must be accepted as
// they are. false when no such pair exists.
func (s *regexSite) fit(p [2]string) ([2]string, bool) {
	first, second := byte(0), byte(0)
	for _, c := range []byte(payloadPool) {
		if s.allowed[c] {
			if first == 0 {
				first = c
			} else if second == 0 {
				second = c
			}
		}
	}
	label := !strings.ContainsAny(p[0], ".:/")
	for i := 0; i < len(p[0]); i++ {
		if c := p[0][i]; (c == '.' || c == ':' || c == '/' || c == '-') && !s.allowed[c] {
			return [2]string{}, false // cheaply, before building anything
		}
	}
	if !label && (len(p[0]) < s.min || s.max >= 0 && len(p[0]) > s.max) {
		return [2]string{}, false
	}
	var out [2]string
	for i, text := range p {
		b := []byte(text)
		for j, c := range b {
			switch {
			case s.allowed[c]:
			case isLowerAlpha(c) && i == 0 && first != 0:
				b[j] = first
			case isLowerAlpha(c) && i == 1 && second != 0:
				b[j] = second
			default:
				return out, false
			}
		}
		if label {
			if s.max >= 0 && len(b) > s.max {
				b = b[:s.max]
			}
			for len(b) < s.min {
				b = append(b, b[len(b)-1])
			}
		}
		if len(b) < s.min || (s.max >= 0 && len(b) > s.max) {
			return out, false
		}
		out[i] = string(b)
	}
	return out, out[0] != out[1]
}

// generator builds one string the regex may match.
type generator struct {
	a             *regexAnalyzer
	afterEnd      int   // > 0 inside a part after an end anchor
	config        []int // the value of each dimension
	plan, payload fill
	b             []byte
	reached       []*syntax.Regexp
	ok            bool
}

// build returns the string for re with the dimensions at config and the
// text of the fills in their sites (the payload second, so that it wins),
// and the sites it went through; "" when no string could be built.
func (a *regexAnalyzer) build(re *syntax.Regexp, config []int, plan, payload fill) (string, []*syntax.Regexp) {
	g := &a.gen
	*g = generator{a: a, config: config, ok: true, plan: plan, payload: payload, b: g.b[:0], reached: g.reached[:0]}
	g.emit(re)
	if !g.ok {
		return "", g.reached
	}
	return string(g.b), g.reached
}

// text returns the fill for site, if any.
func (g *generator) text(site *syntax.Regexp) (string, bool) {
	switch site {
	case g.payload.site:
		return g.payload.text, true
	case g.plan.site:
		return g.plan.text, true
	}
	return "", false
}

func (g *generator) emit(re *syntax.Regexp) {
	if !g.ok {
		return
	}
	if len(g.b) > maxWitnessLen || !g.a.spend(1) {
		g.ok = false
		return
	}
	switch re.Op {
	case syntax.OpNoMatch:
		g.ok = false
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				r = unicode.ToLower(r)
			}
			g.b = append(g.b, string(r)...)
		}
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		s := g.a.sites[re]
		g.reached = append(g.reached, re)
		t, filled := g.text(re)
		switch {
		case filled:
			g.b = append(g.b, t...)
		case s.benign != 0:
			g.b = append(g.b, s.benign)
		case re.Op == syntax.OpCharClass && len(re.Rune) > 0:
			g.b = append(g.b, string(re.Rune[0])...)
		default:
			g.ok = false
		}
	case syntax.OpCapture:
		g.emit(re.Sub[0])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			after := slices.Contains(g.a.afterEnd, sub)
			if after {
				g.afterEnd++
			}
			g.emit(sub)
			if after {
				g.afterEnd--
			}
		}
	case syntax.OpAlternate:
		g.emit(re.Sub[g.config[g.a.sites[re].dim]])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		s := g.a.sites[re]
		if s.kind == siteString {
			g.reached = append(g.reached, re)
			if t, filled := g.text(re); filled {
				g.b = append(g.b, t...)
				return
			}
			// The least an optional run can be; one character of a
			// run that may go on for ever, so that a label is not
			// left empty.
			n := s.min
			if s.max < 0 && !g.plan.zero && g.afterEnd == 0 {
				n = max(n, 1)
			}
			for range n {
				g.b = append(g.b, s.benign)
			}
			return
		}
		n := g.config[s.dim]
		if n > 0 && s.max < 0 {
			g.reached = append(g.reached, re)
		}
		for range n {
			g.emit(re.Sub[0])
			if !g.ok {
				return
			}
		}
	}
	// Anchors, word boundaries and empty matches add no text; a string
	// they do not allow is one the compiled regex does not match.
}
