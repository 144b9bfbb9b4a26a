package policy

// Outcome is what corsproc does with a request. A governed request gets
// one of the outcomes after OutcomeUngoverned; so does a request whose
// x-corsproc-policy stream metadata names a policy the set does not hold
// (Selection SelectedUnknown, Reason ReasonUnknownPolicy): such a request
// is governed and refused, its preflight OutcomePreflightRejected, its
// actual request OutcomeDenied, a request without Origin OutcomeNotCORS
// (docs/policy.md, "Which policy governs a request").
type Outcome uint8

const (
	// OutcomeUngoverned: no policy governs the request; corsproc leaves it
	// and its response alone.
	OutcomeUngoverned Outcome = iota
	// OutcomeNotCORS: a governed request without an Origin. Its response
	// gets Vary: Origin (or ACAO: * when all origins are allowed), and the
	// upstream's CORS headers are removed.
	OutcomeNotCORS
	// OutcomePreflightAllowed: answered by corsproc with the preflight
	// headers and the policy's preflight status.
	OutcomePreflightAllowed
	// OutcomePreflightRejected: answered by corsproc with a 403 and no CORS
	// headers.
	OutcomePreflightRejected
	// OutcomePreflightForwarded: a failed preflight passed to the upstream
	// (unmatched_preflight: forward), whose response gets every CORS
	// header removed and Vary: Origin appended: the upstream can answer
	// the OPTIONS request, never allow what corsproc refused.
	OutcomePreflightForwarded
	// OutcomeAllowed: an actual CORS request from an allowed origin; its
	// response gets the CORS headers.
	OutcomeAllowed
	// OutcomeDenied: an actual CORS request from an origin the policy does
	// not allow (or under an unknown policy); its response gets only
	// Vary: Origin, the upstream's CORS headers removed.
	OutcomeDenied
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	OutcomeUngoverned:         "ungoverned",
	OutcomeNotCORS:            "non_cors",
	OutcomePreflightAllowed:   "preflight_allowed",
	OutcomePreflightRejected:  "preflight_rejected",
	OutcomePreflightForwarded: "preflight_forwarded",
	OutcomeAllowed:            "allowed",
	OutcomeDenied:             "disallowed_origin",
}

// String returns the outcome's name as used in metrics and logs.
func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return "invalid"
}

// Reason says why a request was refused; ReasonNone when it was not.
// ReasonUnknownPolicy is set on every decision under an unknown policy,
// requests without Origin included: nothing is granted to them.
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonOriginNotAllowed: the origin is well formed but not allowed.
	ReasonOriginNotAllowed
	// ReasonOriginMalformed: the Origin is not a serialized origin (upper
	// case, path, trailing slash, default port, several values...).
	ReasonOriginMalformed
	// ReasonMethodNotAllowed: the preflight asked for a method not allowed.
	ReasonMethodNotAllowed
	// ReasonHeaderNotAllowed: the preflight asked for a header not allowed.
	ReasonHeaderNotAllowed
	// ReasonHeadersMalformed: Access-Control-Request-Headers holds a name
	// that is not a token, or exceeds the parsing bounds.
	ReasonHeadersMalformed
	// ReasonPrivateNetworkNotAllowed: the preflight asked for private network
	// access and the policy does not allow it.
	ReasonPrivateNetworkNotAllowed
	// ReasonUnknownPolicy: the x-corsproc-policy stream metadata names a
	// policy the set does not hold, or holds several values. corsproc
	// governs the request and grants nothing.
	ReasonUnknownPolicy
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone:                     "none",
	ReasonOriginNotAllowed:         "origin_not_allowed",
	ReasonOriginMalformed:          "origin_malformed",
	ReasonMethodNotAllowed:         "method_not_allowed",
	ReasonHeaderNotAllowed:         "header_not_allowed",
	ReasonHeadersMalformed:         "headers_malformed",
	ReasonPrivateNetworkNotAllowed: "private_network_not_allowed",
	ReasonUnknownPolicy:            "unknown_policy",
}

// String returns the reason's name as used in metrics and logs.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "invalid"
}

// Reasons lists every reason, for metrics that pre-declare label values.
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}

// Selection says how the governing policy was chosen (docs/semantics.md,
// §2).
type Selection uint8

const (
	// SelectedNone: no policy governs the request.
	SelectedNone Selection = iota
	// SelectedByMetadata: the x-corsproc-policy stream metadata named it.
	SelectedByMetadata
	// SelectedByRoute: the route name is in its match.routes.
	SelectedByRoute
	// SelectedByMatch: its match held on host and path.
	SelectedByMatch
	// SelectedByDefault: it is the default_policy.
	SelectedByDefault
	// SelectedUnknown: the x-corsproc-policy stream metadata names a policy
	// the set does not hold (a typo in the Envoy route, or a reload that
	// renamed the policy), or has several values. The request is governed
	// and refused; Decision.Policy is "" (the name is Envoy configuration,
	// kept out of metric labels).
	SelectedUnknown
	numSelections
)

