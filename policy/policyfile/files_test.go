package policyfile_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

const filesYAML = "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com]\n"

// Parse keeps its own copy of the file: the caller may reuse its buffer.
func TestFilesParse(t *testing.T) {
	data := []byte(filesYAML)
	set, err := policyfile.Parse("policy.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	copy(data, "XXXXXXX")
	files := set.Files()
	if len(files) != 1 || files[0].Name != "policy.yaml" || string(files[0].Data) != filesYAML {
		t.Fatalf("Files = %q, want the one file as parsed", files)
	}
	// The result is a copy: changing it leaves the set alone.
	files[0].Data[0] = 'X'
	files[0].Name = "changed"
	if again := set.Files(); again[0].Name != "policy.yaml" || string(again[0].Data) != filesYAML {
		t.Errorf("changing the result of Files changed the set: %q", again)
	}
}

func TestFilesLoad(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"20-api.yml":  "policies:\n  - name: api\n    match: {routes: [api]}\n    allowed_origins: [https://api.example.com]\n",
		"10-web.yaml": filesYAML,
		".swap.yaml":  "not: [valid",
		"README.txt":  "ignored",
	})
	set, err := policyfile.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := set.Files()
	want := []policy.File{
		{Name: filepath.Join(dir, "10-web.yaml"), Data: []byte(filesYAML)},
		{Name: filepath.Join(dir, "20-api.yml"), Data: []byte("policies:\n  - name: api\n    match: {routes: [api]}\n    allowed_origins: [https://api.example.com]\n")},
	}
	if len(files) != len(want) {
		t.Fatalf("Files = %q, want %q", files, want)
	}
	for i := range want {
		if files[i].Name != want[i].Name || !bytes.Equal(files[i].Data, want[i].Data) {
			t.Errorf("file %d = %q, want %q", i, files[i], want[i])
		}
	}

	// A file given by path.
	path := filepath.Join(dir, "10-web.yaml")
	set, err = policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if files := set.Files(); len(files) != 1 || files[0].Name != path || string(files[0].Data) != filesYAML {
		t.Errorf("Files = %q, want %s as read", files, path)
	}
	// Rewriting the file does not change a loaded set.
	if err := os.WriteFile(path, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if files := set.Files(); string(files[0].Data) != filesYAML {
		t.Errorf("Files = %q after the file changed", files)
	}
}

func TestFilesDevelopment(t *testing.T) {
	files := policyfile.Development().Files()
	if len(files) != 1 || files[0].Name != policyfile.DevelopmentSource || !bytes.Equal(files[0].Data, policyfile.DevelopmentYAML()) {
		t.Errorf("Files = %q, want the embedded development policy", files)
	}
}

// A set compiled from a decoded file has no source text.
func TestFilesCompile(t *testing.T) {
	pf, err := policyfile.Decode("decoded.yaml", []byte(filesYAML))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Compile(policy.Source{Name: "decoded.yaml", Files: []policy.Input{{File: "decoded.yaml", Schema: pf}}})
	if err != nil {
		t.Fatal(err)
	}
	if files := set.Files(); files != nil {
		t.Errorf("Files = %q, want nil", files)
	}
}

// Digest gives the digest Load gives the set, for a file and for a
// directory, and a different one once a file changes: a reload relies on it
// to skip decoding files it already serves.
func TestDigest(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.yaml")
	if err := os.WriteFile(file, []byte(filesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, dir} {
		set, err := policyfile.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := policyfile.Digest(path)
		if err != nil || got != set.Digest() {
			t.Errorf("Digest(%s) = %q, %v; Load gives %q", path, got, err, set.Digest())
		}
	}
	before, _ := policyfile.Digest(dir)
	if err := os.WriteFile(file, []byte(filesYAML+"# changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if after, _ := policyfile.Digest(dir); after == before {
		t.Error("Digest did not change with the file")
	}
	if _, err := policyfile.Digest(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("Digest of a missing file: no error")
	}
}
