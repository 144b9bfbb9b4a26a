// Package app runs corsproc's servers, the same way for serve and dev:
// it starts a list of servers on their bound listeners, serves until its
// context is cancelled (SIGTERM, SIGINT) or one of them fails, and then
// shuts down in order: every server first stops saying it is ready, then
// each drains, in the order of the list, within its own deadline
// (docs/operations.md, "Running").
//
// The gRPC server with the ext_proc and health services is GRPCServer; the
// HTTP servers beside it (the admin server, dev's emulated Envoy) are
// HTTPServers.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server is one of the servers an App runs.
type Server interface {
	// Serve serves until Drain; an error before the shutdown means the
	// server failed.
	Serve() error
	// Addr is the address it serves on.
	Addr() net.Addr
	// Unready is the first step of the shutdown, taken on every server
	// before any drains: stop reporting ready.
	Unready()
	// Drain stops taking work and lets the work in flight finish until the
	// server's deadline, then closes what is left.
	Drain(log *slog.Logger)
}

// App is one run of serve or dev.
type App struct {
	Log *slog.Logger
	// Servers are started together and drained in this order.
	Servers []Server
	// ShutdownTimeout is the gRPC server's drain deadline, named in the
	// log line that starts the shutdown.
	ShutdownTimeout time.Duration
}

// Run serves until ctx is cancelled or a server fails, then shuts down.
// started, if not nil, is called once every server serves. Run returns nil
// after a shutdown asked for by ctx, and the failure of the server that
// stopped otherwise.
func (a *App) Run(ctx context.Context, started func()) error {
	// Every server reports here; after shutdown nobody reads, hence the
	// room for all of them.
	failed := make(chan error, len(a.Servers))
	for _, s := range a.Servers {
		go func() { failed <- s.Serve() }()
	}
	if started != nil {
		started()
	}

	var err error
	select {
	case <-ctx.Done():
		a.Log.Info("shutting down", "cause", context.Cause(ctx), "shutdown_timeout", a.ShutdownTimeout)
	case err = <-failed:
		err = fmt.Errorf("server stopped: %w", err)
		a.Log.Error("shutting down", "error", err)
	}
	a.shutdown()
	return err
}

// shutdown stops taking work and drains. Every server turns unready at once
// (gRPC health, and /readyz which asks it), so load balancers and Envoy's
// health checker steer new requests elsewhere; then the servers drain in
// order. dev lists its emulated Envoy first, so that it stops taking
// requests and lets those in flight finish while the gRPC server still
// answers them; serve lists the admin server last, so that /readyz answers
// 503 for the whole drain.
func (a *App) shutdown() {
	for _, s := range a.Servers {
		s.Unready()
	}
	for _, s := range a.Servers {
		s.Drain(a.Log)
	}
}

// HTTPServer is an HTTP server an App runs beside the gRPC server.
type HTTPServer struct {
	Name     string // what the logs call it: "admin", "dev"
	Server   *http.Server
	Listener net.Listener
	// DrainTimeout is how long requests in flight may take to finish at
	// shutdown before their connections are closed.
	DrainTimeout time.Duration
	// Close are closed once the server has drained: the client
	// connections its handlers used.
	Close []io.Closer
}

// Serve serves on h.Listener until Drain.
func (h *HTTPServer) Serve() error { return h.Server.Serve(h.Listener) }

// Addr is the address of h.Listener.
func (h *HTTPServer) Addr() net.Addr { return h.Listener.Addr() }

// Unready does nothing: an HTTP server beside the gRPC server has no
// readiness of its own.
func (h *HTTPServer) Unready() {}

// Drain stops h taking requests and waits up to h.DrainTimeout for those in
// flight, then closes the connections still open, and then h.Close.
func (h *HTTPServer) Drain(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), h.DrainTimeout)
	defer cancel()
	if err := h.Server.Shutdown(ctx); err != nil {
		log.Warn("requests still in flight at the shutdown deadline, closing them", "server", h.Name, "timeout", h.DrainTimeout)
		h.Server.Close()
	}
	for _, c := range h.Close {
		c.Close()
	}
}
