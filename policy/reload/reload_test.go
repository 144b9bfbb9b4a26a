package reload_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsproc/corsproc/internal/testutil"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/policy/reload"
)

// policyYAML returns a valid policy file whose one policy exposes header.
func policyYAML(expose string) string {
	return "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com]\n    expose_headers: [" + expose + "]\n"
}

// exposed returns what the set answers an allowed actual request with.
func exposed(s *policy.Set) string {
	var d policy.Decision
	s.Decide(&policy.Request{Method: "GET", Origin: "https://app.example.com"}, &d)
	v, _ := d.Header(policy.HeaderACEH)
	return v
}

// harness runs a Reloader on path and records the sets it swaps in.
type harness struct {
	t       *testing.T
	reg     *prometheus.Registry
	r       *reload.Reloader
	active  atomic.Pointer[policy.Set]
	hup     chan os.Signal
	swapped atomic.Int64
	logs    testutil.SyncBuffer
}

func start(t *testing.T, path string) *harness {
	t.Helper()
	set, err := policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	h := run(t, path, set)
	// Run reloads once its watch is on (finding the files unchanged): from
	// then on a change is seen.
	h.eventually("the watch is on", func() bool { return h.count("unchanged") > 0 })
	return h
}

// run runs a Reloader on path whose active set is set, until the test ends.
func run(t *testing.T, path string, set *policy.Set) *harness {
	return runEvery(t, path, set, 0)
}

// runEvery is run with the Interval check every interval (0: none).
func runEvery(t *testing.T, path string, set *policy.Set, interval time.Duration) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry(), hup: make(chan os.Signal, 1)}
	h.active.Store(set)
	log := slog.New(slog.NewTextHandler(&h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.r = reload.New(path, set, func(s *policy.Set) { h.active.Store(s); h.swapped.Add(1) },
		reload.Options{Registerer: h.reg, Logger: log, Interval: interval})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.r.Run(ctx, h.hup); close(done) }()
	t.Cleanup(func() {
		cancel()
		// Not for ever: a reload blocked in open (a named pipe) never
		// returns, and the test should fail, not hang.
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended: a reload is blocked")
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reloader log:\n%s", h.logs.String())
		}
	})
	return h
}

// count returns the reloads counted with result.
func (h *harness) count(result string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != reload.MetricReloads {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// eventually waits for cond with a deadline; no sleep synchronises the
// test, the condition does.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	testutil.WriteAtomic(t, path, []byte(content))
}

// TestChangeBeforeRun: a change made between the caller's load and the
// start of the watch is not missed.
func TestChangeBeforeRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeAtomic(t, path, policyYAML("x-old"))
	set, err := policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, path, policyYAML("x-new"))
	h := run(t, path, set)
	h.eventually("the new policy is active", func() bool { return exposed(h.active.Load()) == "x-new" })
}

// TestUnwatchableReloadsOnSIGHUP: when the path cannot be watched, the
// reloader says so and SIGHUP still reloads.
func TestUnwatchableReloadsOnSIGHUP(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "policies")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.yaml")
	writeAtomic(t, path, policyYAML("x-old"))
	set, err := policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing to watch: the directory is gone when Run starts.
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	h := run(t, path, set)
	h.eventually("the reloader reports the missing watch", func() bool {
		return strings.Contains(h.logs.String(), "cannot watch the policy path")
	})
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, path, policyYAML("x-new"))
	h.hup <- syscall.SIGHUP
	h.eventually("SIGHUP reloads the new policy", func() bool { return exposed(h.active.Load()) == "x-new" })
}

// TestRenameWrite covers editors that write a new file and rename it over
// the old one.
func TestRenameWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeAtomic(t, path, policyYAML("x-old"))
	h := start(t, path)
	writeAtomic(t, path, policyYAML("x-new"))
	h.eventually("the new policy is active", func() bool { return exposed(h.active.Load()) == "x-new" })
}

// TestInPlaceWrite covers a file written in place.
func TestInPlaceWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeAtomic(t, path, policyYAML("x-old"))
	h := start(t, path)
	if err := os.WriteFile(path, []byte(policyYAML("x-new")), 0o644); err != nil {
		t.Fatal(err)
	}
	h.eventually("the new policy is active", func() bool { return exposed(h.active.Load()) == "x-new" })
}

