package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/corsproc/corsproc/internal/origins"
)

// Check results, as explain prints them.
const (
	CheckPass    = "pass"
	CheckFail    = "fail"
	CheckSkipped = "not evaluated"
)

// Check is one step of a decision.
type Check struct {
	Name   string `json:"name"`   // policy, origin, method, headers, private_network, credentials
	Result string `json:"result"` // pass, fail, not evaluated
	Detail string `json:"detail"`
}

// Explanation says what corsproc does with a request and why: the policy
// and how it was selected, every check in order, the exact headers, and for
// a failure what the browser will say and what would fix it. It is built by
// the same code that serves requests.
type Explanation struct {
	Policy    string   `json:"policy"`
	Selection string   `json:"selection"`
	Why       string   `json:"why"`
	Kind      string   `json:"kind"` // preflight, actual, non_cors, none
	Outcome   string   `json:"outcome"`
	Reason    string   `json:"reason"`
	Shadow    bool     `json:"shadow,omitempty"`
	Status    int      `json:"status,omitempty"` // of the immediate response
	Checks    []Check  `json:"checks"`
	Headers   []Header `json:"headers"`
	Remove    []string `json:"remove,omitempty"`
	// Response says what the browser gets: corsproc's immediate response,
	// or the upstream's response with Remove and Headers applied.
	Response string `json:"response"`
	// BrowserError is the error the browser's console will show; "" when
	// the browser hands the response to the page.
	BrowserError string `json:"browser_error,omitempty"`
	// Fix is the policy change that would let the request through. It
	// always passes validation: a change corsproc would refuse is not
	// offered (the fix then says why none exists).
	Fix string `json:"fix,omitempty"`
	// Hints are the near misses: an allowed origin the request's differs
	// from only in scheme, port or subdomain, and another policy of the
	// set that would allow the request, with why it was not selected.
	Hints []string `json:"hints,omitempty"`
}

// ExplainRequest is a request to explain: the facts corsproc sees, plus
// whether the page sends credentials (cookies), which only the browser knows.
type ExplainRequest struct {
	Request
	// Credentials: fetch with credentials: 'include' (or XHR
	// withCredentials).
	Credentials bool
	// URL names the resource in the browser error text; "" uses the host
	// and path.
	URL string
}

// trace records the checks of one decision for Explain.
type trace struct {
	policy *compiledPolicy
	checks []Check
	header string // the requested header that failed
}

func (tr *trace) add(name string, ok bool, format string, args ...any) {
	result := CheckPass
	if !ok {
		result = CheckFail
	}
	tr.checks = append(tr.checks, Check{Name: name, Result: result, Detail: fmt.Sprintf(format, args...)})
}

func (tr *trace) origin(p *compiledPolicy, r *Request, ok bool, reason Reason, entry int) {
	if tr == nil {
		return
	}
	switch {
	case p.allowAll:
		tr.add("origin", true, "allow_all_origins is true: any origin, answered with *")
	case ok:
		tr.add("origin", true, "%q is allowed by %s", r.Origin, p.origins.entry(entry))
	case r.Truncated:
		tr.add("origin", false, "the request's headers exceed corsproc's bounds and were not all read; CORS is refused")
	case r.DuplicateOrigin:
		tr.add("origin", false, "the request has more than one Origin header; browsers send one")
	case reason == ReasonOriginMalformed:
		tr.add("origin", false, "%q is not a serialized origin (scheme://host[:port], lower case, no path, no default port); browsers never send that", r.Origin)
	default:
		tr.add("origin", false, "%q is not in allowed_origins or allowed_origin_regexes", r.Origin)
	}
}

// unknownPolicy records that the metadata names no policy of the set.
func (tr *trace) unknownPolicy(r *Request) {
	if tr == nil {
		return
	}
	if r.AmbiguousPolicyName {
		tr.add("policy", false, "the stream metadata x-corsproc-policy has several values: corsproc governs the request and allows nothing")
		return
	}
	tr.add("policy", false, "the stream metadata x-corsproc-policy names %q, which the policy set does not define: corsproc governs the request and allows nothing", r.PolicyName)
}