var selectionNames = [numSelections]string{
	SelectedNone:       "none",
	SelectedByMetadata: "metadata",
	SelectedByRoute:    "route",
	SelectedByMatch:    "match",
	SelectedByDefault:  "default",
	SelectedUnknown:    "unknown",
}

// String returns the selection's name.
func (s Selection) String() string {
	if s < numSelections {
		return selectionNames[s]
	}
	return "invalid"
}

// Header is one response header corsproc sets. Append adds a value to the
// header (Vary); otherwise the value replaces every existing one.
type Header struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Append bool   `json:"append,omitempty"`
}

// maxHeaders bounds the headers of one decision: a preflight sets at most
// ACAO, ACAC, ACAM, ACAH, ACMA, ACAPN and Vary.
const maxHeaders = 8

// Decision is the plain-data result of deciding a request. The processor
// renders it as Envoy messages, explain prints it, tests compare it.
//
// A Decision is filled in place by Set.Decide so that deciding allocates
// nothing; copy it by value freely.
type Decision struct {
	// Policy is the governing policy's name; "" when none governs, and
	// when the metadata names an unknown policy (Selection
	// SelectedUnknown; the name is in Request.PolicyName, never here,
	// since metric labels are taken from this field).
	Policy string
	// Selection says how the policy was chosen.
	Selection Selection
	// Outcome is what happens to the request (as if enforced, in shadow
	// mode).
	Outcome Outcome
	// Reason says why a request was refused.
	Reason Reason
	// Refused is the value of the request that was refused, when Reason
	// is about one: the method (ReasonMethodNotAllowed), the header name
	// (ReasonHeaderNotAllowed, and ReasonHeadersMalformed when one name
	// is not a token); "" otherwise (an origin refusal is about
	// Request.Origin). It is a substring of the Request's strings, which
	// it keeps alive: copy it to keep it beyond them.
	Refused string
	// Shadow is set when the policy is in shadow mode: the outcome is only
	// recorded, nothing is changed.
	Shadow bool
	// Status is the status of the immediate response to a preflight.
	Status int

	n       int
	headers [maxHeaders]Header
}

// Headers returns the headers of the immediate response (preflights) or the
// headers to add to the upstream response (everything else). The slice
// aliases d: do not keep it beyond d's lifetime.
func (d *Decision) Headers() []Header { return d.headers[:d.n] }

// Remove returns the headers to remove from the upstream response before
// Headers are added: corsproc is the one source of CORS headers on a
// governed route (docs/semantics.md, §7). The slice is shared: do not
// modify it.
func (d *Decision) Remove() []string {
	if d.NeedsResponse() {
		return managedHeaders
	}
	return nil
}

// RespondImmediately reports whether corsproc answers the request itself,
// with Status and Headers, so that the upstream never sees it
// (docs/semantics.md, §5 and §8).
func (d *Decision) RespondImmediately() bool {
	return !d.Shadow && (d.Outcome == OutcomePreflightAllowed || d.Outcome == OutcomePreflightRejected)
}

// NeedsResponse reports whether corsproc must see the upstream response to
// add its headers. When false the response phase can be skipped
// (docs/semantics.md, §7 and §8).
func (d *Decision) NeedsResponse() bool {
	if d.Shadow {
		return false
	}
	switch d.Outcome {
	case OutcomeNotCORS, OutcomeAllowed, OutcomeDenied, OutcomePreflightForwarded:
		return true
	}
	return false
}

// reset makes d the zero Decision. Only the headers in use are cleared:
// the others are zero already, so a decision costs no more than its headers.
func (d *Decision) reset() {
	// A loop, not clear: clear calls into the runtime's bulk clearing of
	// pointers, which costs more than the one or few headers a decision
	// uses.
	for i := range d.n {
		d.headers[i] = Header{}
	}
	d.Policy, d.Selection, d.Outcome, d.Reason, d.Refused = "", SelectedNone, OutcomeUngoverned, ReasonNone, ""
	d.Shadow, d.Status, d.n = false, 0, 0
}

func (d *Decision) add(name, value string, appendValue bool) {
	// Field by field: a Header literal is built on the stack and copied in
	// 16-byte moves that stall on the 8-byte stores just made to it.
	h := &d.headers[d.n]
	h.Name, h.Value, h.Append = name, value, appendValue
	d.n++
}

// Header returns the value of the named header in Headers, and whether it
// is there.
func (d *Decision) Header(name string) (string, bool) {
	for _, h := range d.Headers() {
		if h.Name == name {
			return h.Value, true
		}
	}
	return "", false
}
