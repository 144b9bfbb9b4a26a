// Package reload keeps a running corsproc's policy set in step with its
// policy file or directory: it watches the path (fsnotify), reloads on
// SIGHUP, and swaps a new set in only when the whole of it is valid.
//
// A reload builds and validates the complete new set before anything
// changes; the swap is one atomic pointer store in the processor, so
// streams already in flight finish with the set they started with. A bad
// new file keeps the last good set serving, logs every error and counts the
// failure; health is not touched.
package reload

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsproc/corsproc/policy"
)

// debounce is how long the watcher waits after a file event before it
// reloads, so that the several events of one update (an editor's write and
// rename, a ConfigMap's symlink swap) make one reload.
const debounce = 100 * time.Millisecond

// Metric names. What describes the active set itself (its generation, load
// time, size) is the caller's: it exists whether or not a Reloader runs.
const (
	MetricReloads       = "corsproc_policy_reloads_total"
	MetricReloadHealthy = "corsproc_policy_last_reload_successful"
)

// Options configure a Reloader.
type Options struct {
	// Logger receives reload results and every validation problem. nil
	// discards.
	Logger *slog.Logger
	// Registerer receives the reload metrics. nil registers nothing.
	Registerer prometheus.Registerer
}

// Reloader reloads the policy set at a path and hands each new valid set to
// a swap function.
type Reloader struct {
	path string
	swap func(*policy.Set)
	log  *slog.Logger

	mu     sync.Mutex // one reload at a time
	digest string     // of the active set

	reloads *prometheus.CounterVec
	healthy prometheus.Gauge
}

// New returns a Reloader for path whose active set is current (already
// loaded from path and swapped in by the caller).
func New(path string, current *policy.Set, swap func(*policy.Set), opts Options) *Reloader {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{
		path:   path,
		swap:   swap,
		log:    log,
		digest: current.Digest(),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricReloads,
			Help: "Policy reloads by result: success (a new set is active), unchanged (the files did not change), failure (the last good set keeps serving).",
		}, []string{"result"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricReloadHealthy,
			Help: "1 when the last policy reload succeeded or found the active set's files, 0 when it failed and an older set is serving.",
		}),
	}
	for _, result := range []string{"success", "unchanged", "failure"} {
		r.reloads.WithLabelValues(result)
	}
	r.healthy.Set(1)
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(r.reloads, r.healthy)
	}
	return r
}

// Result is the outcome of one reload.
type Result int

const (
	Swapped Result = iota
	Unchanged
	Failed
)

// Reload loads and validates the whole set at the path and swaps it in, or
// keeps the active set and returns why. Files whose digest is the active
// set's are not decoded again. Reloads are serialised.
func (r *Reloader) Reload() (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	if digest, err := policy.Digest(r.path); err == nil && digest == r.digest {
		return r.unchanged(), nil
	}
	set, err := policy.Load(r.path)
	if err != nil {
		r.reloads.WithLabelValues("failure").Inc()
		r.healthy.Set(0)
		r.logFailure(err)
		return Failed, err
	}
	if set.Digest() == r.digest {
		// Changed back between the digest and the load.
		return r.unchanged(), nil
	}
	r.swap(set)
	r.digest = set.Digest()
	r.reloads.WithLabelValues("success").Inc()
	r.healthy.Set(1)
	r.log.Info("policy reloaded", "policy", set.Source(), "policies", len(set.Names()),
		"digest", shortDigest(set.Digest()), "took", time.Since(start).Round(time.Microsecond))
	for _, w := range set.Warnings() {
		r.log.LogAttrs(context.Background(), slog.LevelWarn, "policy warning", w.LogAttrs()...)
	}
	return Swapped, nil
}

// unchanged records a reload that found the active set's files: the
// active set is what they say, so the reload is healthy.
func (r *Reloader) unchanged() Result {
	r.reloads.WithLabelValues("unchanged").Inc()
	r.healthy.Set(1)
	return Unchanged
}

func (r *Reloader) logFailure(err error) {
	var verr *policy.ValidationError
	if errors.As(err, &verr) {
		for _, d := range verr.Diagnostics {
			level := slog.LevelError
			if d.Severity == policy.SeverityWarning {
				level = slog.LevelWarn
			}
			r.log.LogAttrs(context.Background(), level, "policy reload refused", d.LogAttrs()...)
		}
	} else {
		r.log.Error("policy reload refused", "error", err.Error())
	}
	r.log.Error("policy reload failed: the last good policy set keeps serving", "policy", r.path, "digest", shortDigest(r.digest))
}

func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// Run watches the path and reloads on every change and on every value
// received from hup (SIGHUP), until ctx is done. It watches the directory
// that holds the files, not the files themselves: a Kubernetes ConfigMap
// update swaps the ..data symlink and editors write via rename, and both
// replace files rather than write them in place. When the path cannot be
// watched (no inotify, too many watches) it logs why and reloads on SIGHUP
// only.
func (r *Reloader) Run(ctx context.Context, hup <-chan os.Signal) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w, err := r.watch(); err != nil {
		r.log.Error("cannot watch the policy path; reload it with SIGHUP", "policy", r.path, "error", err.Error())
	} else {
		defer w.Close()
		events, errs = w.Events, w.Errors
		// What changed between the caller's load and the watch is seen
		// now; unchanged files cost reading and hashing them.
		r.Reload()
	}

	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-hup:
			r.log.Info("SIGHUP: reloading policy", "policy", r.path)
			r.Reload()
		case ev, ok := <-events:
			if !ok {
				return
			}
			r.log.Debug("policy path changed", "event", ev.String())
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case err, ok := <-errs:
			if !ok {
				return
			}
			r.log.Warn("policy watch error", "error", err.Error())
		case <-fire:
			fire = nil
			r.Reload()
		}
	}
}

// watch watches the directory of the path.
func (r *Reloader) watch() (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	dir := r.path
	if fi, err := os.Stat(r.path); err == nil && !fi.IsDir() {
		dir = filepath.Dir(r.path)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, err
	}
	r.log.Debug("watching policy", "dir", dir)
	return w, nil
}
