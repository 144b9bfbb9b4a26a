package processor

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsproc/corsproc/policy"
)

// Metric names and label values. Label values come only from fixed sets and
// from the policy names of the loaded set: never an origin, never a policy
// name a request asked for.
const (
	MetricRequests      = "corsproc_requests_total"
	MetricRejections    = "corsproc_rejections_total"
	MetricProcessing    = "corsproc_processing_seconds"
	MetricStreams       = "corsproc_streams_total"
	MetricStreamErrors  = "corsproc_stream_errors_total"
	MetricUnknownPolicy = "corsproc_unknown_policy_total"
	MetricResponseMode  = "corsproc_response_mode_streams_total"

	// Values of the mode label of corsproc_response_mode_streams_total: the
	// value of the stream's x-corsproc-response-headers metadata, or
	// unknown for any other value (taken as response_phase).
	ResponseModeResponsePhase   = "response_phase"
	ResponseModeDynamicMetadata = "dynamic_metadata"
	ResponseModeUnknown         = "unknown"

	// Values of the kind label of corsproc_stream_errors_total.
	ErrorKindUnknownMessage = "unknown_message"
	ErrorKindRecv           = "recv"
	ErrorKindSend           = "send"

	// Values of the mode label of corsproc_rejections_total: enforce, or
	// shadow (the refusal was only recorded).
	ModeEnforce = "enforce"
	ModeShadow  = "shadow"

	// Values of the message label of corsproc_processing_seconds.
	MessageRequestHeaders  = "request_headers"
	MessageResponseHeaders = "response_headers"
	MessageOther           = "other" // bodies and trailers
)

// Values of the outcome label of corsproc_requests_total.
const (
	OutcomePreflightAllowed   = "preflight_allowed"
	OutcomePreflightRejected  = "preflight_rejected"
	OutcomePreflightForwarded = "preflight_forwarded"
	OutcomeAllowed            = "allowed"
	OutcomeDisallowedOrigin   = "disallowed_origin"
	OutcomeNonCORS            = "non_cors"
	OutcomeUngoverned         = "ungoverned"
	OutcomeUnknownPolicy      = "unknown_policy"
	// A shadow-mode policy's request that enforcement would have refused
	// (preflight rejected or forwarded, origin not allowed).
	OutcomeShadowWouldReject = "shadow_would_reject"
	// Any other request of a shadow-mode policy.
	OutcomeShadowWouldAllow = "shadow_would_allow"
)

// requestOutcome indexes the outcome label values.
type requestOutcome uint8

const (
	reqPreflightAllowed requestOutcome = iota
	reqPreflightRejected
	reqPreflightForwarded
	reqAllowed
	reqDisallowedOrigin
	reqNonCORS
	reqUngoverned
	reqUnknownPolicy
	reqShadowWouldReject
	reqShadowWouldAllow
	numRequestOutcomes
)

var requestOutcomeNames = [numRequestOutcomes]string{
	reqPreflightAllowed:   OutcomePreflightAllowed,
	reqPreflightRejected:  OutcomePreflightRejected,
	reqPreflightForwarded: OutcomePreflightForwarded,
	reqAllowed:            OutcomeAllowed,
	reqDisallowedOrigin:   OutcomeDisallowedOrigin,
	reqNonCORS:            OutcomeNonCORS,
	reqUngoverned:         OutcomeUngoverned,
	reqUnknownPolicy:      OutcomeUnknownPolicy,
	reqShadowWouldReject:  OutcomeShadowWouldReject,
	reqShadowWouldAllow:   OutcomeShadowWouldAllow,
}

// RequestOutcomes returns the values of the outcome label of
// corsproc_requests_total.
func RequestOutcomes() []string { return append([]string(nil), requestOutcomeNames[:]...) }

// refuses reports whether enforcing o refuses the request: the browser gets
// no permission.
func refuses(o policy.Outcome) bool {
	switch o {
	case policy.OutcomePreflightRejected, policy.OutcomePreflightForwarded, policy.OutcomeDenied:
		return true
	}
	return false
}

