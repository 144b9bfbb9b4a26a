package policy

import (
	"strings"

	"github.com/corsproc/corsproc/internal/origins"
)

// ACRH parsing bounds (docs/semantics.md, §5 and §10): beyond them a preflight fails. They keep
// a hostile Access-Control-Request-Headers from costing more than a normal
// one; browsers send a few names.
const (
	MaxACRHBytes = 1024
	MaxACRHNames = 64
)

// Decide selects the policy governing r (docs/semantics.md, §2) and decides
// what corsproc does with it (§4 to §8), filling d. It allocates nothing
// for actual requests and requests without an Origin.
func (s *Set) Decide(r *Request, d *Decision) { s.decide(r, d, nil) }

// decide is Decide, recording each check in tr when tr is not nil: explain
// runs the very code the server runs.
func (s *Set) decide(r *Request, d *Decision, tr *trace) {
	d.reset()
	p := s.selectPolicy(r, d)
	if p == nil {
		if d.Selection == SelectedUnknown {
			unknownPolicy(r, d, tr)
		}
		return
	}
	if tr != nil {
		tr.policy = p
	}
	d.Policy, d.Shadow = p.name, p.shadow
	switch r.kind() {
	case kindNonCORS:
		p.notCORS(d)
	case kindPreflight:
		p.preflight(r, d, tr)
	default:
		p.actual(r, d, tr)
	}
}

// unknownPolicy decides a request whose x-corsproc-policy metadata names a
// policy the set does not hold (or has several values): it is governed and
// refused, so that a typo in the Envoy route or a reload that renamed a
// policy never hands CORS to the upstream (docs/policy.md, "Unknown
// policy"). A preflight is answered 403 by corsproc, whatever
// unmatched_preflight the meant policy had; any other request goes to the
// upstream, and its response gets the upstream's CORS headers removed and
// Vary: Origin appended. No unmatched_preflight, allow_all_origins or
// shadow mode applies: there is no policy to take them from.
func unknownPolicy(r *Request, d *Decision, tr *trace) {
	d.Reason = ReasonUnknownPolicy
	tr.unknownPolicy(r)
	switch r.kind() {
	case kindPreflight:
		d.Outcome, d.Status = OutcomePreflightRejected, 403
	case kindNonCORS:
		d.Outcome = OutcomeNotCORS
		d.add(HeaderVary, VaryOrigin, true)
	default:
		d.Outcome = OutcomeDenied
		d.add(HeaderVary, VaryOrigin, true)
	}
}

// requestKind is the classification of docs/semantics.md, §4.
type requestKind uint8

const (
	kindNonCORS requestKind = iota
	kindPreflight
	kindActual
)

// kind classifies r (docs/semantics.md, §4): no Origin, a preflight (OPTIONS with an
// Origin and an Access-Control-Request-Method), or an actual CORS request.
func (r *Request) kind() requestKind {
	switch {
	case r.Origin == "" && !r.DuplicateOrigin && !r.Truncated:
		return kindNonCORS
	case r.Method == "OPTIONS" && (r.ACRM != "" || r.DuplicateACRM || r.Truncated):
		return kindPreflight
	}
	return kindActual
}

// selectPolicy applies docs/semantics.md, §2: metadata, route, host and
// path, default.
func (s *Set) selectPolicy(r *Request, d *Decision) *policy {
	if r.PolicyName != "" || r.AmbiguousPolicyName {
		if p, ok := s.byName[r.PolicyName]; ok && !r.AmbiguousPolicyName {
			d.Selection = SelectedByMetadata
			return p
		}
		d.Selection = SelectedUnknown
		return nil
	}
	var routed *policy
	if r.Route != "" {
		routed = s.byRoute[r.Route]
	}
	if routed != nil || len(s.matchers) > 0 {
		// Read once for both: they may be lower-cased copies.
		host, path := requestHost(r.Host), requestPath(r.Path)
		if routed != nil && routed.match.holds(host, path) {
			d.Selection = SelectedByRoute
			return routed
		}
		for _, p := range s.matchers {
			if p.match.holds(host, path) {
				d.Selection = SelectedByMatch
				return p
			}
		}
	}
	if s.def != nil {
		d.Selection = SelectedByDefault
		return s.def
	}
	return nil
}

