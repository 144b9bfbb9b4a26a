// Package active holds the policy set corsproc enforces: every new set
// passes through Set.Swap on its way to the processor, which records when it
// became active and its generation, for the admin server's /debug/policy
// and the metrics (docs/operations.md, "Metrics").
package active

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

// Loaded is a policy set as it became active.
type Loaded struct {
	Set *policy.Set
	// LoadedAt is when the set was loaded and swapped in.
	LoadedAt time.Time
	// Generation counts the sets that have been active: 1 for the set
	// serve started with, one more per successful reload.
	Generation uint64
}

// Set is the policy set serve enforces. Every set goes through Swap, which
// hands it to the processor and records when it became active, for
// /debug/policy and the metrics.
type Set struct {
	proc *processor.Server
	now  func() time.Time

	mu     sync.Mutex // serialises swaps
	cur    atomic.Pointer[Loaded]
	reload atomic.Pointer[Reload]

	generation prometheus.Gauge
	loaded     prometheus.Gauge
	policies   prometheus.Gauge
}

// New records set, the set proc was created with, as the first active set,
// loaded at loadedAt. The metrics go to reg unless it is nil.
func New(proc *processor.Server, set *policy.Set, loadedAt time.Time, reg prometheus.Registerer) *Set {
	a := &Set{
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
	a.record(&Loaded{Set: set, LoadedAt: loadedAt, Generation: 1})
	return a
}

// Swap makes set the active set: the processor enforces it from its next
// stream on.
func (a *Set) Swap(set *policy.Set) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lp := &Loaded{Set: set, LoadedAt: a.now(), Generation: a.cur.Load().Generation + 1}
	a.proc.Swap(set)
	a.record(lp)
}

func (a *Set) record(lp *Loaded) {
	a.cur.Store(lp)
	a.generation.Set(float64(lp.Generation))
	a.loaded.Set(float64(lp.LoadedAt.UnixNano()) / 1e9)
	n := 0
	if lp.Set != nil {
		n = len(lp.Set.Names())
	}
	a.policies.Set(float64(n))
}

// Current returns the active set as it was loaded.
func (a *Set) Current() *Loaded { return a.cur.Load() }

// Reload is the result of a reload of the policy path
// (docs/operations.md, "Policy sources and reload").
type Reload struct {
	// At is when the reload ended.
	At time.Time
	// Result is success (a new set is active), unchanged (the files are
	// the active set's) or failure (the active set keeps serving).
	Result string
	// Digest is the digest of the files the reload read; "" when it could
	// not read them.
	Digest string
	// Problems are why a failed reload refused the files: each error and
	// warning of the new set, or the error reading them.
	Problems []string
}

// RecordReload records r as the last reload, for /debug/policy.
func (a *Set) RecordReload(r Reload) { a.reload.Store(&r) }

// LastReload returns the last reload RecordReload recorded, or nil when
// there was none (no policy path, or none has run yet).
func (a *Set) LastReload() *Reload { return a.reload.Load() }
