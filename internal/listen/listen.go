// Package listen binds corsproc's listeners: a TCP host:port, or a Unix
// socket, which it creates with the permission bits asked for and without a
// moment in which the socket exists with others, and whose stale file (left
// by a process that died) it removes (docs/security.md, "Unix socket").
package listen

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// UnixScheme prefixes a Unix socket address, as gRPC targets spell it.
const UnixScheme = "unix://"

// Addr is a parsed listen address: a --listen or --admin value.
type Addr struct {
	network string // "tcp" or "unix"
	address string // host:port, or the socket path
}

// Parse parses host:port (port 0 asks the kernel for a free one) or
// unix:///absolute/path.sock. Its errors say what is wanted, not which
// flag held s: the caller names the flag.
func Parse(s string) (Addr, error) {
	if path, ok := strings.CutPrefix(s, UnixScheme); ok {
		if !filepath.IsAbs(path) {
			return Addr{}, errors.New("a Unix socket address is unix:///absolute/path.sock")
		}
		return Addr{network: "unix", address: path}, nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return Addr{}, errors.New("want host:port or unix:///path/to.sock")
	}
	return Addr{network: "tcp", address: s}, nil
}

// Listen binds a. For a Unix socket it first removes a stale socket file, one
// left by a process that died without unlinking it, and creates the socket
// with the process umask: serve's listeners use ListenMode instead.
func (a Addr) Listen(ctx context.Context) (net.Listener, error) {
	if a.network == "unix" {
		if err := removeStaleSocket(a.address); err != nil {
			return nil, err
		}
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, a.network, a.address)
}

// DefaultSocketMode is the --listen-mode and --admin-mode default: the owner
// and its group may connect (connecting to a Unix socket needs write
// permission), others may not. A sidecar Envoy running as another user
// shares a group with corsproc (fsGroup in Kubernetes).
const DefaultSocketMode fs.FileMode = 0o660

// ListenMode binds a like Listen, and gives a Unix socket the permission
// bits mode, without a moment in which the socket exists at the path with
// other permissions: it is bound in a fresh private directory beside the
// path (mode 0700, so nobody else can reach it there), chmod'ed, then
// renamed into place, which is atomic. The listener removes the socket at
// the path when closed.
func (a Addr) ListenMode(ctx context.Context, mode fs.FileMode) (net.Listener, error) {
	if a.network != "unix" {
		return a.Listen(ctx)
	}
	if err := removeStaleSocket(a.address); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(a.address), ".corsproc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", tmp)
	if err != nil {
		return nil, err
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, mode.Perm()); err != nil {
		ul.Close()
		return nil, err
	}
	if err := os.Rename(tmp, a.address); err != nil {
		ul.Close()
		return nil, err
	}
	return &renamedUnixListener{UnixListener: ul, addr: &net.UnixAddr{Name: a.address, Net: "unix"}}, nil
}

// renamedUnixListener is a Unix listener whose socket file was moved to
// addr after binding.
type renamedUnixListener struct {
	*net.UnixListener
	addr *net.UnixAddr
	once sync.Once
}

func (l *renamedUnixListener) Addr() net.Addr { return l.addr }

func (l *renamedUnixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.addr.Name) })
	return err
}

// ParseFileMode parses an octal permission mode such as 0660 or 660. Like
// Parse, its error does not name the flag.
func ParseFileMode(s string) (fs.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, errors.New("want octal permission bits such as 0660")
	}
	return fs.FileMode(m), nil
}

// removeStaleSocket removes the socket file at path unless a process still
// accepts connections on it. It refuses to remove anything but a socket.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; not removing it", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("%s: another process is listening on it", path)
	}
	return os.Remove(path)
}

// String spells a bound address the way the listen flags accept it.
func String(a net.Addr) string {
	if a.Network() == "unix" {
		return UnixScheme + a.String()
	}
	return a.String()
}
