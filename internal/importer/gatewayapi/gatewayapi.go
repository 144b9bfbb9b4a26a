// Package gatewayapi imports the CORS of Gateway API HTTPRoutes (the CORS
// filter of a rule, sigs.k8s.io/gateway-api v1.6) and of Envoy Gateway
// SecurityPolicies (spec.cors, gateway.envoyproxy.io/v1alpha1, attached by
// targetRefs, targetRef or targetSelectors to HTTPRoutes, their rules,
// Gateways and their listeners) into corsproc policies: one per HTTPRoute
// rule that gets a CORS configuration, selected by the route's hostnames
// and its path matches, which every Gateway API implementation serves
// alike.
//
// Origins, methods, headers and the preflight cache follow Envoy Gateway's
// translation into Envoy's CORS filter (Translator.processCORSFilter in
// internal/gatewayapi/filters.go, Translator.buildCORS in
// internal/gatewayapi/securitypolicy.go, patchRoute in
// internal/xds/translator/cors.go, Envoy Gateway 1.9.0), converted by what
// browsers then allow. docs/migrating-istio-gateway-api.md describes the
// conversion and every difference.
package gatewayapi

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/corsproc/corsproc/internal/importer"
	"github.com/corsproc/corsproc/internal/importer/kubecors"
)

// SourceName names the source in the generated file and in corsproc
// import's arguments.
const SourceName = "gateway-api"

const (
	gatewayGroup = "gateway.networking.k8s.io"
	egGroup      = "gateway.envoyproxy.io"
)

// DefaultMaxAge is the CRD default of an HTTPCORSFilter's maxAge
// (+kubebuilder:default=5 in apis/v1/httproute_types.go).
const DefaultMaxAge = 5

// Read is the source's importer.Reader: it reads the Kubernetes objects of
// every file (YAML or JSON: one object, several documents, or a List as
// kubectl get -o yaml writes it) and returns a policy for every HTTPRoute
// rule that has a CORS filter or a SecurityPolicy's cors, in the order of
// Gateway API's route precedence. Gateways are read for their listeners'
// hostnames; other kinds are ignored. The error is for a file that is not
// YAML or is too large.
func Read(files []importer.File) (*importer.RuleSet, error) {
	rs, objs, err := kubecors.Read(SourceName, files)
	if err != nil {
		return nil, err
	}
	r := &reader{w: &kubecors.Walker{}, objs: objs}
	r.build(rs)
	return rs, nil
}

type reader struct {
	w     *kubecors.Walker
	objs  []*kubecors.Object
	warns []importer.Warning

	gateways map[string]*gateway // by namespace/name
	routes   []*route
	// SecurityPolicies with cors by what they target, the oldest first.
	byRule, byRoute, byListener, byGateway map[string]*secPolicy
}

type gateway struct {
	obj       *kubecors.Object
	listeners map[string]importer.Value // hostname by listener name; S "" for none
	order     []string
	attached  bool // an HTTPRoute of the input attaches to it
}

type route struct {
	obj   *kubecors.Object
	ns    string
	hosts importer.List
	// parents are the Gateways (namespace/name) and listener names
	// ("" for every listener) the route attaches to.
	parents []parentRef
	rules   []*yaml.Node
}

type parentRef struct{ gw, section string }

// secPolicy is a SecurityPolicy with cors.
type secPolicy struct {
	obj  *kubecors.Object
	cors *yaml.Node
	key  *yaml.Node
	used bool
}

func (r *reader) warn(src importer.Source, code importer.Code, msg, fix string) *importer.Warning {
	r.warns = append(r.warns, importer.At(src, code, msg, fix))
	return &r.warns[len(r.warns)-1]
}

func (r *reader) leftOut(src importer.Source, msg, fix string) {
	r.warns = append(r.warns, importer.LeftOutAt(src, msg, fix))
}

