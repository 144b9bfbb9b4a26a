// Command corsproc is a gRPC server for Envoy's External Processing filter
// that enforces CORS policies.
//
// main only wires signals and exit codes; everything else is in Run, which
// tests call directly.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// SIGTERM is what Kubernetes and systemd send; SIGINT is Ctrl-C.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default behaviour so a second
		// one kills the process without waiting for the drain.
		<-ctx.Done()
		stop()
	}()

	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "corsproc: %v\n", err)
	}
	os.Exit(exitCode(err))
}
