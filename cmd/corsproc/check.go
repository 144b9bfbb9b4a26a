package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/corsproc/corsproc/envoy/configcheck"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"
	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"
)

// checkConfig is what check's flags set.
type checkConfig struct {
	strict bool
	format string
	// names are the x-corsproc-policy values the Envoy routes send.
	names []string
	// routeNames is the platform whose route names match.routes must have
	// the form of: "" for any, or envoy-gateway.
	routeNames string
	// singleMessage: the set must fit envoy/envoy-single-message.yaml.
	singleMessage bool
}

func newCheckFlags(c *checkConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.BoolVar(&c.strict, "strict", false, "fail (exit 1) on warnings too")
	fs.StringVar(&c.format, "format", "text", "output `FORMAT`: text or json")
	fs.Func("metadata-policy", "a policy `NAME` an Envoy route sends in x-corsproc-policy; an error when the set does not define it (repeat for each route's name)", func(v string) error {
		c.names = append(c.names, v)
		return nil
	})
	fs.BoolVar(&c.singleMessage, "single-message", false, "the set is for Envoy's single-message mode with the header_mutation filter on every route (envoy/envoy-single-message.yaml): an error unless every request is governed in enforce mode (a default_policy, no shadow-mode policy)")
	fs.Func("route-names", "warn about match.routes entries that cannot be route names of `PLATFORM`: envoy-gateway (docs/envoy-gateway.md, \"Route names\")", func(v string) error {
		if v != "envoy-gateway" {
			return fmt.Errorf("%q: want envoy-gateway", v)
		}
		c.routeNames = v
		return nil
	})
	return fs
}

// errCheckFailed is check's result for an invalid policy: the diagnostics
// are already printed, so the error itself says little.
var errCheckFailed = errors.New("check failed")

// checked is one policy set check loaded: the set at the path, or one of
// the ConfigMaps among Kubernetes objects.
type checked struct {
	source string
	set    *policy.Set // nil when invalid
	diags  []policy.Diagnostic
}

// runCheck is `corsproc check FILE|DIR`: validate without serving, for CI
// pipelines and Kubernetes init containers. Exit 0 when valid (warnings
// printed), 1 on errors or, with --strict, on warnings. A path that holds
// Kubernetes objects (a rendered manifest, a kustomize directory) has each
// ConfigMap of policy files checked as the set corsproc loads from its
// mount.
func runCheck(_ context.Context, e *env, args []string) error {
	var c checkConfig
	fs := newCheckFlags(&c)
	pos, err := parseFlagsWithArgs("check", fs, args, "FILE|DIR")
	if err != nil {
		return err
	}
	if c.format != "text" && c.format != "json" {
		return usageErrorf("check: --format %q: want text or json", c.format)
	}
	path := pos[0]
	scan, isK8s, err := scanKubernetes(path)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	var sets []checked
	if !isK8s {
		set, err := policyfile.Load(path)
		ck := checked{source: path, set: set}
		var verr *policy.ValidationError
		switch {
		case errors.As(err, &verr):
			// The policies the errors leave intact are still checked
			// for reachability, so that one run says everything.
			files, rerr := readPolicyFiles(path)
			if rerr != nil {
				return fmt.Errorf("check: %w", rerr)
			}
			ck.diags = slices.Concat(verr.Diagnostics, policyfile.Unreachable(files, c.names))
		case err != nil:
			return fmt.Errorf("check: %w", err)
		default:
			ck.diags = slices.Concat(set.Warnings(), policyfile.Unreachable(set.Files(), c.names), unknownPolicyDiagnostics(path, set, c.names))
			if c.routeNames != "" {
				ck.diags = append(ck.diags, routeNameDiagnostics(set)...)
			}
			if c.singleMessage {
				ck.diags = append(ck.diags, singleMessageDiagnostics(set)...)
			}
		}
		sets = append(sets, ck)
	} else {
		if len(scan.sets) == 0 {
			for _, s := range scan.skipped {
				fmt.Fprintf(e.stdout, "%s: not checked: %s\n", path, s)
			}
			return fmt.Errorf("check: %s holds Kubernetes objects but no ConfigMap or configMapGenerator of policy files (*.yaml, *.yml keys with policies); see docs/operations.md", path)
		}
		for _, k := range scan.sets {
			set, diags, err := k.load()
			if err != nil {
				return fmt.Errorf("check: %w", err)
			}
			diags = append(diags, k.place(policyfile.Unreachable(k.policyFiles(), c.names))...)
			if set != nil {
				diags = append(diags, unknownPolicyDiagnostics(k.source, set, c.names)...)
				if c.routeNames != "" {
					diags = append(diags, k.place(routeNameDiagnostics(set))...)
				}
				if c.singleMessage {
					diags = append(diags, k.place(singleMessageDiagnostics(set))...)
				}
			}
			sets = append(sets, checked{source: k.source, set: set, diags: diags})
		}
	}
	return printChecked(e, path, c, sets, scan)
}