// classify returns the outcome label index of d. A request under an unknown
// policy is counted as unknown_policy, whatever corsproc did with it (a 403
// to a preflight, the upstream's CORS headers removed otherwise), and its
// refusals in corsproc_rejections_total with reason unknown_policy.
func classify(d *policy.Decision) requestOutcome {
	if d.Reason == policy.ReasonUnknownPolicy {
		return reqUnknownPolicy
	}
	if d.Shadow {
		if refuses(d.Outcome) {
			return reqShadowWouldReject
		}
		return reqShadowWouldAllow
	}
	switch d.Outcome {
	case policy.OutcomePreflightAllowed:
		return reqPreflightAllowed
	case policy.OutcomePreflightRejected:
		return reqPreflightRejected
	case policy.OutcomePreflightForwarded:
		return reqPreflightForwarded
	case policy.OutcomeAllowed:
		return reqAllowed
	case policy.OutcomeDenied:
		return reqDisallowedOrigin
	case policy.OutcomeNotCORS:
		return reqNonCORS
	}
	return reqUngoverned
}

// messageKind indexes the message label values.
type messageKind uint8

const (
	msgRequestHeaders messageKind = iota
	msgResponseHeaders
	msgOther
	numMessageKinds
)

var messageKindNames = [numMessageKinds]string{
	msgRequestHeaders:  MessageRequestHeaders,
	msgResponseHeaders: MessageResponseHeaders,
	msgOther:           MessageOther,
}

// processingBuckets are the bounds of corsproc_processing_seconds: a
// message normally takes a few microseconds; Envoy's default
// message_timeout, 200ms, is the last bound, beyond which Envoy has
// answered 504 (or continued, with failure_mode_allow).
var processingBuckets = []float64{
	10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 200e-3,
}

type metrics struct {
	streams           prometheus.Counter
	errUnknownMessage prometheus.Counter
	errRecv           prometheus.Counter
	errSend           prometheus.Counter
	unknownPolicy     prometheus.Counter
	// Streams by response mode.
	modeResponsePhase, modeDynamicMetadata, modeUnknown prometheus.Counter
	requests                                            *prometheus.CounterVec
	rejections                                          *prometheus.CounterVec
	processing                                          [numMessageKinds]prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	streams := prometheus.NewCounter(prometheus.CounterOpts{
		Name: MetricStreams,
		Help: "ext_proc streams opened by Envoy (one per HTTP request per filter).",
	})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricStreamErrors,
		Help: "ext_proc streams ended with an error, by kind: unknown_message (a message with no known request type, answered INVALID_ARGUMENT), recv, send.",
	}, []string{"kind"})
	unknown := prometheus.NewCounter(prometheus.CounterOpts{
		Name: MetricUnknownPolicy,
		Help: "Requests whose x-corsproc-policy stream metadata named no policy of the active set (or several); corsproc governs them and allows nothing: preflights get 403, other responses lose the upstream's CORS headers.",
	})
	modes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricResponseMode,
		Help: "ext_proc streams by how the Envoy config declares corsproc returns response headers (x-corsproc-response-headers stream metadata): response_phase (absent, or response-phase), dynamic_metadata (single-message mode), unknown (any other value, or several; taken as response_phase).",
	}, []string{"mode"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricRequests,
		Help: "Requests decided, by governing policy (\"\" for ungoverned and unknown_policy) and outcome: preflight_allowed, preflight_rejected, preflight_forwarded, allowed, disallowed_origin, non_cors, ungoverned, unknown_policy, and for shadow-mode policies shadow_would_allow or shadow_would_reject.",
	}, []string{"policy", "outcome"})
	rejections := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricRejections,
		Help: "Requests refused (preflight rejected or forwarded, origin not allowed, unknown policy), by policy (\"\" for an unknown policy), reason and mode (enforce, or shadow: recorded only).",
	}, []string{"policy", "reason", "mode"})
	processing := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricProcessing,
		Help:    "Time corsproc spends on one ext_proc message, from its receipt until its response is handed to gRPC, by message: request_headers, response_headers, other (bodies and trailers).",
		Buckets: processingBuckets,
	}, []string{"message"})

	if reg != nil {
		streams = register(reg, streams)
		errs = register(reg, errs)
		unknown = register(reg, unknown)
		modes = register(reg, modes)
		requests = register(reg, requests)
		rejections = register(reg, rejections)
		processing = register(reg, processing)
	}
	m := &metrics{
		streams:           streams,
		errUnknownMessage: errs.WithLabelValues(ErrorKindUnknownMessage),
		errRecv:           errs.WithLabelValues(ErrorKindRecv),
		errSend:           errs.WithLabelValues(ErrorKindSend),
		unknownPolicy:     unknown,
		// Every mode's series exists from the start, at zero.
		modeResponsePhase:   modes.WithLabelValues(ResponseModeResponsePhase),
		modeDynamicMetadata: modes.WithLabelValues(ResponseModeDynamicMetadata),
		modeUnknown:         modes.WithLabelValues(ResponseModeUnknown),
		requests:            requests,
		rejections:          rejections,
	}
	for k, name := range messageKindNames {
		m.processing[k] = processing.WithLabelValues(name)
	}
	// The series of policy "", a fixed few, exist from the start at zero,
	// so that a dashboard or an alert on them, or on the whole metric,
	// works before the first request (docs/operations.md, "Metrics"). A
	// policy's own series appear with its first request.
	requests.WithLabelValues("", OutcomeUngoverned)
	requests.WithLabelValues("", OutcomeUnknownPolicy)
	rejections.WithLabelValues("", policy.ReasonUnknownPolicy.String(), ModeEnforce)
	return m
}