func (r *reader) build(rs *importer.RuleSet) {
	w := r.w
	r.gateways = map[string]*gateway{}
	r.byRule, r.byRoute, r.byListener, r.byGateway = map[string]*secPolicy{}, map[string]*secPolicy{}, map[string]*secPolicy{}, map[string]*secPolicy{}
	var policies []*kubecors.Object
	for _, o := range r.objs {
		w.File = o.File
		switch {
		case o.Group() == gatewayGroup && o.Kind == "Gateway":
			g := &gateway{obj: o, listeners: map[string]importer.Value{}}
			for _, l := range w.Seq(w.Get(w.Get(o.Node, "spec"), "listeners")) {
				name, _ := w.Str(w.Get(l, "name"))
				hk, hv := w.Field(l, "hostname")
				h, _ := w.Str(hv)
				g.listeners[name] = importer.Value{S: strings.ToLower(h), Src: o.Src(hk, "listeners[].hostname")}
				g.order = append(g.order, name)
			}
			r.gateways[o.NamespaceOr("default")+"/"+o.Name] = g
		case o.Group() == gatewayGroup && o.Kind == "HTTPRoute":
			r.routes = append(r.routes, r.route(o))
		case o.Group() == egGroup && o.Kind == "SecurityPolicy":
			policies = append(policies, o)
		}
	}
	// Envoy Gateway applies the oldest of the policies that target the
	// same thing, then by namespace and name (Resources.Sort in
	// internal/gatewayapi/resource/resource.go).
	slices.SortStableFunc(policies, func(a, b *kubecors.Object) int {
		return cmp.Or(cmp.Compare(a.CreationTimestamp, b.CreationTimestamp),
			cmp.Compare(a.NamespaceOr("default"), b.NamespaceOr("default")), cmp.Compare(a.Name, b.Name))
	})
	for _, o := range policies {
		r.securityPolicy(o)
	}
	for _, rt := range r.routes {
		for _, p := range rt.parents {
			if g := r.gateways[p.gw]; g != nil {
				g.attached = true
			}
		}
	}

	var pols []*importer.Policy
	for _, rt := range r.routes {
		pols = append(pols, r.routePolicies(rt)...)
	}
	// Gateway API's precedence among the routes of a host: an exact
	// hostname before a wildcard one, then the most specific path
	// (HTTPRoute's "Rule precedence" in apis/v1/httproute_types.go); a
	// stable sort keeps the input's order otherwise.
	slices.SortStableFunc(pols, func(a, b *importer.Policy) int {
		return cmp.Or(cmp.Compare(hostRank(a), hostRank(b)), cmp.Compare(pathRank(b), pathRank(a)))
	})
	pols = append(pols, r.gatewayPolicies()...)
	// A policy no host or path selects governs every request when it is
	// the only one; otherwise it is selected only by name.
	var empty []int
	for i, p := range pols {
		if len(p.Match.Hosts.Items) == 0 && len(p.Match.PathPrefixes.Items) == 0 && p.Match.URLsRegex.S == "" {
			empty = append(empty, i)
		}
	}
	if len(empty) == 1 {
		rs.DefaultPolicy = empty[0]
	}
	for _, i := range empty {
		if len(empty) > 1 {
			r.warn(pols[i].Src, importer.CodeDifference,
				"no host or path selects this policy (the route has no hostnames and matches every path), and other policies are in the same case: it is selected only by name (x-corsproc-policy)",
				"make one of them the default_policy, or give the routes hostnames")
		}
	}
	for _, sp := range allPolicies(r) {
		if !sp.used {
			r.warn(sp.obj.Src(sp.key, sp.obj.ID()+" cors"), importer.CodeDifference,
				"the SecurityPolicy's targets are not among the input, so the importer cannot tell which requests its cors governs: left out",
				"import it together with the HTTPRoutes and Gateways it targets")
		}
	}
	rs.Policies = pols
	rs.Warnings = append(rs.Warnings, r.warns...)
	if w.Over() {
		rs.Warnings = append(rs.Warnings, importer.LeftOutAt(importer.Source{}, "the objects hold more YAML nodes than the importer reads, aliases expanded: some are left out", "split the input"))
	}
}

// allPolicies returns every SecurityPolicy with cors that targets
// something, in input order.
func allPolicies(r *reader) []*secPolicy {
	seen := map[*secPolicy]bool{}
	var out []*secPolicy
	for _, m := range []map[string]*secPolicy{r.byRule, r.byRoute, r.byListener, r.byGateway} {
		for _, sp := range m {
			if !seen[sp] {
				seen[sp] = true
				out = append(out, sp)
			}
		}
	}
	slices.SortFunc(out, func(a, b *secPolicy) int {
		return cmp.Or(cmp.Compare(a.obj.File, b.obj.File), cmp.Compare(a.obj.Line, b.obj.Line))
	})
	return out
}

func hostRank(p *importer.Policy) int {
	best := 2
	for _, h := range p.Match.Hosts.Items {
		if strings.HasPrefix(h.S, "*.") {
			best = min(best, 1)
		} else {
			best = 0
		}
	}
	return best
}

// pathRank orders the policies of a host: a rule with exact or regex paths
// (a urls_regex) first, then the longest prefix.
func pathRank(p *importer.Policy) int {
	if p.Match.URLsRegex.S != "" {
		return 1 << 20
	}
	n := 0
	for _, v := range p.Match.PathPrefixes.Items {
		n = max(n, len(v.S))
	}
	return n
}