func (tr *trace) method(p *compiledPolicy, r *Request, ok bool) {
	if tr == nil {
		return
	}
	switch {
	case r.DuplicateACRM:
		tr.add("method", false, "the request has more than one Access-Control-Request-Method header")
	case !ok && p.methodAll && IsForbiddenMethod(r.ACRM):
		tr.add("method", false, "%q is a forbidden method: allow_methods' * never allows CONNECT, TRACE or TRACK, which a policy may not list", r.ACRM)
	case !ok:
		tr.add("method", false, "%q is not in allow_methods [%s] (methods are case-sensitive)", r.ACRM, p.acam)
	case p.methodAll:
		tr.add("method", true, "allow_methods holds *: %q is allowed", r.ACRM)
	case r.ACRM == "GET" || r.ACRM == "HEAD" || r.ACRM == "POST":
		tr.add("method", true, "%s is always allowed", r.ACRM)
	default:
		tr.add("method", true, "%q is in allow_methods", r.ACRM)
	}
}

func (tr *trace) headers(p *compiledPolicy, why Reason, name string, names *acrhNames) {
	if tr == nil {
		return
	}
	tr.header = name
	switch {
	case why == ReasonHeadersMalformed && name != "":
		tr.add("headers", false, "%q is not a header name", name)
	case why == ReasonHeadersMalformed:
		tr.add("headers", false, "Access-Control-Request-Headers is beyond %d bytes or %d names", MaxACRHBytes, MaxACRHNames)
	case why != ReasonNone && p.headerAll:
		tr.add("headers", false, "%q is a forbidden request header or a CORS response header: allow_headers' * never allows what a policy may not list", strings.ToLower(name))
	case why != ReasonNone:
		tr.add("headers", false, "%q is not in allow_headers [%s]", strings.ToLower(name), p.acah)
	case names.n == 0:
		tr.add("headers", true, "no headers requested")
	case p.headerAll:
		tr.add("headers", true, "allow_headers holds *: %s allowed", names.join())
	default:
		tr.add("headers", true, "%s in allow_headers", names.join())
	}
}

func (tr *trace) privateNetwork(r *Request, ok bool) {
	if tr == nil {
		return
	}
	switch {
	case r.ACRPN != "true":
		tr.add("private_network", true, "not requested")
	case ok:
		tr.add("private_network", true, "requested, and allow_private_network is true")
	default:
		tr.add("private_network", false, "requested, but allow_private_network is false")
	}
}

// Explain decides r exactly as Decide does and explains the decision.
func (s *Set) Explain(er *ExplainRequest) *Explanation {
	r := &er.Request
	var d Decision
	tr := &trace{}
	s.decide(r, &d, tr)
	p := tr.policy

	e := &Explanation{
		Policy:    d.Policy,
		Selection: d.Selection.String(),
		Outcome:   d.Outcome.String(),
		Reason:    d.Reason.String(),
		Shadow:    d.Shadow,
		Headers:   append([]Header{}, d.Headers()...),
		Remove:    d.Remove(),
		Checks:    tr.checks,
	}
	if d.RespondImmediately() {
		e.Status = d.Status
	}
	e.Why = s.why(r, &d, p)
	switch {
	case p == nil && d.Selection != SelectedUnknown:
		e.Kind = "none"
	case r.kind() == kindNonCORS:
		e.Kind = "non_cors"
	case r.kind() == kindPreflight:
		e.Kind = "preflight"
		if p == nil {
			break // an unknown policy: no check runs
		}
		for _, name := range []string{"origin", "method", "headers", "private_network"}[len(tr.checks):] {
			e.Checks = append(e.Checks, Check{Name: name, Result: CheckSkipped, Detail: "an earlier check failed"})
		}
	default:
		e.Kind = "actual"
	}
	e.Response = response(&d)
	s.browserView(er, &d, p, e, tr.header)
	if d.Reason != ReasonNone || (p == nil && d.Selection != SelectedUnknown && r.kind() != kindNonCORS) {
		e.Hints = append(e.Hints, s.otherPolicies(r, &d, p)...)
	}
	return e
}

// originFix is the change to p that lets origin in, as validation accepts
// it (compileOrigins): a null origin or a plain-http one with credentials
// is not simply added.
func originFix(p *compiledPolicy, origin, policyRef string) string {
	var o origins.Origin
	switch {
	case origin == origins.Null && p.creds:
		return fmt.Sprintf("none while %s has allow_credentials: true: %q is the origin of every sandboxed iframe and local file, and corsproc refuses it with credentials", policyRef, origin)
	case origin == origins.Null && !p.nullOK:
		return fmt.Sprintf("add %q to allowed_origins and set dangerously_allow_null_origin: true in %s, if you accept that every sandboxed iframe and local file sends it", origin, policyRef)
	case p.creds && !p.insecureOK && origins.Parse(origin, &o) && o.Scheme == "http" && !origins.IsLoopback(o.Host):
		return fmt.Sprintf("serve the page over https and add %q to allowed_origins of %s; plain http with credentials is refused unless you also set dangerously_allow_insecure_origins: true",
			"https://"+strings.TrimPrefix(origin, "http://"), policyRef)
	}
	return fmt.Sprintf("add %q to allowed_origins of %s", origin, policyRef)
}

