package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/reload"
)

// watchPolicy keeps the enforced policy set in step with the policy path
// until ctx ends: file changes (fsnotify) and SIGHUP reload it, and each new
// valid set is handed to swap; a bad new set is refused, logged and counted
// while the last good one keeps serving. With no path (the development
// policy) there is nothing to reload, but SIGHUP is still taken so that it
// does not end the process. Every opts.Interval (serve's --reload-interval)
// the files' digest is compared with the active set's, a backstop for a
// missed file event; opts.Report passes each reload's result on to the
// admin server, and opts.Logger and opts.Registerer are set to log and reg.
// The reload metrics are registered before it returns, so that they exist
// from the first scrape.
func watchPolicy(ctx context.Context, log *slog.Logger, path string, set *policy.Set, swap func(*policy.Set), reg prometheus.Registerer, opts reload.Options) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var r *reload.Reloader
	if path != "" {
		opts.Logger, opts.Registerer = log, reg
		r = reload.New(path, set, swap, opts)
	}
	go func() {
		defer signal.Stop(hup)
		if path == "" {
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					log.Info("SIGHUP: no --policy given, nothing to reload")
				}
			}
		}
		r.Run(ctx, hup)
	}()
}
