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

// originAllowed applies docs/semantics.md, §3 to the request's Origin.
func (p *compiledPolicy) originAllowed(r *Request, tr *trace) (bool, Reason) {
	ok, reason, entry := p.matchOrigin(r)
	if tr != nil {
		tr.origin(p, r, ok, reason, entry)
	}
	return ok, reason
}

// matchOrigin returns whether the origin is allowed, why not, and the
// allowed_origins entry that let it in (-1 for none or for all origins).
func (p *compiledPolicy) matchOrigin(r *Request) (bool, Reason, int) {
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
func (p *compiledPolicy) acao(r *Request) string {
	if p.allowAll {
		return "*"
	}
	return r.Origin
}

// notCORS handles a governed request without an Origin (docs/semantics.md,
// §6).
func (p *compiledPolicy) notCORS(d *Decision) {
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
func (p *compiledPolicy) actual(r *Request, d *Decision, tr *trace) {
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
func (p *compiledPolicy) preflight(r *Request, d *Decision, tr *trace) {
	// The requested names are collected only when something reads them:
	// the answer when allow_headers holds *, and explain. Otherwise the
	// buffer is not even zeroed.
	var names *acrhNames
	if p.headerAll || tr != nil {
		names = new(acrhNames)
	}
	if reason, refused := p.preflightChecks(r, names, tr); reason != ReasonNone {
		d.Reason, d.Refused = reason, refused
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
// reason of the first failure, ReasonNone when all pass, and the value
// refused (Decision.Refused).
func (p *compiledPolicy) preflightChecks(r *Request, names *acrhNames, tr *trace) (Reason, string) {
	if ok, why := p.originAllowed(r, tr); !ok {
		return why, ""
	}
	ok := p.methodAllowed(r)
	tr.method(p, r, ok)
	if !ok {
		return ReasonMethodNotAllowed, r.ACRM
	}
	why, name := p.headersAllowed(r.ACRH, names)
	tr.headers(p, why, name, names)
	if why != ReasonNone {
		return why, name
	}
	ok = r.ACRPN != "true" || p.pna
	tr.privateNetwork(r, ok)
	if !ok {
		return ReasonPrivateNetworkNotAllowed, ""
	}
	return ReasonNone, ""
}

func (p *compiledPolicy) methodAllowed(r *Request) bool {
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
func (p *compiledPolicy) headersAllowed(lines []string, names *acrhNames) (Reason, string) {
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
func (p *compiledPolicy) headerAllowed(name string) bool {
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
