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
	"github.com/corsproc/corsproc/policy/policyfile"
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
	// Interval is how often Run compares the digest of the files with the
	// active set's, a backstop to the watch for a change whose event was
	// missed (a filesystem without inotify, a watch lost to a rename);
	// only a changed digest makes a reload. 0 disables it.
	Interval time.Duration
	// Report, when set, is called after every reload with its result, the
	// digest of the files it read ("" when they could not be read) and,
	// for a failure, why: the admin server's /debug/policy shows the last
	// one.
	Report func(result Result, digest string, err error)
}

// DefaultInterval is the Interval of corsproc serve's --reload-interval.
const DefaultInterval = 30 * time.Second

// watchDisabled turns the watch off, for tests of the Interval backstop.
var watchDisabled bool

// Reloader reloads the policy set at a path and hands each new valid set to
// a swap function.
type Reloader struct {
	path string
	swap func(*policy.Set)
	log  *slog.Logger

	interval time.Duration
	report   func(Result, string, error)

	mu     sync.Mutex // one reload at a time
	digest string     // of the active set
	names  []string   // of the active set
	// failed is the digest (or the error) of files a reload refused, so
	// that the Interval check does not refuse and log them again.
	failed string

	watched map[string]bool // directories the watch was given

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
		path:     path,
		swap:     swap,
		log:      log,
		interval: opts.Interval,
		report:   opts.Report,
		digest:   current.Digest(),
		names:    current.Names(),
		watched:  map[string]bool{},
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricReloads,
			Help: "Policy reloads by result: success (a new set is active), unchanged (the files did not change), failure (the last good set keeps serving).",
		}, []string{"result"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: MetricReloadHealthy,
			Help: "1 when the last policy reload succeeded or found the active set's files, 0 when it failed and an older set is serving.",
		}),
	}
	for _, result := range []Result{Swapped, Unchanged, Failed} {
		r.reloads.WithLabelValues(result.String())
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

// String returns the result as corsproc_policy_reloads_total's result
// label spells it: success, unchanged or failure.
func (r Result) String() string {
	switch r {
	case Swapped:
		return "success"
	case Unchanged:
		return "unchanged"
	}
	return "failure"
}

// Reload loads and validates the whole set at the path and swaps it in, or
// keeps the active set and returns why. Files whose digest is the active
// set's are not decoded again. Reloads are serialised.
func (r *Reloader) Reload() (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	set, digest, err := policyfile.LoadChanged(r.path, r.digest)
	if err != nil {
		r.failed = failKey(digest, err)
		r.reloads.WithLabelValues(Failed.String()).Inc()
		r.healthy.Set(0)
		r.logFailure(err)
		r.reported(Failed, digest, err)
		return Failed, err
	}
	if set == nil {
		r.reported(Unchanged, digest, nil)
		return r.unchanged(), nil
	}
	defer r.reported(Swapped, set.Digest(), nil)
	r.swap(set)
	r.failed = ""
	r.digest = set.Digest()
	r.reloads.WithLabelValues(Swapped.String()).Inc()
	r.healthy.Set(1)
	r.log.Info("policy reloaded", "policy", set.Source(), "policies", len(set.Names()),
		"digest", shortDigest(set.Digest()), "took", time.Since(start).Round(time.Microsecond))
	for _, w := range set.Warnings() {
		r.log.LogAttrs(context.Background(), slog.LevelWarn, "policy warning", w.LogAttrs()...)
	}
	// A stream whose x-corsproc-policy metadata names one of these is now
	// refused as naming an unknown policy (docs/policy.md).
	var gone []string
	for _, name := range r.names {
		if !set.Has(name) {
			gone = append(gone, name)
		}
	}
	if len(gone) > 0 {
		const most = 100 // names in the log line
		r.log.Warn("policies removed or renamed by the reload: streams whose x-corsproc-policy names one are now refused",
			"policy", set.Source(), "count", len(gone), "removed", gone[:min(len(gone), most)])
	}
	r.names = set.Names()
	return Swapped, nil
}

// reported hands a reload's result to Options.Report.
func (r *Reloader) reported(result Result, digest string, err error) {
	if r.report != nil {
		r.report(result, digest, err)
	}
}

// failKey identifies what a reload read: the digest, or, when the files
// could not be read (digest ""), why.
func failKey(digest string, err error) string {
	if digest == "" && err != nil {
		return "error: " + err.Error()
	}
	return digest
}

// check reloads if the files' digest is neither the active set's nor that
// of files a reload already refused: the Interval backstop.
func (r *Reloader) check() {
	digest, err := policyfile.Digest(r.path)
	key := failKey(digest, err)
	r.mu.Lock()
	// The active set's files back after a refusal: a reload finds them
	// unchanged, and says the reloads are healthy again.
	same := key == r.failed || key == r.digest && r.failed == ""
	r.mu.Unlock()
	if !same {
		r.log.Info("policy files changed without a watch event: reloading", "policy", r.path)
		r.Reload()
	}
}

// unchanged records a reload that found the active set's files: the
// active set is what they say, so the reload is healthy.
func (r *Reloader) unchanged() Result {
	r.failed = "" // refused files, if they come back, are refused again
	r.reloads.WithLabelValues(Unchanged.String()).Inc()
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

// Run watches the path and reloads on every change, on every value
// received from hup (SIGHUP), and when the Interval check finds the files
// changed, until ctx is done.
//
// It watches directories, not files: a Kubernetes ConfigMap update swaps
// the ..data symlink and editors write via rename, and both replace files
// rather than write them in place. It watches the directory that holds the
// path (a symlink at the path swapped, as ln -sfn does, or a directory
// renamed and replaced, changes it), the directory the path resolves to
// now, and the directories the policy files resolve to through symlinks
// (a symlink's target edited in place changes only its own directory).
// After every reload and Interval check the watches are given again, by
// path, so that a directory replaced since is watched in its new place.
// When nothing can be watched (no inotify, too many watches) it logs why
// and reloads on SIGHUP and on the Interval check only.
func (r *Reloader) Run(ctx context.Context, hup <-chan os.Signal) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	var w *fsnotify.Watcher
	if !watchDisabled {
		var err error
		if w, err = fsnotify.NewWatcher(); err != nil {
			r.log.Error("cannot watch the policy path; reload it with SIGHUP", "policy", r.path, "error", err.Error())
		} else {
			defer w.Close()
			events, errs = w.Events, w.Errors
			if err := r.rewatch(w); err != nil {
				r.log.Error("cannot watch the policy path; reload it with SIGHUP", "policy", r.path, "error", err.Error())
			}
		}
	}
	// What changed between the caller's load and the watch is seen now;
	// unchanged files cost reading and hashing them.
	r.Reload()

	var tick <-chan time.Time
	if r.interval > 0 {
		t := time.NewTicker(r.interval)
		defer t.Stop()
		tick = t.C
	}
	rewatch := func() {
		if w != nil {
			r.rewatch(w)
		}
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
			rewatch()
		case ev, ok := <-events:
			if !ok {
				return
			}
			if !r.relevant(ev) {
				continue
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
			rewatch()
		case <-tick:
			r.check()
			rewatch()
		}
	}
}

// rewatch gives w the directories to watch now (see Run), by path, and
// takes away those no longer needed. It fails only when none can be
// watched.
func (r *Reloader) rewatch(w *fsnotify.Watcher) error {
	want := watchDirs(r.path)
	var firstErr error
	added := 0
	for _, dir := range want {
		// Adding a watched path again is cheap, and watches the
		// directory now at that path if it was replaced.
		if err := w.Add(dir); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		added++
		if !r.watched[dir] {
			r.log.Debug("watching policy", "dir", dir)
		}
	}
	now := map[string]bool{}
	for _, dir := range want {
		now[dir] = true
	}
	for dir := range r.watched {
		if !now[dir] {
			w.Remove(dir) // may be gone already
		}
	}
	r.watched = now
	if added == 0 {
		return firstErr
	}
	return nil
}

// watchDirs returns the directories to watch for the policy path: the one
// holding it, the one it resolves to if it is a directory, and those its
// files resolve to through symlinks.
func watchDirs(path string) []string {
	var dirs []string
	seen := map[string]bool{}
	add := func(dir string) {
		if !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	path = filepath.Clean(path)
	add(filepath.Dir(path))
	files := []string{path}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		add(path)
		files = policyNames(path)
	}
	for _, f := range files {
		if real, err := filepath.EvalSymlinks(f); err == nil {
			add(filepath.Dir(real))
		}
	}
	return dirs
}

// policyNames returns the paths of the policy files of dir, as a load lists
// them (policyfile.FileNames). Past the load's caps it returns those it read:
// the load fails anyway, and the directory itself is watched.
func policyNames(dir string) []string {
	names, _ := policyfile.FileNames(dir)
	return names
}

// relevant reports whether an event concerns the policy. The directory
// holding the path is watched for the path itself only (a symlink swapped,
// a directory replaced) when the path is a directory: its other entries'
// events (/etc for --policy /etc/corsproc) are not the policy's, unless the
// directory holds policy files too (it is watched for its contents).
func (r *Reloader) relevant(ev fsnotify.Event) bool {
	path := filepath.Clean(r.path)
	parent := filepath.Dir(path)
	if ev.Name == path || filepath.Dir(ev.Name) != parent {
		return true
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		return true // a file's directory: a ConfigMap's ..data swap is there
	}
	if real, err := filepath.EvalSymlinks(path); err == nil && real == parent {
		return true
	}
	for _, f := range policyNames(path) {
		if real, err := filepath.EvalSymlinks(f); err == nil && filepath.Dir(real) == parent {
			return true
		}
	}
	return false
}
