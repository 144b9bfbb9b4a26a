//go:build unix

package policyfile_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corsproc/corsproc/policy/policyfile"
)

// loadWithin runs Load(path) and Digest(path) on another goroutine and
// fails the test if they do not return within a generous deadline (opening
// a named pipe used to block for ever); it returns Load's error.
func loadWithin(t *testing.T, path string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := policyfile.Load(path)
		if _, derr := policyfile.Digest(path); (derr == nil) != (err == nil) {
			t.Errorf("Digest(%s) = %v, but Load = %v", path, derr, err)
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("Load(%s) blocked", path)
		return nil
	}
}

// TestNonRegularFiles: a policy path, or a *.yaml entry of a policy
// directory, that is not a regular file (after symlinks) is an error naming
// it, returned at once: a named pipe, a device, a socket.
func TestNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock.yaml")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	link := filepath.Join(dir, "null.yaml")
	if err := os.Symlink(os.DevNull, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{fifo, "named pipe"},
		{sock, "socket"},
		{os.DevNull, "device"},
		{link, "device"},
	} {
		err := loadWithin(t, c.path)
		if err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Load(%s) = %v; want an error naming it, %s, not a regular file", c.path, err, c.want)
		}
	}

	// In a directory, beside a good file.
	for _, entry := range []string{fifo, sock, link} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "a.yaml"), []byte(filesYAML), 0o644); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(d, filepath.Base(entry))
		if err := os.Rename(entry, name); err != nil {
			t.Fatal(err)
		}
		err := loadWithin(t, d)
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Load(%s) with %s = %v; want an error naming it", d, filepath.Base(name), err)
		}
	}
}
