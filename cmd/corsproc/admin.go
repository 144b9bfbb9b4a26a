package main

import (
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin server timeouts: it answers probes and scrapes, small and quick,
// and should not hold connections for slow or idle clients.
const (
	adminReadHeaderTimeout = 5 * time.Second
	adminWriteTimeout      = 30 * time.Second
	adminIdleTimeout       = 2 * time.Minute
	// adminShutdownTimeout bounds the admin server's own close, after the
	// gRPC drain.
	adminShutdownTimeout = 5 * time.Second
)

// newRegistry returns corsproc's private metrics registry, with the Go
// runtime and process collectors. Nothing goes to the global default
// registry, so what /metrics shows is exactly what corsproc registered.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// newAdminServer returns the admin HTTP server: /metrics, /healthz
// (liveness: the process answers) and /readyz (readiness: 200 while ready
// is true, 503 once draining). Every route is read-only: GET and HEAD only,
// so nothing on the admin port changes state.
func newAdminServer(log *slog.Logger, reg *prometheus.Registry, ready *atomic.Bool) *http.Server {
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: errLog,
		Registry: reg, // counts its own scrape errors
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		ErrorLog:          errLog,
	}
}
