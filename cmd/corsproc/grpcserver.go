package main

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/corsproc/corsproc/processor"
)

// healthServices are the gRPC health service names corsproc reports on: ""
// for the whole server (what Envoy's gRPC health checker asks by default)
// and the ext_proc service itself.
var healthServices = []string{"", extprocv3.ExternalProcessor_ServiceDesc.ServiceName}

// newGRPCServer returns the gRPC server with the ext_proc service and the
// standard health service registered, reporting SERVING. Reflection is not
// registered: corsproc's API is Envoy's, and nothing needs to discover it.
// With creds (TLS), every connection is a TLS one; nil serves plaintext.
// The processor's TapHandle runs on every stream, for its idle timeout.
func newGRPCServer(proc *processor.Server, creds credentials.TransportCredentials) (*grpc.Server, *health.Server) {
	opts := proc.GRPCServerOptions()
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	gs := grpc.NewServer(opts...)
	extprocv3.RegisterExternalProcessorServer(gs, proc)

	hs := health.NewServer()
	for _, svc := range healthServices {
		hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(gs, hs)
	return gs, hs
}
