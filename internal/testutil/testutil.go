// Package testutil holds the helpers the tests of several packages share.
// Only tests import it.
package testutil

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// SyncBuffer is a strings.Builder that goroutines (a logger, a server, a
// child process's output) may write into while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// MustParse compiles a policy file for a test, failing the test if it is
// not valid.
func MustParse(tb testing.TB, yaml string) *policy.Set {
	tb.Helper()
	set, err := policyfile.Parse("test.yaml", []byte(yaml))
	if err != nil {
		tb.Fatalf("policyfile.Parse: %v", err)
	}
	return set
}

// Diagnostics renders diagnostics one a line, indented, for a test's
// failure message.
func Diagnostics(ds []policy.Diagnostic) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString("  ")
		b.WriteString(d.String())
		b.WriteString("\n")
	}
	return b.String()
}

// YAMLDocs decodes a YAML stream into its documents, failing the test if it
// is not one.
func YAMLDocs(tb testing.TB, data string) []any {
	tb.Helper()
	dec := yaml.NewDecoder(strings.NewReader(data))
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			tb.Fatalf("not a YAML stream: %v\n%s", err, data)
		}
		docs = append(docs, v)
	}
}

// ShortTempDir returns a new directory for Unix sockets, removed at the
// test's end: a socket's path must stay under about 100 bytes, which
// t.TempDir's long names can pass.
func ShortTempDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "corsproc")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TakenSocketPaths returns two paths in a new ShortTempDir where a Unix
// socket must not be created over what is there: live, a socket another
// listener (closed at the test's end) holds, and file, a regular file.
func TakenSocketPaths(tb testing.TB) (live, file string) {
	tb.Helper()
	dir := ShortTempDir(tb)
	live = filepath.Join(dir, "live.sock")
	l, err := net.Listen("unix", live)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	file = filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return live, file
}
