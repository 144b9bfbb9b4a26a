package app

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/corsproc/corsproc/internal/testutil"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/processor"
)

// waitLimit bounds every wait in these tests; nothing should come close.
const waitLimit = 10 * time.Second

// TestShutdownClosesAdminRequestsPastDeadline: an admin request still in
// flight when the admin server's shutdown deadline passes is cut, with a
// warning naming the server, and Run still returns nil. (The admin server
// used to be closed without a word, where dev's front server warned.)
func TestShutdownClosesAdminRequestsPastDeadline(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	g := NewGRPCServer(processor.New(policy.Development(), processor.Options{}), nil)
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A request that never finishes by itself.
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	g.Listener, g.DrainTimeout = grpcLis, time.Second
	a := &App{Log: log, Servers: []Server{g, &HTTPServer{
		Name:         "admin",
		Server:       &http.Server{Handler: slow},
		Listener:     adminLis,
		DrainTimeout: 10 * time.Millisecond,
	}}, ShutdownTimeout: time.Second}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- a.Run(ctx, nil)
	}()

	answered := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Timeout: waitLimit}).Get("http://" + adminLis.Addr().String() + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	select {
	case <-entered:
	case <-time.After(waitLimit):
		t.Fatal("the admin request did not arrive")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Run did not return with an admin request in flight\n%s", logs.String())
	}
	select {
	case err := <-answered:
		if err == nil {
			t.Error("the admin request in flight got an answer, want its connection closed")
		}
	case <-time.After(waitLimit):
		t.Fatal("the admin request in flight was not cut")
	}
	want := `level=WARN msg="requests still in flight at the shutdown deadline, closing them" server=admin`
	if l := logs.String(); !strings.Contains(l, want) {
		t.Errorf("logs do not contain %q:\n%s", want, l)
	}
}