func (r *reader) route(o *kubecors.Object) *route {
	w := r.w
	spec := w.Get(o.Node, "spec")
	ns := o.NamespaceOr("default")
	rt := &route{obj: o, ns: ns}
	hk, hv := w.Field(spec, "hostnames")
	for _, h := range w.Seq(hv) {
		if s, ok := w.Str(h); ok && s != "" {
			rt.hosts.Add(importer.Value{S: strings.ToLower(s), Src: o.Src(hk, "hostnames")})
		}
	}
	for _, p := range w.Seq(w.Get(spec, "parentRefs")) {
		if kind, ok := w.Str(w.Get(p, "kind")); ok && kind != "Gateway" {
			continue
		}
		name, _ := w.Str(w.Get(p, "name"))
		pns, ok := w.Str(w.Get(p, "namespace"))
		if !ok {
			pns = ns
		}
		sec, _ := w.Str(w.Get(p, "sectionName"))
		rt.parents = append(rt.parents, parentRef{gw: pns + "/" + name, section: sec})
	}
	rt.rules = w.Seq(w.Get(spec, "rules"))
	return rt
}

// securityPolicy records what a SecurityPolicy with cors targets.
func (r *reader) securityPolicy(o *kubecors.Object) {
	w := r.w
	w.File = o.File
	spec := w.Get(o.Node, "spec")
	ck, cors := w.Field(spec, "cors")
	if cors == nil {
		return
	}
	ns := o.NamespaceOr("default")
	sp := &secPolicy{obj: o, cors: cors, key: ck}
	type target struct {
		kind, name, section string
		src                 importer.Source
	}
	var targets []target
	refs := w.Seq(w.Get(spec, "targetRefs"))
	if one := w.Get(spec, "targetRef"); one != nil {
		refs = append(refs, one)
	}
	for _, t := range refs {
		kind, _ := w.Str(w.Get(t, "kind"))
		name, _ := w.Str(w.Get(t, "name"))
		sec, _ := w.Str(w.Get(t, "sectionName"))
		targets = append(targets, target{kind, name, sec, o.Src(t, "targetRefs")})
	}
	for _, sel := range w.Seq(w.Get(spec, "targetSelectors")) {
		kind, _ := w.Str(w.Get(sel, "kind"))
		if w.Get(sel, "matchExpressions") != nil {
			r.leftOut(o.Src(sel, "targetSelectors[].matchExpressions"),
				"matchExpressions are not read: the objects they select do not get this policy's cors", "use targetRefs, or matchLabels")
		}
		labels := w.Get(sel, "matchLabels")
		want := map[string]string{}
		for _, k := range w.Keys(labels) {
			v, _ := w.Str(w.Get(labels, k.Value))
			want[k.Value] = v
		}
		for _, obj := range r.objs {
			if obj.Kind != kind || obj.Group() != gatewayGroup || obj.NamespaceOr("default") != ns || len(want) == 0 && labels == nil {
				continue
			}
			match := true
			for k, v := range want {
				if obj.Labels[k] != v {
					match = false
				}
			}
			if match {
				targets = append(targets, target{kind, obj.Name, "", o.Src(sel, "targetSelectors")})
			}
		}
	}
	for _, t := range targets {
		var m map[string]*secPolicy
		k := ns + "/" + t.name
		switch {
		case t.kind == "HTTPRoute" && t.section != "":
			m, k = r.byRule, k+"/"+t.section
		case t.kind == "HTTPRoute":
			m = r.byRoute
		case t.kind == "Gateway" && t.section != "":
			m, k = r.byListener, k+"/"+t.section
		case t.kind == "Gateway":
			m = r.byGateway
		default:
			r.leftOut(t.src, fmt.Sprintf("cors on a %s is not imported: only HTTPRoutes and Gateways", cmp.Or(t.kind, "target without kind")),
				"write the policy for the HTTPRoutes by hand")
			continue
		}
		if first := m[k]; first != nil && first.obj != o {
			r.warn(t.src, importer.CodeConflict, fmt.Sprintf(
				"%s %s is also the target of %s (%s), which is older or sorts first: Envoy Gateway applies that one and marks this one Conflicted, so its cors is left out here too",
				t.kind, strings.TrimPrefix(k, ns+"/"), first.obj.ID(), first.obj.Src(first.key, "").Pos()),
				"delete the SecurityPolicy you do not want, or target different objects")
			continue
		}
		m[k] = sp
	}
}

