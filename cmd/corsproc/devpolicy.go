package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/corsproc/corsproc/envoy/emulator"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/processor"
)

// dev's --policy-name forces one policy of the set on every request, the way
// a production route does: the emulated Envoy's route sends its name in the
// x-corsproc-policy stream metadata (ExtProcPerRoute.overrides.
// grpc_initial_metadata, docs/policy.md "Which policy governs a request"),
// which comes before any match and default_policy. So a laptop serves the
// development policy of a set that holds both, such as the django-debug
// policy of corsproc import django (docs/migrating-from-django.md), from
// the same file production loads.

// defineDevPolicyNameFlag defines --policy-name on dev's flags.
func defineDevPolicyNameFlag(fs *flag.FlagSet, name *string) {
	fs.StringVar(name, "policy-name", "",
		"`NAME` of the policy that governs every request, as an Envoy route's\n"+
			"x-corsproc-policy metadata selects it (e.g. django-debug); default: each\n"+
			"request's policy is found by match and default_policy")
}

// forceDevPolicy returns cfg with every route naming the policy name in
// the x-corsproc-policy metadata, or cfg as it is for "". The set must hold
// the policy: a name it does not hold would refuse every request (an
// unknown policy), so dev does not start with it.
func forceDevPolicy(cfg emulator.Config, set *policy.Set, name string) (emulator.Config, error) {
	if name == "" {
		return cfg, nil
	}
	if !set.Has(name) {
		return cfg, fmt.Errorf("dev: --policy-name %q: %s has no such policy; it has %s",
			name, set.Source(), strings.Join(set.Names(), ", "))
	}
	routes := make([]emulator.Route, len(cfg.Routes))
	for i, r := range cfg.Routes {
		r.GRPCInitialMetadata = append(append([]emulator.Metadata(nil), r.GRPCInitialMetadata...),
			emulator.Metadata{Key: processor.MetadataPolicy, Value: name})
		routes[i] = r
	}
	cfg.Routes = routes
	return cfg, nil
}
