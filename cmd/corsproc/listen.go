package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
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
// left by a process that died without unlinking it.
func (a listenAddr) listen(ctx context.Context) (net.Listener, error) {
	if a.network == "unix" {
		if err := removeStaleSocket(a.address); err != nil {
			return nil, err
		}
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, a.network, a.address)
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
