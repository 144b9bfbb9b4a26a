package policyfile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/corsproc/corsproc/policy"
	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"
)

// Unreachable returns a warning for each policy of the policy files of a
// set (Set.Files, in load order) that only the gRPC stream metadata
// x-corsproc-policy can select (docs/policy.md, "Which policy governs a
// request"): one without match.routes, hosts, path_prefixes or urls_regex
// that is not the default_policy, and one whose hosts and paths an earlier
// policy without routes always matches first. A policy named in metadata,
// the names the Envoy routes send (corsproc check --metadata-policy), is
// reachable.
//
// The files may have errors: a policy with a decoding error is left out,
// as its match may be what failed, and nothing is said when the files'
// default_policy or list of policies failed to decode or a bound was
// crossed.
func Unreachable(files []policy.File, metadata []string) []policy.Diagnostic {
	type placed struct {
		p    *corsprocv1.Policy
		path string
		file *decoded
	}
	var all []placed
	def := ""
	var b budget
	for _, f := range files {
		d := decode(f.Name, f.Data, &b)
		if d.pf == nil || d.capped {
			return nil
		}
		bad := map[string]bool{}
		for _, e := range d.list {
			if e.Severity != policy.SeverityError {
				continue
			}
			p := e.Path
			if p == "" || p == "policies" || p == "default_policy" {
				return nil
			}
			if i := strings.IndexByte(p, ']'); strings.HasPrefix(p, "policies[") && i > 0 {
				bad[p[:i+1]] = true
			}
		}
		if name := d.pf.GetDefaultPolicy(); name != "" {
			def = name
		}
		for i, p := range d.pf.GetPolicies() {
			if path := item("policies", i); !bad[path] {
				all = append(all, placed{p: p, path: path, file: d})
			}
		}
	}
	var out []policy.Diagnostic
	var matchers []placed // policies selected by host and path, so far
	for _, pl := range all {
		name, m := pl.p.GetName(), pl.p.GetMatch()
		if len(m.GetRoutes()) > 0 {
			continue
		}
		given := len(m.GetHosts()) > 0 || len(m.GetPathPrefixes()) > 0 || m.GetUrlsRegex() != ""
		var msg, fix, at string
		switch {
		case slices.Contains(metadata, name):
			continue
		case !given && name == def:
			continue
		case !given:
			at = pl.path
			msg = fmt.Sprintf("policy %q has no match and is not the default_policy: no route, host or path selects it; only a stream whose metadata x-corsproc-policy is %q does", name, name)
			fix = fmt.Sprintf("add a match (routes, hosts, path_prefixes or urls_regex), or name it in default_policy; if Envoy routes send x-corsproc-policy: %s, say so with --metadata-policy %s", name, name)
		default:
			i := slices.IndexFunc(matchers, func(e placed) bool { return covers(e.p.GetMatch(), m) })
			if i < 0 {
				matchers = append(matchers, pl)
				continue
			}
			e := matchers[i]
			where := ""
			if e.file != pl.file {
				where = " in " + e.file.file
			}
			at = pl.path + ".match"
			msg = fmt.Sprintf("policy %q is never selected by its match: policy %q (%s%s), earlier in file order, matches every host and path it matches, and the first policy that matches wins; only a stream whose metadata x-corsproc-policy is %q selects it", name, e.p.GetName(), e.path, where, name)
			fix = fmt.Sprintf("narrow the match of %q or move %q before it; if Envoy routes send x-corsproc-policy: %s, say so with --metadata-policy %s", e.p.GetName(), name, name, name)
		}
		fix += ` (docs/policy.md, "Which policy governs a request")`
		d := policy.Diagnostic{Severity: policy.SeverityWarning, File: pl.file.file, Path: at, Message: msg, Fix: fix}
		d.Locate(pl.file.positions)
		out = append(out, d)
	}
	return out
}

// covers reports whether every request that match m selects, a match
// without routes, also satisfies match e, a match without routes: each of
// e's conditions (docs/policy.md, "Which policy governs a request") holds wherever m's do.
func covers(e, m *corsprocv1.Match) bool {
	if hosts := e.GetHosts(); len(hosts) > 0 {
		if len(m.GetHosts()) == 0 {
			return false
		}
		for _, h := range m.GetHosts() {
			if !slices.ContainsFunc(hosts, func(eh string) bool { return hostCovers(eh, h) }) {
				return false
			}
		}
	}
	if prefixes := e.GetPathPrefixes(); len(prefixes) > 0 {
		if len(m.GetPathPrefixes()) == 0 {
			return false
		}
		for _, p := range m.GetPathPrefixes() {
			if !slices.ContainsFunc(prefixes, func(ep string) bool { return strings.HasPrefix(p, ep) }) {
				return false
			}
		}
	}
	return e.GetUrlsRegex() == "" || e.GetUrlsRegex() == m.GetUrlsRegex()
}

// hostCovers reports whether the hosts entry e matches every host that the
// entry h matches: the same entry, or a wildcard *.base whose base is
// above h's host (for h a wildcard *.sub, above sub).
func hostCovers(e, h string) bool {
	e, h = strings.ToLower(e), strings.ToLower(h)
	if e == h {
		return true
	}
	base, ok := strings.CutPrefix(e, "*.")
	if !ok {
		return false
	}
	host := strings.TrimPrefix(h, "*.")
	return strings.HasSuffix(host, "."+base)
}