// configMap lays out a directory as kubelet does for a ConfigMap volume and
// returns a function that publishes new contents the way kubelet does: a new
// timestamped directory, a ..data_tmp symlink to it, renamed over ..data.
func configMap(t *testing.T, dir string, files map[string]string) func(map[string]string) {
	t.Helper()
	n := 0
	publish := func(files map[string]string) {
		n++
		ts := filepath.Join(dir, "..2026_11_21_00_00_0"+string(rune('0'+n)))
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(ts, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		for name := range files {
			link := filepath.Join(dir, name)
			if _, err := os.Lstat(link); err != nil {
				if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	publish(files)
	return publish
}

// TestConfigMapSymlinkSwap covers a Kubernetes ConfigMap update, with
// --policy naming the mounted directory and the file inside it.
func TestConfigMapSymlinkSwap(t *testing.T) {
	for _, target := range []string{"dir", "file"} {
		t.Run(target, func(t *testing.T) {
			dir := t.TempDir()
			publish := configMap(t, dir, map[string]string{"policy.yaml": policyYAML("x-v1")})
			path := dir
			if target == "file" {
				path = filepath.Join(dir, "policy.yaml")
			}
			h := start(t, path)
			publish(map[string]string{"policy.yaml": policyYAML("x-v2")})
			h.eventually("version 2 is active", func() bool { return exposed(h.active.Load()) == "x-v2" })
			publish(map[string]string{"policy.yaml": policyYAML("x-v3")})
			h.eventually("version 3 is active", func() bool { return exposed(h.active.Load()) == "x-v3" })
		})
	}
}

// TestInvalidFileKeptOut checks that a bad file never replaces the last good
// set: it is counted and the good set keeps serving; a later good file is
// taken.
func TestInvalidFileKeptOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeAtomic(t, path, policyYAML("x-good"))
	h := start(t, path)
	before := h.swapped.Load()
	writeAtomic(t, path, strings.Replace(policyYAML("x-bad"), "https://app.example.com", "https://app.example.com/", 1))
	h.eventually("the failure is counted", func() bool { return h.count("failure") > 0 })
	if got := exposed(h.active.Load()); got != "x-good" || h.swapped.Load() != before {
		t.Fatalf("a bad file changed the active set: %q", got)
	}
	if v := gauge(t, h.reg, reload.MetricReloadHealthy); v != 0 {
		t.Errorf("%s = %v after a failed reload, want 0", reload.MetricReloadHealthy, v)
	}
	// Each problem is logged with the fields of the startup warnings.
	want := `level=ERROR msg="policy reload refused" file=` + path + ` line=4 column=23 path=policies[0].allowed_origins[0] problem=`
	if logs := h.logs.String(); !strings.Contains(logs, want) || !strings.Contains(logs, " fix=") {
		t.Errorf("the refused reload's log lacks %q and a fix:\n%s", want, logs)
	}
	writeAtomic(t, path, policyYAML("x-fixed"))
	h.eventually("the fixed policy is active", func() bool { return exposed(h.active.Load()) == "x-fixed" })
	if v := gauge(t, h.reg, reload.MetricReloadHealthy); v != 1 {
		t.Errorf("%s = %v after a good reload, want 1", reload.MetricReloadHealthy, v)
	}
}

// TestRevertAfterFailure: files put back as the active set's after a
// failed reload are a healthy reload again, found unchanged.
func TestRevertAfterFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeAtomic(t, path, policyYAML("x-good"))
	set, err := policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := reload.New(path, set, func(*policy.Set) { t.Error("swapped") }, reload.Options{Registerer: reg})
	writeAtomic(t, path, "policies: [")
	if res, _ := r.Reload(); res != reload.Failed || gauge(t, reg, reload.MetricReloadHealthy) != 0 {
		t.Fatalf("Reload of a broken file = %v, healthy %v; want Failed, 0", res, gauge(t, reg, reload.MetricReloadHealthy))
	}
	writeAtomic(t, path, policyYAML("x-good"))
	if res, _ := r.Reload(); res != reload.Unchanged || gauge(t, reg, reload.MetricReloadHealthy) != 1 {
		t.Fatalf("Reload of the active set's file = %v, healthy %v; want Unchanged, 1", res, gauge(t, reg, reload.MetricReloadHealthy))
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// unwatched writes a policy exposing expose at path and returns a Reloader
// of it that is never Run, so that only the test's calls to Reload swap
// sets, and the pointer it swaps them into.
func unwatched(t *testing.T, path, expose string) (*reload.Reloader, *atomic.Pointer[policy.Set]) {
	t.Helper()
	writeAtomic(t, path, policyYAML(expose))
	set, err := policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	active := new(atomic.Pointer[policy.Set])
	active.Store(set)
	return reload.New(path, set, active.Store, reload.Options{}), active
}

// TestSIGHUP checks that a value on the hup channel reloads, even when no
// file event arrives (a file changed on a filesystem without inotify).
func TestSIGHUP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	r, active := unwatched(t, path, "x-old")
	// The watch is never started: only SIGHUP can bring the change in.
	writeAtomic(t, path, policyYAML("x-new"))
	if res, err := r.Reload(); res != reload.Swapped || err != nil {
		t.Fatalf("Reload = %v, %v", res, err)
	}
	if res, _ := r.Reload(); res != reload.Unchanged {
		t.Errorf("second Reload = %v, want Unchanged", res)
	}
	if got := exposed(active.Load()); got != "x-new" {
		t.Fatalf("active exposes %q", got)
	}

	h := start(t, path)
	h.hup <- syscall.SIGHUP
	h.eventually("SIGHUP is handled", func() bool { return strings.Contains(h.logs.String(), "SIGHUP: reloading policy") })
}

// TestConcurrentReloads swaps between two sets while many goroutines decide
// requests: every decision matches one set or the other entirely.
func TestConcurrentReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	r, active := unwatched(t, path, "x-a")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var decisions atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if got := exposed(active.Load()); got != "x-a" && got != "x-b" {
					t.Errorf("decision from neither set: %q", got)
					return
				}
				decisions.Add(1)
			}
		}()
	}
	for i := range 50 {
		writeAtomic(t, path, policyYAML([]string{"x-b", "x-a"}[i%2]))
		if res, err := r.Reload(); res != reload.Swapped || err != nil {
			t.Fatalf("reload %d: %v %v", i, res, err)
		}
	}
	cancel()
	wg.Wait()
	if decisions.Load() == 0 {
		t.Fatal("no decisions were made during the reloads")
	}
}

