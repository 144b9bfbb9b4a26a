package policy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CORSPROC_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./policy/
// writes every validation fixture (policyfile/testdata/*.yaml, one per configuration
// mistake) as a seed of FuzzParse into testdata/fuzz/FuzzParse, in Go's
// corpus format.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("CORSPROC_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set CORSPROC_WRITE_FUZZ_CORPUS=1 to write the seed corpus")
	}
	files, err := filepath.Glob(filepath.Join("policyfile", "testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := "fixture-" + strings.TrimSuffix(filepath.Base(f), ".yaml")
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
