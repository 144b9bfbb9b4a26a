package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsproc/corsproc/internal/active"
	"github.com/corsproc/corsproc/internal/admin"
	"github.com/corsproc/corsproc/internal/app"
	"github.com/corsproc/corsproc/internal/listen"
)

// defineDevAdminFlag defines dev's --admin, off by default: dev is often
// run beside a serve that has the admin port 9002.
func defineDevAdminFlag(fs *flag.FlagSet, addr *string) {
	fs.StringVar(addr, "admin", "",
		"`ADDR` of the read-only admin HTTP server, as serve's (/, /metrics,\n"+
			"/healthz, /readyz, /debug/policy): host:port, or unix:///path/to.sock;\n"+
			"\"\" (the default) disables it")
}

// devAdmin binds dev's admin server at addr, serving reg's metrics and
// enforced's policy set, its /readyz asking g's health service.
func devAdmin(ctx context.Context, log *slog.Logger, addr listen.Addr, reg *prometheus.Registry, enforced *active.Set, g *app.GRPCServer) (*app.HTTPServer, error) {
	lis, err := addr.Listen(ctx)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	adm, err := admin.New(log, reg, enforced, g, false, lis)
	if err != nil {
		lis.Close()
		return nil, err
	}
	return adm, nil
}