// register registers c, or returns the collector already registered under
// the same description (a second Server on one registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// observe records how long a message of kind k took since start.
func (m *metrics) observe(k messageKind, start time.Time) {
	m.processing[k].Observe(time.Since(start).Seconds())
}

// active is a policy set with the decision counters of its policies. The
// counters are looked up once per policy, label and set, when first used,
// so that counting a decision costs a map lookup by policy name and an
// atomic add: no label hashing, no lock, no allocation. They are created on
// first use, not when the set is loaded, so that /metrics shows the series
// that happened rather than every policy × outcome × reason.
type active struct {
	set      *policy.Set
	none     *policyCounters // policy "": ungoverned, unknown_policy
	byPolicy map[string]*policyCounters
}

// policyCounters are one policy's counters, each resolved on first use.
type policyCounters struct {
	name       string
	requests   [numRequestOutcomes]lazyCounter
	rejections [2][]lazyCounter // [shadow][policy.Reason]
}

func newPolicyCounters(name string) *policyCounters {
	pc := &policyCounters{name: name}
	n := len(policy.Reasons())
	pc.rejections[0] = make([]lazyCounter, n)
	pc.rejections[1] = make([]lazyCounter, n)
	return pc
}

// lazyCounter is a child of a CounterVec, resolved on first use.
type lazyCounter struct {
	c atomic.Pointer[prometheus.Counter]
}

// inc adds one to the counter, resolving it from vec with labels the first
// time. labels is a func so that the hot path builds no label slice.
func (l *lazyCounter) inc(vec *prometheus.CounterVec, labels func() []string) {
	if c := l.c.Load(); c != nil {
		(*c).Inc()
		return
	}
	c := vec.WithLabelValues(labels()...)
	// Concurrent first uses resolve the same child; either store will do.
	l.c.Store(&c)
	c.Inc()
}

func newActive(set *policy.Set) *active {
	a := &active{set: set, none: newPolicyCounters("")}
	if set != nil {
		names := set.Names()
		a.byPolicy = make(map[string]*policyCounters, len(names))
		for _, name := range names {
			a.byPolicy[name] = newPolicyCounters(name)
		}
	}
	return a
}

// record counts d.
func (m *metrics) record(a *active, d *policy.Decision) {
	// Ungoverned requests and unknown policies have no Policy (the name
	// an unknown policy's metadata gives is not a bounded label value).
	pc := a.none
	if d.Policy != "" {
		if p, ok := a.byPolicy[d.Policy]; ok {
			pc = p
		}
		// Otherwise (cannot happen: a decision names a policy of its
		// set) the request is counted under "" rather than under a name
		// that is not the set's.
	}
	o := classify(d)
	pc.requests[o].inc(m.requests, func() []string {
		return []string{pc.name, requestOutcomeNames[o]}
	})
	if refuses(d.Outcome) && int(d.Reason) < len(pc.rejections[0]) {
		shadow := 0
		if d.Shadow {
			shadow = 1
		}
		reason := d.Reason
		pc.rejections[shadow][reason].inc(m.rejections, func() []string {
			return []string{pc.name, reason.String(), modeLabel(shadow == 1)}
		})
	}
}

func modeLabel(shadow bool) string {
	if shadow {
		return ModeShadow
	}
	return ModeEnforce
}
