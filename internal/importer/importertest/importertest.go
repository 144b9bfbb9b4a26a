// Package importertest holds what the tests of the source importers share:
// the golden report of an import and its comparison.
package importertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/importer"
)

// Report renders a Result as the golden files of the source importers'
// tests hold it: the YAML, then every warning with its code.
func Report(res *importer.Result) string {
	var b strings.Builder
	b.Write(res.YAML)
	b.WriteString("---\n")
	for _, w := range res.Warnings {
		sev := "warning"
		if w.Error {
			sev = "error"
		}
		flags := string(w.Code)
		if w.Unsafe {
			flags += ",unsafe"
		}
		if w.LeftOut {
			flags += ",left_out"
		}
		b.WriteString(sev + " [" + flags + "]: " + w.String() + "\n")
	}
	return b.String()
}

// Golden compares got with the file testdata/name, or writes it when
// update is set.
func Golden(t testing.TB, name, got string, update bool) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run with -update after checking the change):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// CheckComments fails t unless every key of the policies in yaml (each
// line holding "key:" under policies:) carries a comment saying where it
// came from; "match:", whose keys each carry one, is the exception.
func CheckComments(t testing.TB, yaml []byte) {
	t.Helper()
	in := false
	for i, line := range strings.Split(string(yaml), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case line == "policies:":
			in = true
			continue
		case !in || trimmed == "" || strings.HasPrefix(trimmed, "#") || trimmed == "match:":
			continue
		case strings.HasPrefix(trimmed, "- ") && !strings.Contains(trimmed, ": "):
			continue // a list entry: its key's comment covers it
		}
		if !strings.Contains(line, "  # ") {
			t.Errorf("line %d has no source comment: %q", i+1, line)
		}
	}
}
