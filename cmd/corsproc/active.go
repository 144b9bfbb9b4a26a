package main

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/processor"
)

// Metrics of the active policy set. They live here, beside the one place
// every set passes through on its way to the processor, so that they exist
// for whatever serve enforces: a --policy path and its reloads, or the
// development policy, which has no reloader.
const (
	metricPolicyGeneration = "corsproc_policy_generation"
	metricPolicyLoaded     = "corsproc_policy_loaded_timestamp_seconds"
	metricPolicies         = "corsproc_policies"
)

// loadedPolicy is a policy set as it became active.
type loadedPolicy struct {
	set *policy.Set
	// loadedAt is when the set was loaded and swapped in.
	loadedAt time.Time
	// generation counts the sets that have been active: 1 for the set
	// serve started with, one more per successful reload.
	generation uint64
}

// activePolicy is the policy set serve enforces. Every set goes through
// swap, which hands it to the processor and records when it became active,
// for /debug/policy and the metrics.
type activePolicy struct {
	proc *processor.Server
	now  func() time.Time

	mu  sync.Mutex // serialises swaps
	cur atomic.Pointer[loadedPolicy]

	generation prometheus.Gauge
	loaded     prometheus.Gauge
	policies   prometheus.Gauge
}

// newActivePolicy records set, the set proc was created with, as the first
// active set, loaded at loadedAt. The metrics go to reg unless it is nil.
func newActivePolicy(proc *processor.Server, set *policy.Set, loadedAt time.Time, reg prometheus.Registerer) *activePolicy {
	a := &activePolicy{
		proc: proc,
		now:  time.Now,
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPolicyGeneration,
			Help: "Generation of the active policy set: 1 for the set corsproc started with, one more per successful reload.",
		}),
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPolicyLoaded,
			Help: "Unix time at which the active policy set was loaded.",
		}),
		policies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metricPolicies,
			Help: "Policies in the active set.",
		}),
	}
	if reg != nil {
		reg.MustRegister(a.generation, a.loaded, a.policies)
	}
	a.record(&loadedPolicy{set: set, loadedAt: loadedAt, generation: 1})
	return a
}

// swap makes set the active set: the processor enforces it from its next
// stream on.
func (a *activePolicy) swap(set *policy.Set) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lp := &loadedPolicy{set: set, loadedAt: a.now(), generation: a.cur.Load().generation + 1}
	a.proc.Swap(set)
	a.record(lp)
}

func (a *activePolicy) record(lp *loadedPolicy) {
	a.cur.Store(lp)
	a.generation.Set(float64(lp.generation))
	a.loaded.Set(float64(lp.loadedAt.UnixNano()) / 1e9)
	n := 0
	if lp.set != nil {
		n = len(lp.set.Names())
	}
	a.policies.Set(float64(n))
}

// current returns the active set as it was loaded.
func (a *activePolicy) current() *loadedPolicy { return a.cur.Load() }