// printChecked prints what check found in sets, the policy sets at path,
// and returns errCheckFailed when one fails.
func printChecked(e *env, path string, c checkConfig, sets []checked, scan *k8sScan) error {
	anyFailed := false
	type jsonSet struct {
		Source   string   `json:"source"`
		Valid    bool     `json:"valid"`
		Policies []string `json:"policies,omitempty"`
		Digest   string   `json:"digest,omitempty"`
	}
	out := struct {
		Path        string           `json:"path"`
		Valid       bool             `json:"valid"`
		Policies    []string         `json:"policies,omitempty"`
		Digest      string           `json:"digest,omitempty"`
		Sets        []jsonSet        `json:"sets,omitempty"`
		Skipped     []string         `json:"skipped,omitempty"`
		Diagnostics []jsonDiagnostic `json:"diagnostics"`
	}{Path: path, Diagnostics: []jsonDiagnostic{}}
	for _, ck := range sets {
		errs, warns := 0, 0
		for _, d := range ck.diags {
			if d.Severity == policy.SeverityError {
				errs++
			} else {
				warns++
			}
		}
		failed := errs > 0 || (c.strict && warns > 0)
		anyFailed = anyFailed || failed
		js := jsonSet{Source: ck.source, Valid: !failed}
		if ck.set != nil {
			js.Policies, js.Digest = ck.set.Names(), ck.set.Digest()
		}
		if scan == nil {
			out.Policies, out.Digest = js.Policies, js.Digest
		} else {
			out.Sets = append(out.Sets, js)
		}
		for _, d := range ck.diags {
			out.Diagnostics = append(out.Diagnostics, toJSONDiagnostic(d))
		}
		if c.format == "json" {
			continue
		}
		for _, d := range ck.diags {
			fmt.Fprintln(e.stdout, d.String())
		}
		switch {
		case errs > 0:
			fmt.Fprintf(e.stdout, "%s: invalid: %s, %s\n", ck.source, plural(errs, "error"), plural(warns, "warning"))
		case failed:
			fmt.Fprintf(e.stdout, "%s: %s (--strict)\n", ck.source, plural(warns, "warning"))
		default:
			fmt.Fprintf(e.stdout, "%s: valid: %s, %s\n", ck.source, plural(len(ck.set.Names()), "policy"), plural(warns, "warning"))
		}
	}
	out.Valid = !anyFailed
	if scan != nil {
		out.Skipped = scan.skipped
		if c.format == "text" {
			for _, s := range scan.skipped {
				fmt.Fprintf(e.stdout, "%s: not checked: %s\n", path, s)
			}
		}
	}
	if c.format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	if anyFailed {
		return errCheckFailed
	}
	return nil
}

// unknownPolicyDiagnostics returns an error for each name an Envoy route
// sends in x-corsproc-policy that set does not define: corsproc would
// govern that route's requests and allow no CORS on them (docs/policy.md,
// "Which policy governs a request").
func unknownPolicyDiagnostics(path string, set *policy.Set, names []string) []policy.Diagnostic {
	var out []policy.Diagnostic
	for _, name := range names {
		if set.Has(name) {
			continue
		}
		out = append(out, policy.Diagnostic{
			Severity: policy.SeverityError, File: path, Path: processor.MetadataPolicy,
			Message: fmt.Sprintf("%q names no policy of this set: corsproc would allow no CORS on the routes that send it (preflights get 403, the upstream's CORS headers are removed)", name),
			Fix:     "define the policy, or correct the route's grpc_initial_metadata (policies: " + strings.Join(set.Names(), ", ") + ")",
		})
	}
	return out
}

