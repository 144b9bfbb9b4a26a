package main

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

// unixScheme prefixes a Unix socket address, as gRPC targets spell it.
const unixScheme = "unix://"

// listenAddr is a parsed --listen or --admin value.
type listenAddr struct {
	network string // "tcp" or "unix"
	address string // host:port, or the socket path
}

// parseListenAddr parses host:port (port 0 asks the kernel for a free one)
// or unix:///absolute/path.sock.
func parseListenAddr(flagName, s string) (listenAddr, error) {
	if path, ok := strings.CutPrefix(s, unixScheme); ok {
		if !filepath.IsAbs(path) {
			return listenAddr{}, fmt.Errorf("--%s %q: a Unix socket address is unix:///absolute/path.sock", flagName, s)
		}
		return listenAddr{network: "unix", address: path}, nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return listenAddr{}, fmt.Errorf("--%s %q: want host:port or unix:///path/to.sock", flagName, s)
	}
	return listenAddr{network: "tcp", address: s}, nil
}

// listen binds a. For a Unix socket it first removes a stale socket file, one
// left by a process that died without unlinking it, and creates the socket
// with the process umask: serve's listeners use listenMode instead.
func (a listenAddr) listen(ctx context.Context) (net.Listener, error) {
	if a.network == "unix" {
		if err := removeStaleSocket(a.address); err != nil {
			return nil, err
		}
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, a.network, a.address)
}

// defaultSocketMode is the --listen-mode and --admin-mode default: the owner
// and its group may connect (connecting to a Unix socket needs write
// permission), others may not. A sidecar Envoy running as another user
// shares a group with corsproc (fsGroup in Kubernetes).
const defaultSocketMode fs.FileMode = 0o660

// listenMode binds a like listen, and gives a Unix socket the permission
// bits mode, without a moment in which the socket exists at the path with
// other permissions: it is bound in a fresh private directory beside the
// path (mode 0700, so nobody else can reach it there), chmod'ed, then
// renamed into place, which is atomic. The listener removes the socket at
// the path when closed.
func (a listenAddr) listenMode(ctx context.Context, mode fs.FileMode) (net.Listener, error) {
	if a.network != "unix" {
		return a.listen(ctx)
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

// parseFileMode parses an octal permission mode such as 0660 or 660.
func parseFileMode(flagName, s string) (fs.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("--%s %q: want octal permission bits such as 0660", flagName, s)
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

// addrString spells a bound address the way the listen flags accept it.
func addrString(a net.Addr) string {
	if a.Network() == "unix" {
		return unixScheme + a.String()
	}
	return a.String()
}