// requestHost returns :authority without its port or a trailing dot, lower
// case. Browsers and Envoy send lower-case hosts, so only an unusual request
// pays for lower-casing.
func requestHost(authority string) string {
	h := authority
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 {
			h = h[:end+1]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// requestPath returns :path without the query.
func requestPath(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// holds reports whether every host and path condition of the match holds.
func (m *matcher) holds(host, path string) bool {
	if len(m.hosts) > 0 || len(m.wildHosts) > 0 {
		if !m.hostMatches(host) {
			return false
		}
	}
	if len(m.prefixes) > 0 {
		ok := false
		for _, p := range m.prefixes {
			if strings.HasPrefix(path, p) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return m.urls == nil || m.urls.MatchString(path)
}

func (m *matcher) hostMatches(host string) bool {
	if _, ok := m.hosts[host]; ok {
		return true
	}
	for i := 1; i < len(host)-1; i++ {
		if host[i] == '.' {
			if _, ok := m.wildHosts[host[i+1:]]; ok {
				return true
			}
		}
	}
	return false
}

// originAllowed applies docs/semantics.md, §3 to the request's Origin.
func (p *policy) originAllowed(r *Request, tr *trace) (bool, Reason) {
	ok, reason, entry := p.matchOrigin(r)
	if tr != nil {
		tr.origin(p, r, ok, reason, entry)
	}
	return ok, reason
}

// matchOrigin returns whether the origin is allowed, why not, and the
// allowed_origins entry that let it in (-1 for none or for all origins).
func (p *policy) matchOrigin(r *Request) (bool, Reason, int) {
	if p.allowAll {
		// The answer is "*" whatever the Origin says: nothing to match.
		return true, ReasonNone, -1
	}
	if r.DuplicateOrigin || r.Truncated || len(r.Origin) > origins.MaxLen {
		// No exact entry is that long (they are serialized origins): a
		// hostile 1 MiB Origin is not even hashed.
		return false, ReasonOriginMalformed, -1
	}
	// An exact entry is a serialized origin or an explicit opaque one
	// ("null", "file://"; compileOrigins keeps no other), so a hit needs no
	// parsing.
	if i, ok := p.origins.exact[r.Origin]; ok {
		return true, ReasonNone, i
	}
	if r.Origin == origins.Null {
		// Opaque: it matches only an explicit entry. "file://" does not
		// parse, so it is malformed below.
		return false, ReasonOriginNotAllowed, -1
	}
	var o origins.Origin
	if !origins.Parse(r.Origin, &o) {
		return false, ReasonOriginMalformed, -1
	}
	if i, ok := p.origins.allowsPattern(r.Origin, &o); ok {
		return true, ReasonNone, i
	}
	return false, ReasonOriginNotAllowed, -1
}

// acao is the Access-Control-Allow-Origin value for an allowed origin.
func (p *policy) acao(r *Request) string {
	if p.allowAll {
		return "*"
	}
	return r.Origin
}

// notCORS handles a governed request without an Origin (docs/semantics.md,
// §6).
func (p *policy) notCORS(d *Decision) {
	d.Outcome = OutcomeNotCORS
	if p.allowAll {
		d.add(HeaderACAO, "*", false)
		if p.aceh != "" {
			d.add(HeaderACEH, p.aceh, false)
		}
		return
	}
	d.add(HeaderVary, VaryOrigin, true)
}

// actual handles an actual CORS request (docs/semantics.md, §6).
func (p *policy) actual(r *Request, d *Decision, tr *trace) {
	ok, reason := p.originAllowed(r, tr)
	if !ok {
		d.Outcome, d.Reason = OutcomeDenied, reason
		d.add(HeaderVary, VaryOrigin, true)
		return
	}
	d.Outcome = OutcomeAllowed
	d.add(HeaderACAO, p.acao(r), false)
	if p.creds {
		d.add(HeaderACAC, "true", false)
	}
	if p.aceh != "" {
		d.add(HeaderACEH, p.aceh, false)
	}
	if !p.allowAll {
		d.add(HeaderVary, VaryOrigin, true)
	}
}

// preflight handles a preflight (docs/semantics.md, §5): the checks in
// Fetch order, the first failure decides.
func (p *policy) preflight(r *Request, d *Decision, tr *trace) {
	// The requested names are collected only when something reads them:
	// the answer when allow_headers holds *, and explain. Otherwise the
	// buffer is not even zeroed.
	var names *acrhNames
	if p.headerAll || tr != nil {
		names = new(acrhNames)
	}
	if reason := p.preflightChecks(r, names, tr); reason != ReasonNone {
		d.Reason = reason
		if p.forward {
			// The upstream answers the OPTIONS request, and corsproc
			// removes every CORS header from its answer (Remove): the
			// upstream can never allow what corsproc refused. Vary as for
			// any governed response.
			d.Outcome = OutcomePreflightForwarded
			d.add(HeaderVary, VaryOrigin, true)
			return
		}
		d.Outcome, d.Status = OutcomePreflightRejected, 403
		return
	}
	d.Outcome, d.Status = OutcomePreflightAllowed, p.status
	d.add(HeaderACAO, p.acao(r), false)
	if p.creds {
		d.add(HeaderACAC, "true", false)
	}
	if p.methodAll {
		d.add(HeaderACAM, r.ACRM, false)
	} else if p.acam != "" {
		d.add(HeaderACAM, p.acam, false)
	}
	if p.headerAll {
		if names.n > 0 { // names is not nil when headerAll
			d.add(HeaderACAH, names.join(), false)
		}
	} else if p.acah != "" {
		d.add(HeaderACAH, p.acah, false)
	}
	if p.acma != "" {
		d.add(HeaderACMA, p.acma, false)
	}
	if r.ACRPN == "true" {
		d.add(HeaderACAPN, "true", false)
	}
	d.add(HeaderVary, VaryPreflight, false)
}

// preflightChecks runs the checks of docs/semantics.md, §5 in order and returns the
// reason of the first failure, ReasonNone when all pass.
func (p *policy) preflightChecks(r *Request, names *acrhNames, tr *trace) Reason {
	if ok, why := p.originAllowed(r, tr); !ok {
		return why
	}
	ok := p.methodAllowed(r)
	tr.method(p, r, ok)
	if !ok {
		return ReasonMethodNotAllowed
	}
	why, name := p.headersAllowed(r.ACRH, names)
	tr.headers(p, why, name, names)
	if why != ReasonNone {
		return why
	}
	ok = r.ACRPN != "true" || p.pna
	tr.privateNetwork(r, ok)
	if !ok {
		return ReasonPrivateNetworkNotAllowed
	}
	return ReasonNone
}

func (p *policy) methodAllowed(r *Request) bool {
	if r.DuplicateACRM || r.Truncated || !isToken(r.ACRM) {
		return false
	}
	if p.methodAll {
		// * allows any method but those a policy may not list
		// (compileMethods): corsproc never answers allowing them.
		return !IsForbiddenMethod(r.ACRM)
	}
	_, ok := p.methods[r.ACRM]
	return ok
}

// acrhNames collects the requested header names, lower case and joined with
// ", ", in a fixed buffer: parsing allocates nothing per element. The names
// hold at most MaxACRHBytes; each separator needs two more. A nil
// *acrhNames collects nothing.
type acrhNames struct {
	buf [MaxACRHBytes + 2*MaxACRHNames]byte
	len int
	n   int
}

func (a *acrhNames) join() string {
	return string(a.buf[:a.len])
}

// headersAllowed applies docs/semantics.md, §5 step 3 to every name of every ACRH line,
// collecting the names in names unless it is nil. When it fails on one name,
// it returns that name too.
func (p *policy) headersAllowed(lines []string, names *acrhNames) (Reason, string) {
	total, n := 0, 0
	for _, line := range lines {
		total += len(line)
		if total > MaxACRHBytes {
			return ReasonHeadersMalformed, ""
		}
		for len(line) > 0 {
			var name string
			if i := strings.IndexByte(line, ','); i >= 0 {
				name, line = line[:i], line[i+1:]
			} else {
				name, line = line, ""
			}
			name = trimOWS(name)
			if name == "" {
				continue
			}
			if n++; n > MaxACRHNames {
				return ReasonHeadersMalformed, ""
			}
			if !isToken(name) {
				return ReasonHeadersMalformed, name
			}
			if names != nil {
				names.add(name)
			}
			if p.headerAll {
				// * allows any name but those a policy may not list
				// (compileHeaders): corsproc never answers allowing them.
				if refusedRequestHeader(name) {
					return ReasonHeaderNotAllowed, name
				}
			} else if !p.headerAllowed(name) {
				return ReasonHeaderNotAllowed, name
			}
		}
	}
	return ReasonNone, ""
}

// refusedRequestHeader reports, without allocating, whether name (any case)
// is one compileHeaders refuses in allow_headers: a forbidden request
// header or a CORS response header. Browsers never ask for them in
// Access-Control-Request-Headers (scripts cannot set forbidden headers),
// but any other client can, and * must not answer it with what a listed
// policy could never say.
func refusedRequestHeader(name string) bool {
	return IsForbiddenRequestHeader(name) || isCORSResponseHeader(name)
}

// maxHeaderNameLen is the longest name headerAllowed lower-cases on the
// stack; longer ones (only possible when allow_headers lists such a name)
// take an allocation.
const maxHeaderNameLen = 128

// trimOWS trims spaces and tabs.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// add appends name, lower-cased, to the collected names. The bounds
// headersAllowed checks keep it within buf.
func (a *acrhNames) add(name string) {
	if a.n++; a.n > 1 {
		a.len += copy(a.buf[a.len:], ", ")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		a.buf[a.len] = c
		a.len++
	}
}

// headerAllowed reports whether the header name (a token, any case) is in
// allow_headers. Browsers send lower-case names, which are looked up as
// they are; others are lower-cased on the stack first. A name longer than
// every allowed one is not looked up at all.
func (p *policy) headerAllowed(name string) bool {
	if len(name) > p.headerMaxLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			if len(name) > maxHeaderNameLen {
				_, ok := p.headers[strings.ToLower(name)]
				return ok
			}
			var buf [maxHeaderNameLen]byte
			lower := buf[:len(name)]
			for j := 0; j < len(name); j++ {
				c := name[j]
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				lower[j] = c
			}
			_, ok := p.headers[string(lower)]
			return ok
		}
	}
	_, ok := p.headers[name]
	return ok
}
