package processor

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsproc/corsproc/policy"
)

// Metric names and label values. Label values come only from fixed sets and
// from the policy names of the loaded set: never an origin, never a policy
// name a request asked for.
const (
	MetricDecisions     = "corsproc_decisions_total"
	MetricStreams       = "corsproc_streams_total"
	MetricStreamErrors  = "corsproc_stream_errors_total"
	MetricUnknownPolicy = "corsproc_unknown_policy_total"

	// Values of the kind label of corsproc_stream_errors_total.
	ErrorKindUnknownMessage = "unknown_message"
	ErrorKindRecv           = "recv"
	ErrorKindSend           = "send"

	// Values of the mode label of corsproc_decisions_total.
	ModeEnforce = "enforce"
	ModeShadow  = "shadow"
)

type metrics struct {
	streams           prometheus.Counter
	errUnknownMessage prometheus.Counter
	errRecv           prometheus.Counter
	errSend           prometheus.Counter
	unknownPolicy     prometheus.Counter
	decisions         *prometheus.CounterVec

	// Curried decision counters: WithLabelValues hashes four strings and
	// allocates; the hot path looks a key up under a read lock instead.
	mu    sync.RWMutex
	cache map[decisionKey]prometheus.Counter
}

type decisionKey struct {
	policy  string
	outcome policy.Outcome
	reason  policy.Reason
	shadow  bool
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
		Help: "Requests whose x-corsproc-policy stream metadata named no policy of the active set (or several); they get no CORS headers.",
	})
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricDecisions,
		Help: "CORS decisions by policy, outcome, reason and mode (enforce, or shadow: recorded only).",
	}, []string{"policy", "outcome", "reason", "mode"})

	if reg != nil {
		streams = register(reg, streams)
		errs = register(reg, errs)
		unknown = register(reg, unknown)
		decisions = register(reg, decisions)
	}
	return &metrics{
		streams:           streams,
		errUnknownMessage: errs.WithLabelValues(ErrorKindUnknownMessage),
		errRecv:           errs.WithLabelValues(ErrorKindRecv),
		errSend:           errs.WithLabelValues(ErrorKindSend),
		unknownPolicy:     unknown,
		decisions:         decisions,
		cache:             make(map[decisionKey]prometheus.Counter),
	}
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

// decision returns the counter of d's labels.
func (m *metrics) decision(d *policy.Decision) prometheus.Counter {
	k := decisionKey{policy: d.Policy, outcome: d.Outcome, reason: d.Reason, shadow: d.Shadow}
	switch d.Outcome {
	case policy.OutcomeUnknownPolicy, policy.OutcomeUngoverned:
		// The only name here would be one the request asked for, which
		// is not a bounded label value.
		k.policy = ""
	}
	m.mu.RLock()
	c, ok := m.cache[k]
	m.mu.RUnlock()
	if ok {
		return c
	}
	c = m.decisions.WithLabelValues(k.policy, k.outcome.String(), k.reason.String(), modeLabel(k.shadow))
	m.mu.Lock()
	m.cache[k] = c
	m.mu.Unlock()
	return c
}

func modeLabel(shadow bool) string {
	if shadow {
		return ModeShadow
	}
	return ModeEnforce
}