// routeNameDiagnostics returns a warning for each match.routes entry of set
// that Envoy Gateway cannot give a route (configcheck.EnvoyGatewayRouteName):
// such a policy is never selected by its routes there.
func routeNameDiagnostics(set *policy.Set) []policy.Diagnostic {
	var out []policy.Diagnostic
	for _, f := range set.Files() {
		pf, err := policyfile.Decode(f.Name, f.Data)
		if err != nil {
			continue // Load decoded it already; nothing new to say
		}
		for i, p := range pf.GetPolicies() {
			for j, route := range p.GetMatch().GetRoutes() {
				if configcheck.EnvoyGatewayRouteName.MatchString(route) {
					continue
				}
				out = append(out, policy.Diagnostic{
					Severity: policy.SeverityWarning, File: f.Name, Path: fmt.Sprintf("policies[%d].match.routes[%d]", i, j),
					Message: fmt.Sprintf("%q is no Envoy Gateway route name (those are httproute/<namespace>/<name>/rule/<i>/match/<j>/<host with dots as underscores>): policy %q is never selected by it", route, p.GetName()),
					Fix:     "select by match.hosts and match.path_prefixes (docs/envoy-gateway.md, \"Route names\")",
				})
			}
		}
	}
	return out
}

// singleMessageDiagnostics returns an error for each reason set does not
// fit Envoy's single-message mode as envoy/envoy-single-message.yaml runs it:
// there the header_mutation filter removes the upstream's CORS headers from
// every response, and Envoy cannot make that depend on corsproc's answer
// (docs/envoy.md, "Single-message mode"). So every request must be governed
// by a policy in enforce mode: a set without default_policy leaves requests
// no policy selects ungoverned, and a shadow-mode policy must change nothing.
func singleMessageDiagnostics(set *policy.Set) []policy.Diagnostic {
	var out []policy.Diagnostic
	hasDefault := false
	for _, f := range set.Files() {
		pf, err := policyfile.Decode(f.Name, f.Data)
		if err != nil {
			continue // Load decoded it already; nothing new to say
		}
		if pf.GetDefaultPolicy() != "" {
			hasDefault = true
		}
		for i, p := range pf.GetPolicies() {
			if p.GetMode() != corsprocv1.Mode_MODE_SHADOW {
				continue
			}
			out = append(out, policy.Diagnostic{
				Severity: policy.SeverityError, File: f.Name, Path: fmt.Sprintf("policies[%d].mode", i),
				Message: fmt.Sprintf("policy %q is in shadow mode, which must change nothing, but in single-message mode Envoy's header_mutation filter removes the upstream's CORS headers from its responses", p.GetName()),
				Fix:     "use the response-phase config (envoy/envoy.yaml) while the policy is in shadow mode, or put the header_mutation filter's mutations only on the routes of enforce-mode policies (docs/envoy.md, \"Single-message mode\")",
			})
		}
	}
	if !hasDefault {
		out = append(out, policy.Diagnostic{
			Severity: policy.SeverityError, File: set.Source(), Path: "default_policy",
			Message: "no default_policy: requests no policy selects are ungoverned, and in single-message mode Envoy's header_mutation filter removes the upstream's CORS headers from their responses",
			Fix:     "add a default_policy, or put the header_mutation filter's mutations only on the routes your policies govern (docs/envoy.md, \"Single-message mode\")",
		})
	}
	return out
}

// jsonDiagnostic is a Diagnostic as check and the tools reading it see it.
type jsonDiagnostic struct {
	Severity string `json:"severity"`
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	Path     string `json:"path,omitempty"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

func toJSONDiagnostic(d policy.Diagnostic) jsonDiagnostic {
	return jsonDiagnostic{Severity: d.Severity.String(), File: d.File, Line: d.Line, Column: d.Column, Path: d.Path, Message: d.Message, Fix: d.Fix}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if word == "policy" {
		return fmt.Sprintf("%d policies", n)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