// nearMisses names the entries of p's allowed_origins that origin differs
// from only in scheme, port or subdomain: the usual typos of a policy.
func nearMisses(p *compiledPolicy, origin string) []string {
	var o origins.Origin
	if !origins.Parse(origin, &o) {
		return nil
	}
	var hints []string
	for _, entry := range p.origins.origins {
		c, prob := origins.ParseConfig(entry)
		if prob != nil || c.Null {
			continue
		}
		sameHost := c.Host == o.Host && !c.WildSub
		samePort := c.Port == o.Port || c.Port == origins.AnyPort
		var what string
		switch {
		case sameHost && samePort && c.Scheme != o.Scheme:
			what = "scheme"
		case sameHost && c.Scheme == o.Scheme && !samePort:
			what = "port"
		case c.Scheme == o.Scheme && samePort && !sameHost && sameSite(c.Host, o.Host) && !(c.WildSub && strings.HasSuffix(o.Host, "."+c.Host)):
			what = "subdomain"
		default:
			continue
		}
		hints = append(hints, fmt.Sprintf("%q differs from the allowed origin %q only in %s", origin, entry, what))
	}
	return hints
}

// sameSite reports whether hosts a and b share everything but their first
// label (app.example.com and api.example.com, example.com and
// www.example.com).
func sameSite(a, b string) bool {
	parent := func(h string) string {
		if i := strings.IndexByte(h, '.'); i >= 0 {
			return h[i+1:]
		}
		return ""
	}
	return parent(a) != "" && (parent(a) == parent(b) || parent(a) == b || a == parent(b))
}

// otherPolicies names the policies of the set other than p that would
// allow r, and why each was not the one selected.
func (s *Set) otherPolicies(r *Request, d *Decision, p *compiledPolicy) []string {
	host, path := requestHost(r.Host), requestPath(r.Path)
	var hints []string
	for _, name := range s.names {
		q := s.byName[name]
		if q == p || q == nil {
			continue
		}
		var qd Decision
		switch r.kind() {
		case kindPreflight:
			q.preflight(r, &qd, nil)
			if qd.Outcome != OutcomePreflightAllowed {
				continue
			}
		case kindActual:
			q.actual(r, &qd, nil)
			if qd.Outcome != OutcomeAllowed {
				continue
			}
		default:
			continue
		}
		var why string
		switch {
		case d.Selection == SelectedByMetadata || d.Selection == SelectedUnknown:
			why = "the stream metadata x-corsproc-policy selects the policy"
		case q.match.routes && s.byRoute[r.Route] != q:
			why = fmt.Sprintf("it is selected by route only, and the request's route is %q", r.Route)
		case q.match.given() && !q.match.holds(host, path):
			why = fmt.Sprintf("its match does not hold for host %q and path %q", host, path)
		case p != nil && d.Selection == SelectedByRoute:
			why = fmt.Sprintf("route %q selects policy %q first", r.Route, p.name)
		case p != nil && q.match.given():
			why = fmt.Sprintf("policy %q comes first in the file and its match holds too", p.name)
		case s.def != q:
			why = "no match selects it and it is not the default_policy"
		default:
			why = fmt.Sprintf("policy %q is selected before the default_policy", p.name)
		}
		hints = append(hints, fmt.Sprintf("policy %q (%s) would allow this request, but it was not selected: %s", q.name, q.file, why))
	}
	return hints
}

func (s *Set) why(r *Request, d *Decision, p *compiledPolicy) string {
	switch d.Selection {
	case SelectedByMetadata:
		return fmt.Sprintf("the stream metadata x-corsproc-policy names %q", r.PolicyName)
	case SelectedByRoute:
		return fmt.Sprintf("route %q is in policies[%d].match.routes of %s", r.Route, p.index, p.file)
	case SelectedByMatch:
		return fmt.Sprintf("its match holds for host %q and path %q, and no earlier policy's does", requestHost(r.Host), requestPath(r.Path))
	case SelectedByDefault:
		return "no policy's match selects the request; it is the default_policy"
	case SelectedUnknown:
		const what = ": an unknown policy governs and allows nothing (preflights get 403 from corsproc, other responses lose the upstream's CORS headers and get Vary: Origin)"
		if r.AmbiguousPolicyName {
			return "the stream metadata x-corsproc-policy has several values" + what
		}
		return fmt.Sprintf("the stream metadata x-corsproc-policy names %q, which the policy set does not define", r.PolicyName) + what
	}
	return "no policy's match selects the request and there is no default_policy"
}

