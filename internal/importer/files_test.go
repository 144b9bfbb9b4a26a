package importer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReadFilesDirectory checks what a directory import reads: the
// matching files of the tree in name order, the files of sites-enabled
// (symlinks to sites-available, without an extension), never hidden
// entries or other files.
func TestReadFilesDirectory(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"nginx.conf":               "http {}",
		"conf.d/api.conf":          "server {}",
		"conf.d/.hidden.conf":      "x",
		"mime.types":               "types {}",
		"sites-available/default":  "server { listen 80; }",
		"sites-available/disabled": "server { listen 81; }",
		".git/config.conf":         "x",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "sites-enabled"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../sites-available/default", filepath.Join(dir, "sites-enabled", "default")); err != nil {
		t.Fatal(err)
	}
	files, err := ReadFiles(dir, nil, []string{".conf", "sites-enabled/"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimPrefix(f.Name, dir+"/"))
	}
	want := []string{"conf.d/api.conf", "nginx.conf", "sites-enabled/default"}
	if !slices.Equal(got, want) {
		t.Errorf("read %q, want %q", got, want)
	}
	if files[2].Name != filepath.Join(dir, "sites-enabled/default") || string(files[2].Data) != "server { listen 80; }" {
		t.Errorf("the symlink is read as %q: %q", files[2].Name, files[2].Data)
	}
	if _, err := ReadFiles(filepath.Join(dir, "sites-available"), nil, []string{".conf"}); err == nil {
		t.Error("a directory with no matching file is not an error")
	}
	big := filepath.Join(dir, "big.conf")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFiles(big, nil, nil); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a file over MaxFileSize: %v", err)
	}
}
