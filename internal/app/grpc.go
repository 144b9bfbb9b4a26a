package app

import (
	"log/slog"
	"net"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/corsproc/corsproc/processor"
)

// HealthServices are the gRPC health service names corsproc reports on: ""
// for the whole server (what Envoy's gRPC health checker asks by default)
// and the ext_proc service itself.
var HealthServices = []string{"", extprocv3.ExternalProcessor_ServiceDesc.ServiceName}

// GRPCServer is corsproc's gRPC server, with the ext_proc service and the
// standard health service, on its listener.
type GRPCServer struct {
	Server *grpc.Server
	Health *health.Server
	// Listener is where it serves; set it before the App runs.
	Listener net.Listener
	// DrainTimeout is how long in-flight streams may take to finish at
	// shutdown before they are cut (serve's --shutdown-timeout).
	DrainTimeout time.Duration
}

// NewGRPCServer returns the gRPC server with the ext_proc service and the
// standard health service registered, reporting SERVING. Reflection is not
// registered: corsproc's API is Envoy's, and nothing needs to discover it.
// With creds (TLS), every connection is a TLS one; nil serves plaintext.
// The processor's TapHandle runs on every stream, for its idle timeout.
func NewGRPCServer(proc *processor.Server, creds credentials.TransportCredentials) *GRPCServer {
	opts := proc.GRPCServerOptions()
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	gs := grpc.NewServer(opts...)
	extprocv3.RegisterExternalProcessorServer(gs, proc)

	hs := health.NewServer()
	for _, svc := range HealthServices {
		hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(gs, hs)
	return &GRPCServer{Server: gs, Health: hs}
}

// Serve serves on g.Listener until Drain.
func (g *GRPCServer) Serve() error { return g.Server.Serve(g.Listener) }

// Addr is the address of g.Listener.
func (g *GRPCServer) Addr() net.Addr { return g.Listener.Addr() }

// Unready turns the health service NOT_SERVING for every service, for good
// (after health.Server.Shutdown, SetServingStatus ignores every status
// change until Resume: grpc-go health/server.go, v1.85.0), so that load
// balancers and Envoy's health checker steer new requests elsewhere (and
// the admin server's /readyz, which asks it, answers 503).
func (g *GRPCServer) Unready() { g.Health.Shutdown() }

// Drain sends GOAWAY and waits for in-flight streams until DrainTimeout,
// then cuts those still open.
func (g *GRPCServer) Drain(log *slog.Logger) {
	stopped := make(chan struct{})
	go func() {
		g.Server.GracefulStop() // GOAWAY, then wait for in-flight streams
		close(stopped)
	}()
	deadline := time.NewTimer(g.DrainTimeout)
	defer deadline.Stop()
	select {
	case <-stopped:
		log.Info("drained")
	case <-deadline.C:
		log.Warn("drain deadline passed, closing the streams still open", "shutdown_timeout", g.DrainTimeout)
		g.Server.Stop()
		<-stopped
	}
}