func response(d *Decision) string {
	switch {
	case d.RespondImmediately():
		return fmt.Sprintf("corsproc answers %d itself; the upstream never sees the request", d.Status)
	case d.Shadow:
		return "shadow mode: the request and the upstream's response pass unchanged; the outcome is only recorded"
	case d.Outcome == OutcomePreflightForwarded:
		return "the preflight goes to the upstream (unmatched_preflight: forward); corsproc removes every CORS header from its response, so the browser's preflight fails whatever the upstream answers"
	case d.Selection == SelectedUnknown:
		return "the upstream's response, with its CORS headers removed: the unknown policy allows nothing"
	case d.NeedsResponse():
		return "the upstream's response, with corsproc's CORS headers (upstream CORS headers removed)"
	}
	return "the upstream's response, unchanged: corsproc does not govern this request"
}

// browserView fills in what the browser makes of the response, and the fix.
func (s *Set) browserView(er *ExplainRequest, d *Decision, p *compiledPolicy, e *Explanation, failedHeader string) {
	r := &er.Request
	if r.kind() == kindNonCORS {
		return // not a CORS request: the browser applies no CORS check
	}
	url := er.URL
	switch {
	case url != "":
	case r.Host != "":
		url = "https://" + requestHost(r.Host) + requestPath(r.Path)
	default:
		// No host given (explain without --url or --host): say so rather
		// than print a URL without one.
		url = "<the API's origin>" + requestPath(r.Path)
	}
	preflight := e.Kind == "preflight"
	blocked := func(msg, fix string) {
		prefix := ""
		if preflight {
			prefix = "Response to preflight request doesn't pass access control check: "
		}
		e.BrowserError = fmt.Sprintf("Access to fetch at '%s' from origin '%s' has been blocked by CORS policy: %s%s", url, r.Origin, prefix, msg)
		e.Fix = fix
	}
	const noACAO = "No 'Access-Control-Allow-Origin' header is present on the requested resource."
	if p == nil {
		if d.Selection == SelectedUnknown {
			blocked(noACAO,
				"define the policy the Envoy route names in x-corsproc-policy, or correct the route's grpc_initial_metadata")
			return
		}
		blocked(noACAO+" (unless the upstream sends CORS headers itself)",
			"add a policy whose match selects this route, host or path, or set default_policy")
		return
	}
	policyRef := fmt.Sprintf("policy %q (%s)", p.name, p.file)
	if d.Shadow {
		e.Fix = "shadow mode changes nothing; set mode: enforce to apply the policy"
	}
	switch d.Reason {
	case ReasonOriginNotAllowed:
		if !d.Shadow {
			blocked(noACAO, originFix(p, r.Origin, policyRef))
		}
		e.Hints = append(e.Hints, nearMisses(p, r.Origin)...)
		return
	case ReasonOriginMalformed:
		if !d.Shadow {
			blocked(noACAO, "none in the policy: the Origin header is not what a browser sends; look at what sets it")
		}
		return
	case ReasonMethodNotAllowed:
		upper := strings.ToUpper(r.ACRM)
		switch {
		case d.Shadow:
		case r.DuplicateACRM || !isToken(r.ACRM):
			blocked(noACAO, "none in the policy: the preflight's Access-Control-Request-Method is not what a browser sends")
		case IsForbiddenMethod(upper):
			blocked(noACAO, fmt.Sprintf("none: browsers never send %s, and corsproc never allows a method a policy may not list", upper))
		case r.ACRM != upper && slices.Contains(normalizedMethods, upper):
			blocked(noACAO, fmt.Sprintf("none in the policy: browsers send %s in upper case, so this request does not come from a browser", upper))
		default:
			blocked(noACAO, fmt.Sprintf("add %q to allow_methods of %s", r.ACRM, policyRef))
		}
		return
	case ReasonHeaderNotAllowed:
		switch {
		case d.Shadow:
		case refusedRequestHeader(failedHeader):
			blocked(noACAO, fmt.Sprintf("none: scripts cannot set %q, and corsproc never allows a header a policy may not list", strings.ToLower(failedHeader)))
		default:
			blocked(noACAO, fmt.Sprintf("add %q to allow_headers of %s", strings.ToLower(failedHeader), policyRef))
		}
		return
	case ReasonHeadersMalformed:
		if !d.Shadow {
			blocked(noACAO, "none in the policy: the page asks for a header name that is not valid, or too many headers")
		}
		return
	case ReasonPrivateNetworkNotAllowed:
		if !d.Shadow {
			blocked(noACAO, fmt.Sprintf("set allow_private_network: true in %s", policyRef))
		}
		return
	}
	if !er.Credentials || d.Shadow {
		return
	}
	// The server does not know whether the page sends cookies; the browser
	// checks credentialed requests further.
	if acao, _ := d.Header(HeaderACAO); acao == "*" {
		e.Checks = append(e.Checks, Check{Name: "credentials", Result: CheckFail, Detail: "the page sends credentials, and the answer is Access-Control-Allow-Origin: *"})
		blocked("The value of the 'Access-Control-Allow-Origin' header in the response must not be the wildcard '*' when the request's credentials mode is 'include'.",
			fmt.Sprintf("in %s, replace allow_all_origins with the origins in allowed_origins and set allow_credentials: true", policyRef))
		return
	}
	if !p.creds {
		e.Checks = append(e.Checks, Check{Name: "credentials", Result: CheckFail, Detail: "the page sends credentials, and allow_credentials is false"})
		blocked("The value of the 'Access-Control-Allow-Credentials' header in the response is '' which must be 'true' when the request's credentials mode is 'include'.",
			fmt.Sprintf("set allow_credentials: true in %s", policyRef))
		return
	}
	e.Checks = append(e.Checks, Check{Name: "credentials", Result: CheckPass, Detail: "the page sends credentials, and allow_credentials is true"})
}

