//go:build unix

package listen

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/testutil"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]Addr{
		"127.0.0.1:9001":            {network: "tcp", address: "127.0.0.1:9001"},
		"[::1]:0":                   {network: "tcp", address: "[::1]:0"},
		":9001":                     {network: "tcp", address: ":9001"},
		"unix:///run/corsproc.sock": {network: "unix", address: "/run/corsproc.sock"},
	} {
		got, err := Parse(s)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v, want %+v", s, got, err, want)
		}
	}
	for s, want := range map[string]string{
		"":                     "want host:port",
		"9001":                 "want host:port",
		"localhost":            "want host:port",
		"unix://corsproc.sock": "absolute",
	} {
		if _, err := Parse(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q): %v, want an error saying %q", s, err, want)
		}
	}
}

func TestParseFileMode(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]fs.FileMode{"0660": 0o660, "660": 0o660, "0": 0, "777": 0o777} {
		if got, err := ParseFileMode(s); err != nil || got != want {
			t.Errorf("ParseFileMode(%q) = %v, %v, want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"rw", "1777", "-1", "0o660", ""} {
		if _, err := ParseFileMode(s); err == nil {
			t.Errorf("ParseFileMode(%q) accepted", s)
		}
	}
}

// ListenMode replaces a stale socket, gives the socket the mode asked for,
// leaves nothing beside it, names it by its path, and removes it on Close.
func TestListenModeUnix(t *testing.T) {
	t.Parallel()
	dir := testutil.ShortTempDir(t)
	sock := filepath.Join(dir, "s.sock")
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	a, err := Parse(UnixScheme + sock)
	if err != nil {
		t.Fatal(err)
	}
	l, err := a.ListenMode(t.Context(), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want %v", fi.Mode(), fs.ModeSocket|0o600)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d entries beside the socket: %v", len(ents)-1, ents)
	}
	if got := String(l.Addr()); got != UnixScheme+sock {
		t.Errorf("String(Addr()) = %q, want %q", got, UnixScheme+sock)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("dial the socket: %v", err)
	}
	c.Close()
	l.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
}

// Neither Listen nor ListenMode removes a socket another process listens
// on, or a file that is not a socket.
func TestListenRefusesToTakeOver(t *testing.T) {
	t.Parallel()
	live, file := testutil.TakenSocketPaths(t)
	for path, want := range map[string]string{live: "another process is listening", file: "not a socket"} {
		a, err := Parse(UnixScheme + path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Listen(t.Context()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Listen on %s: %v, want %q", filepath.Base(path), err, want)
		}
		if _, err := a.ListenMode(t.Context(), 0o660); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ListenMode on %s: %v, want %q", filepath.Base(path), err, want)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(path), err)
		}
	}
}

func TestStringTCP(t *testing.T) {
	t.Parallel()
	a, err := Parse("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := a.ListenMode(t.Context(), 0o600) // the mode is for Unix sockets only
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := String(l.Addr()); !strings.HasPrefix(got, "127.0.0.1:") || strings.HasSuffix(got, ":0") {
		t.Errorf("String(Addr()) = %q, want 127.0.0.1 and the port picked", got)
	}
}
