//go:build unix

package reload_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/corsproc/corsproc/policy/reload"
)

// TestFIFOInPolicyDir: a named pipe called *.yaml in the policy directory
// fails the reload (it blocked the reload goroutine in open for ever, with
// the gauge left at 1); the last good set keeps serving, and later changes
// and SIGHUP are still handled.
func TestFIFOInPolicyDir(t *testing.T) {
	dir := t.TempDir()
	writeAtomic(t, filepath.Join(dir, "policy.yaml"), policyYAML("x-good"))
	h := start(t, dir)
	fifo := filepath.Join(dir, "zz.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	h.eventually("the reload fails", func() bool { return h.count("failure") > 0 })
	if v := gauge(t, h.reg, reload.MetricReloadHealthy); v != 0 {
		t.Errorf("%s = %v, want 0", reload.MetricReloadHealthy, v)
	}
	if logs := h.logs.String(); !strings.Contains(logs, fifo) || !strings.Contains(logs, "named pipe") {
		t.Errorf("the log does not name the pipe:\n%s", logs)
	}
	if got := exposed(h.active.Load()); got != "x-good" {
		t.Fatalf("the active set changed to %q", got)
	}
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(dir, "policy.yaml"), policyYAML("x-new"))
	h.eventually("a later change is reloaded", func() bool { return exposed(h.active.Load()) == "x-new" })
	h.hup <- syscall.SIGHUP
	h.eventually("SIGHUP is handled", func() bool { return strings.Contains(h.logs.String(), "SIGHUP: reloading policy") })
}
