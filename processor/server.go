// Package processor is corsproc's Envoy External Processing service.
package processor

import (
	"log/slog"
	"sync/atomic"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsproc/corsproc/policy"
)

// Options configure a Server.
type Options struct {
	// Logger receives stream errors and, at debug level, every decision.
	// nil discards.
	Logger *slog.Logger
	// Registerer receives the processor's metrics. nil registers nothing.
	Registerer prometheus.Registerer
}

// Server implements envoy.service.ext_proc.v3.ExternalProcessor.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	set atomic.Pointer[policy.Set]
	log *slog.Logger
}

// New returns a Server enforcing set.
func New(set *policy.Set, opts Options) *Server {
	s := &Server{log: opts.Logger}
	s.set.Store(set)
	return s
}

// Swap atomically replaces the active policy set. Streams already in flight
// finish with the set they started with.
func (s *Server) Swap(set *policy.Set) { s.set.Store(set) }

// Policy returns the active policy set.
func (s *Server) Policy() *policy.Set { return s.set.Load() }

// Process serves one ext_proc stream (one HTTP request).
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	return nil // skeleton
}
