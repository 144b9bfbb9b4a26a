package reload_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/policy/reload"
)

// swapSymlink points link at target the way ln -sfn does: a new symlink
// renamed over the old one.
func swapSymlink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".new"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

func mkdirWith(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(dir, "policy.yaml"), content)
}

// TestDirSymlinkSwap: --policy names a directory symlink that is swapped to
// another directory (ln -sfn v2 current); the new directory's files are
// taken, and so are later edits in it.
func TestDirSymlinkSwap(t *testing.T) {
	base := t.TempDir()
	mkdirWith(t, filepath.Join(base, "v1"), policyYAML("x-v1"))
	mkdirWith(t, filepath.Join(base, "v2"), policyYAML("x-v2"))
	current := filepath.Join(base, "current")
	if err := os.Symlink("v1", current); err != nil {
		t.Fatal(err)
	}
	h := start(t, current)
	swapSymlink(t, "v2", current)
	h.eventually("v2 is active", func() bool { return exposed(h.active.Load()) == "x-v2" })
	writeAtomic(t, filepath.Join(base, "v2", "policy.yaml"), policyYAML("x-v2-edited"))
	h.eventually("the edit in v2 is active", func() bool { return exposed(h.active.Load()) == "x-v2-edited" })
}

// TestDirRenameReplace: the policy directory is renamed away and a new one
// put in its place; its files are taken, and so are later edits in it.
func TestDirRenameReplace(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "policies")
	mkdirWith(t, dir, policyYAML("x-v1"))
	h := start(t, dir)
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	mkdirWith(t, dir+".new", policyYAML("x-v2"))
	if err := os.Rename(dir+".new", dir); err != nil {
		t.Fatal(err)
	}
	h.eventually("the new directory is active", func() bool { return exposed(h.active.Load()) == "x-v2" })
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(policyYAML("x-v3")), 0o644); err != nil {
		t.Fatal(err)
	}
	h.eventually("the edit in the new directory is active", func() bool { return exposed(h.active.Load()) == "x-v3" })
}

// TestFileSymlinkTargetEdited: the policy file (or a file of the policy
// directory) is a symlink into another directory, whose target is edited
// in place.
func TestFileSymlinkTargetEdited(t *testing.T) {
	for _, via := range []string{"file", "dir"} {
		t.Run(via, func(t *testing.T) {
			base := t.TempDir()
			target := filepath.Join(base, "real", "target.yaml")
			mkdirWith(t, filepath.Dir(target), policyYAML("x-v1"))
			writeAtomic(t, target, policyYAML("x-v1"))
			conf := filepath.Join(base, "conf")
			if err := os.Mkdir(conf, 0o755); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(conf, "policy.yaml")
			if err := os.Symlink(filepath.Join("..", "real", "target.yaml"), link); err != nil {
				t.Fatal(err)
			}
			path := link
			if via == "dir" {
				path = conf
			}
			h := start(t, path)
			if err := os.WriteFile(target, []byte(policyYAML("x-v2")), 0o644); err != nil {
				t.Fatal(err)
			}
			h.eventually("the edited target is active", func() bool { return exposed(h.active.Load()) == "x-v2" })
		})
	}
}

// TestIntervalBackstop: with no watch event at all, the Interval check
// finds changed files and reloads them; files it refused are not refused
// (and logged) again at every check.
func TestIntervalBackstop(t *testing.T) {
	reload.DisableWatch(t)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeAtomic(t, path, policyYAML("x-old"))
	set, err := policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	h := runEvery(t, path, set, 20*time.Millisecond)
	writeAtomic(t, path, policyYAML("x-new"))
	h.eventually("the check reloads the new policy", func() bool { return exposed(h.active.Load()) == "x-new" })

	writeAtomic(t, path, "policies: [")
	h.eventually("the broken file is refused", func() bool { return h.count("failure") == 1 })
	// The active set's file put back: healthy again.
	writeAtomic(t, path, policyYAML("x-new"))
	h.eventually("the reloads are healthy again", func() bool { return gauge(t, h.reg, reload.MetricReloadHealthy) == 1 })
	writeAtomic(t, path, "policies: [")
	h.eventually("the broken file is refused again", func() bool { return h.count("failure") == 2 })
	// Several checks pass over the broken file: each would log a refusal.
	before := strings.Count(h.logs.String(), "policy files changed without a watch event")
	writeAtomic(t, path, policyYAML("x-fixed"))
	h.eventually("the fixed policy is active", func() bool { return exposed(h.active.Load()) == "x-fixed" })
	if n := h.count("failure"); n != 2 {
		t.Errorf("the broken file was refused %v times, want twice", n)
	}
	if after := strings.Count(h.logs.String(), "policy files changed without a watch event"); after != before+1 {
		t.Errorf("checks reloaded %d times between the broken and the fixed file, want once", after-before)
	}
}

// TestReloadLogsRemovedPolicies: a reload that removes or renames a policy
// says which names disappeared, at warn: streams naming them through
// x-corsproc-policy are refused from then on.
func TestReloadLogsRemovedPolicies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	h := start(t, writeReturning(t, path, "policies:\n  - name: web\n    allowed_origins: [https://a.example]\n  - name: api\n    allowed_origins: [https://a.example]\n  - name: admin\n    allowed_origins: [https://a.example]\n"))
	writeAtomic(t, path, "policies:\n  - name: web-v2\n    allowed_origins: [https://a.example]\n  - name: api\n    allowed_origins: [https://a.example]\n")
	h.eventually("the new set is active", func() bool { return h.active.Load().Has("web-v2") })
	want := `level=WARN msg="policies removed or renamed by the reload: streams whose x-corsproc-policy names one are now refused" policy=` + path + ` count=2 removed="[web admin]"`
	if logs := h.logs.String(); !strings.Contains(logs, want) {
		t.Errorf("the reload's log lacks\n%s\n%s", want, logs)
	}
}

func writeReturning(t *testing.T, path, content string) string {
	t.Helper()
	writeAtomic(t, path, content)
	return path
}
