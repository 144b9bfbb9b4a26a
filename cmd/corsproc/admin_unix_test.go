//go:build unix

package main

import (
	"context"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/corsproc/corsproc/internal/testutil"
)

// Under umask 000, the admin server's Unix socket gets --admin-mode (0660
// by default), as the gRPC socket gets --listen-mode: never the
// world-writable bits the umask would let through, not even for a moment
// (both are bound in a private directory and renamed into place, which
// leaves nothing beside them). The admin server answers on it, and both
// sockets are gone after shutdown.
//
// Not parallel: the umask is the process's.
func TestServeAdminSocketModeUmask000(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, c := range []struct {
		args []string
		want fs.FileMode
	}{
		{nil, 0o660},
		{[]string{"--admin-mode", "0600"}, 0o600},
	} {
		dir := testutil.ShortTempDir(t)
		admin := filepath.Join(dir, "admin.sock")
		grpcSock := filepath.Join(dir, "grpc.sock")
		in := startServe(t, append([]string{"--listen", "unix://" + grpcSock, "--admin", "unix://" + admin}, c.args...)...)
		for sock, want := range map[string]fs.FileMode{admin: c.want, grpcSock: 0o660} {
			fi, err := os.Lstat(sock)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != want {
				t.Errorf("%q: %s has mode %v, want %v", c.args, filepath.Base(sock), fi.Mode(), fs.ModeSocket|want)
			}
		}
		client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", admin)
		}}}
		resp, err := client.Get("http://corsproc/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%q: /healthz over the admin socket: %d", c.args, resp.StatusCode)
		}
		client.CloseIdleConnections()
		if ents, _ := os.ReadDir(dir); len(ents) != 2 {
			t.Errorf("%q: %d entries beside the sockets, want none: %v", c.args, len(ents)-2, ents)
		}
		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}
		for _, sock := range []string{admin, grpcSock} {
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("%q: %s left after shutdown: %v", c.args, filepath.Base(sock), err)
			}
		}
	}
}
