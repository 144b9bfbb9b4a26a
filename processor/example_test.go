package processor_test

import (
	"log/slog"
	"net"
	"os"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"
)

// A Server is registered on a gRPC server as Envoy's ExternalProcessor;
// reloading a policy file swaps the set without disturbing streams in
// flight.
func ExampleNew() {
	set, err := policyfile.Load("policy.yaml")
	if err != nil {
		set = policyfile.Development()
	}
	reg := prometheus.NewRegistry()
	srv := processor.New(set, processor.Options{
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Registerer: reg,
	})
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, srv)

	// On reload:
	if next, err := policyfile.Load("policy.yaml"); err == nil {
		srv.Swap(next)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return
	}
	go gs.Serve(lis)
	gs.Stop()
}