// source is where a rule's CORS comes from.
type source struct {
	filter *yaml.Node // the CORS filter's cors object
	fkey   *yaml.Node
	sp     *secPolicy
	scope  string // for the policy's name: the rule, route, listener or gateway
}

// routePolicies returns a policy for each rule of rt that has CORS, and
// for each distinct source of it among the route's parents.
func (r *reader) routePolicies(rt *route) []*importer.Policy {
	w, o := r.w, rt.obj
	w.File = o.File
	var out []*importer.Policy
	for i, rule := range rt.rules {
		ruleName, _ := w.Str(w.Get(rule, "name"))
		var filter, fkey *yaml.Node
		for _, f := range w.Seq(w.Get(rule, "filters")) {
			if t, _ := w.Str(w.Get(f, "type")); t == "CORS" {
				if filter != nil {
					r.warn(o.Src(f, "filters[].cors"), importer.CodeDifference, "a second CORS filter in one rule: Envoy Gateway keeps the last, as the importer does", "keep one CORS filter per rule")
				}
				fkey, filter = w.Field(f, "cors")
				if filter == nil {
					fkey = f
				}
			}
		}
		// The source of each parent: the rule's filter, else the
		// SecurityPolicy of the rule, of the route, of the listener, of
		// the Gateway (the order of Translator.ProcessSecurityPolicies,
		// internal/gatewayapi/securitypolicy.go).
		type group struct {
			src     source
			parents []parentRef
		}
		var groups []*group
		parents := rt.parents
		if len(parents) == 0 {
			parents = []parentRef{{}}
		}
		for _, p := range parents {
			var s source
			switch {
			case filter != nil:
				s = source{filter: filter, fkey: fkey, scope: "filter"}
			case ruleName != "" && r.byRule[rt.ns+"/"+o.Name+"/"+ruleName] != nil:
				s = source{sp: r.byRule[rt.ns+"/"+o.Name+"/"+ruleName]}
			case r.byRoute[rt.ns+"/"+o.Name] != nil:
				s = source{sp: r.byRoute[rt.ns+"/"+o.Name]}
			case p.section != "" && r.byListener[p.gw+"/"+p.section] != nil:
				s = source{sp: r.byListener[p.gw+"/"+p.section]}
			case r.byGateway[p.gw] != nil:
				s = source{sp: r.byGateway[p.gw]}
			default:
				continue
			}
			found := false
			for _, g := range groups {
				if g.src == s {
					g.parents = append(g.parents, p)
					found = true
				}
			}
			if !found {
				groups = append(groups, &group{src: s, parents: []parentRef{p}})
			}
		}
		for _, g := range groups {
			ruleID := fmt.Sprintf("rules[%d]", i)
			if ruleName != "" {
				ruleID = fmt.Sprintf("rules[%d] (%s)", i, ruleName)
			}
			p := &importer.Policy{Name: rt.ns + "." + o.Name + "." + cmp.Or(ruleName, fmt.Sprintf("rule-%d", i)), Vary: importer.VaryMissing}
			if g.src.sp != nil {
				g.src.sp.used = true
				sp := g.src.sp
				p.Src = sp.obj.Src(sp.key, fmt.Sprintf("%s cors, for HTTPRoute %s/%s %s", sp.obj.ID(), rt.ns, o.Name, ruleID))
				p.VarySrc = sp.obj.Src(sp.key, "cors")
				r.policyCORS(p, sp.obj, sp.key, sp.cors)
			} else {
				p.Src = o.Src(g.src.fkey, fmt.Sprintf("HTTPRoute %s/%s %s CORS filter", rt.ns, o.Name, ruleID))
				p.VarySrc = o.Src(g.src.fkey, "cors")
				r.filterCORS(p, o, g.src.fkey, g.src.filter)
			}
			r.match(p, rt, rule, g.parents)
			if len(groups) > 1 {
				p.Name += "." + strings.ReplaceAll(g.parents[0].gw, "/", ".")
			}
			out = append(out, p)
		}
	}
	return out
}

