package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corsproc/corsproc/internal/testutil"
	"github.com/corsproc/corsproc/policy/policyfile"
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
	g := NewGRPCServer(processor.New(policyfile.Development(), processor.Options{}), nil)
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

// fakeServer records the shutdown steps taken on it into a shared log.
type fakeServer struct {
	name  string
	steps *[]string
	mu    *sync.Mutex
	fail  error         // returned by Serve at once when set
	stop  chan struct{} // closed by Drain; nil when Serve failed
}

func (f *fakeServer) record(step string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.steps = append(*f.steps, step+" "+f.name)
}

func (f *fakeServer) Serve() error {
	if f.fail != nil {
		return f.fail
	}
	<-f.stop
	return http.ErrServerClosed
}

func (f *fakeServer) Addr() net.Addr { return &net.TCPAddr{} }
func (f *fakeServer) Unready()       { f.record("unready") }
func (f *fakeServer) Drain(*slog.Logger) {
	f.record("drain")
	if f.stop != nil {
		close(f.stop)
	}
}

func fakeServers(names ...string) ([]Server, *[]string) {
	var steps []string
	var mu sync.Mutex
	var servers []Server
	for _, n := range names {
		servers = append(servers, &fakeServer{name: n, steps: &steps, mu: &mu, stop: make(chan struct{})})
	}
	return servers, &steps
}

// At shutdown every server turns unready before any drains, and they drain
// in the order of the list; Run returns nil when the context asked for it.
func TestRunShutdownOrder(t *testing.T) {
	t.Parallel()
	servers, steps := fakeServers("front", "grpc", "admin")
	a := &App{Log: slog.New(slog.DiscardHandler), Servers: servers}
	ctx, cancel := context.WithCancel(t.Context())
	started := false
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, func() { started = true; cancel() }) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
	}
	if !started {
		t.Error("started was not called")
	}
	want := "unready front, unready grpc, unready admin, drain front, drain grpc, drain admin"
	if got := strings.Join(*steps, ", "); got != want {
		t.Errorf("shutdown steps %q, want %q", got, want)
	}
}

// A server that fails shuts the others down, and Run returns its error.
func TestRunServerFails(t *testing.T) {
	t.Parallel()
	servers, steps := fakeServers("grpc", "admin")
	boom := errors.New("boom")
	servers[1].(*fakeServer).fail, servers[1].(*fakeServer).stop = boom, nil
	a := &App{Log: slog.New(slog.DiscardHandler), Servers: servers}
	done := make(chan error, 1)
	go func() { done <- a.Run(t.Context(), nil) }()
	select {
	case err := <-done:
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "server stopped") {
			t.Errorf("Run = %v, want server stopped: boom", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after a server failed")
	}
	if got, want := strings.Join(*steps, ", "), "unready grpc, unready admin, drain grpc, drain admin"; got != want {
		t.Errorf("shutdown steps %q, want %q", got, want)
	}
}