// TestBadReplacementsKeepServing replaces the policy file with things that
// are not a policy: each reload is refused and the last good set serves.
func TestBadReplacementsKeepServing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	r, active := unwatched(t, path, "x-good")
	for _, c := range []struct {
		name    string
		replace func()
	}{
		{"empty file", func() { writeAtomic(t, path, "") }},
		{"tabs", func() { writeAtomic(t, path, "policies:\n\t- name: web\n") }},
		{"duplicate keys", func() { writeAtomic(t, path, policyYAML("x-a")+"default_policy: web\n") }},
		{"symlink loop", func() {
			os.Remove(path)
			if err := os.Symlink(path, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"a directory", func() {
			os.Remove(path)
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"removed", func() { os.RemoveAll(path) }},
		// Past the size and count caps (docs/policy.md).
		{"aliases to a million policies", func() {
			writeAtomic(t, path, "x: &p {name: a, allowed_origins: [https://a.example]}\npolicies: ["+strings.Repeat("*p, ", 1_000_000)+"]\n")
		}},
		{"larger than MaxFileSize", func() { writeAtomic(t, path, policyYAML("x-a")+strings.Repeat("#", policyfile.MaxFileSize)) }},
	} {
		c.replace()
		if res, err := r.Reload(); res != reload.Failed || err == nil {
			t.Errorf("%s: Reload = %v, %v; want a failure", c.name, res, err)
		}
		if got := exposed(active.Load()); got != "x-good" {
			t.Fatalf("%s: the active set changed to %q", c.name, got)
		}
		os.RemoveAll(path)
	}
}

// TestParentDirEventsIgnored: for a directory --policy, the directory
// holding it is watched for the path itself only (a symlink swapped, the
// directory replaced); the other entries of that directory (/etc for
// /etc/corsproc) are not the policy's, and their events make no reload.
func TestParentDirEventsIgnored(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "corsproc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(dir, "policy.yaml"), policyYAML("x-one"))
	h := start(t, dir)
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(parent, "unrelated"+strconv.Itoa(i)+".conf"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// fsnotify delivers events in order: once this change is reloaded, the
	// unrelated events before it have been seen.
	writeAtomic(t, filepath.Join(dir, "policy.yaml"), policyYAML("x-two"))
	h.eventually("the policy change is reloaded", func() bool { return exposed(h.active.Load()) == "x-two" })
	if logs := h.logs.String(); strings.Contains(logs, "unrelated") {
		t.Errorf("events of the parent directory's other entries were taken as policy changes:\n%s", logs)
	}
	if n := h.count("unchanged"); n != 1 {
		t.Errorf("%v reloads found the files unchanged; want 1 (Run's first): unrelated events made reloads", n)
	}
}