// maxRefusalValue bounds each request value Refusal quotes: the values are
// the client's.
const maxRefusalValue = 128

// Refusal says in one line what d refused of r and which policy decided,
// for a log line or corsproc's X-Corsproc-Reason header
// (docs/operations.md, "Refusals that explain themselves"), e.g.
//
//	request header "x-api-key" is not in allow_headers of policy "web"
//
// It is "" when d refuses nothing. The request's values are quoted with
// Go's escapes (no control character or non-ASCII byte comes out as is)
// and cut at 128 bytes, so the text is safe in a header value and a log.
func (d *Decision) Refusal(r *Request) string {
	if d.Reason == ReasonNone {
		return ""
	}
	of := fmt.Sprintf("policy %q", d.Policy)
	switch d.Reason {
	case ReasonOriginNotAllowed:
		return fmt.Sprintf("origin %s is not allowed by %s", quoteValue(r.Origin), of)
	case ReasonOriginMalformed:
		switch {
		case r.Truncated:
			return fmt.Sprintf("the request's headers are past corsproc's bounds, so its CORS is refused (%s)", of)
		case r.DuplicateOrigin:
			return fmt.Sprintf("the request has more than one Origin header (%s)", of)
		}
		return fmt.Sprintf("origin %s is not an origin a browser sends (%s)", quoteValue(r.Origin), of)
	case ReasonMethodNotAllowed:
		if r.DuplicateACRM {
			return fmt.Sprintf("the preflight has more than one Access-Control-Request-Method header (%s)", of)
		}
		return fmt.Sprintf("method %s is not in allow_methods of %s", quoteValue(d.Refused), of)
	case ReasonHeaderNotAllowed:
		return fmt.Sprintf("request header %s is not in allow_headers of %s", quoteValue(strings.ToLower(d.Refused)), of)
	case ReasonHeadersMalformed:
		if d.Refused != "" {
			return fmt.Sprintf("Access-Control-Request-Headers names %s, which is not a header name (%s)", quoteValue(d.Refused), of)
		}
		return fmt.Sprintf("Access-Control-Request-Headers is longer than %d bytes or %d names (%s)", MaxACRHBytes, MaxACRHNames, of)
	case ReasonPrivateNetworkNotAllowed:
		return fmt.Sprintf("private network access is not allowed: allow_private_network is false in %s", of)
	case ReasonUnknownPolicy:
		return "the route names a policy in x-corsproc-policy that the policy set does not define"
	}
	return d.Reason.String()
}

// quoteValue quotes a request value for Refusal: ASCII only, escaped, at
// most maxRefusalValue bytes of it.
func quoteValue(s string) string {
	if len(s) > maxRefusalValue {
		return strconv.QuoteToASCII(s[:maxRefusalValue]) + "..."
	}
	return strconv.QuoteToASCII(s)
}