// match sets the hosts (the route's hostnames, or its listeners') and the
// paths of the rule's matches.
func (r *reader) match(p *importer.Policy, rt *route, rule *yaml.Node, parents []parentRef) {
	w, o := r.w, rt.obj
	p.Match.Hosts = rt.hosts
	if len(rt.hosts.Items) == 0 {
		var hosts importer.List
		all := false
		for _, pr := range parents {
			g := r.gateways[pr.gw]
			if g == nil {
				all = true
				continue
			}
			for _, name := range g.order {
				if pr.section != "" && name != pr.section {
					continue
				}
				if v := g.listeners[name]; v.S != "" {
					hosts.Add(v)
				} else {
					all = true
				}
			}
		}
		if !all {
			p.Match.Hosts = hosts
		}
	}
	mk, mv := w.Field(rule, "matches")
	matches := w.Seq(mv)
	var paths []kubecors.Path
	every := len(matches) == 0
	var lost []string
	for _, m := range matches {
		pk, path := w.Field(m, "path")
		typ, _ := w.Str(w.Get(path, "type"))
		val, ok := w.Str(w.Get(path, "value"))
		if !ok {
			val = "/"
		}
		src := o.Src(pk, "matches[].path")
		switch typ {
		case "", "PathPrefix":
			// Gateway API ignores a trailing slash: /foo/ matches /foo.
			if v := strings.TrimRight(val, "/"); v == "" {
				every = true
			} else {
				paths = append(paths, kubecors.Path{Kind: kubecors.PathPrefix, Value: v, Src: src})
			}
		case "Exact":
			paths = append(paths, kubecors.Path{Kind: kubecors.PathExact, Value: val, Src: src})
		case "RegularExpression":
			if _, err := regexp.Compile(val); err != nil {
				r.leftOut(src, fmt.Sprintf("%q is not an RE2 regex: the policy selects every path of the hosts", val), "correct the regex")
				every = true
				continue
			}
			paths = append(paths, kubecors.Path{Kind: kubecors.PathRegex, Value: val, Src: src})
		default:
			every = true
			r.leftOut(src, fmt.Sprintf("a path match of type %q: the policy selects every path of the hosts", typ), "write PathPrefix, Exact or RegularExpression")
		}
		for _, k := range w.Keys(m) {
			if k.Value != "path" {
				lost = append(lost, k.Value)
			}
		}
	}
	kubecors.SetPaths(&p.Match, paths, every)
	if len(lost) > 0 {
		slices.Sort(lost)
		r.warn(o.Src(mk, "matches"), importer.CodeDifference, fmt.Sprintf(
			"the rule also matches on %s, which a corsproc match cannot say: the policy selects every request to its hosts and paths", strings.Join(slices.Compact(lost), ", ")),
			"if other rules for these hosts and paths have other CORS rules, select them with x-corsproc-policy on their routes")
	}
}

// gatewayPolicies returns a policy for each SecurityPolicy on a Gateway
// or listener that no HTTPRoute of the input attaches to: it governs the
// routes the input does not hold, selected by the listeners' hostnames.
func (r *reader) gatewayPolicies() []*importer.Policy {
	var out []*importer.Policy
	// Policies on listeners first: a listener's policy displaces its
	// Gateway's there (Translator.ProcessSecurityPolicies).
	keys := make([]string, 0, len(r.byGateway)+len(r.byListener))
	for k := range r.byListener {
		keys = append(keys, "0"+k)
	}
	for k := range r.byGateway {
		keys = append(keys, "1"+k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var sp *secPolicy
		gwKey, section := k[1:], ""
		if k[0] == '0' {
			sp = r.byListener[gwKey]
			i := strings.LastIndexByte(gwKey, '/')
			gwKey, section = gwKey[:i], gwKey[i+1:]
		} else {
			sp = r.byGateway[gwKey]
		}
		g := r.gateways[gwKey]
		if g != nil && g.attached {
			continue // its routes have their policies
		}
		sp.used = true
		w := r.w
		w.File = sp.obj.File
		target := gwKey
		if section != "" {
			target += "/" + section
		}
		p := &importer.Policy{Name: strings.ReplaceAll(target, "/", "."), Vary: importer.VaryMissing,
			Src:     sp.obj.Src(sp.key, fmt.Sprintf("%s cors, for Gateway %s", sp.obj.ID(), target)),
			VarySrc: sp.obj.Src(sp.key, "cors")}
		r.policyCORS(p, sp.obj, sp.key, sp.cors)
		all := g == nil
		if g != nil {
			for _, name := range g.order {
				if section != "" && name != section || section == "" && r.byListener[gwKey+"/"+name] != nil {
					continue
				}
				if v := g.listeners[name]; v.S != "" {
					p.Match.Hosts.Add(v)
				} else {
					all = true
				}
			}
		}
		if all {
			p.Match.Hosts = importer.List{}
			r.warn(p.Src, importer.CodeDifference,
				"the Gateway's routes are not among the input and its listeners have no hostname (or the Gateway is not among the input either), so no host or path selects this policy",
				"import the HTTPRoutes too")
		}
		out = append(out, p)
	}
	return out
}
