// Package istio imports the CORS policies of Istio VirtualServices
// (spec.http[].corsPolicy) into corsproc policies, one per HTTP route that
// has one, selected by the Envoy route name Istio gives the route and by
// the VirtualService's hosts and the route's URI prefixes.
//
// Istio turns a corsPolicy into the configuration of Envoy's CORS filter
// (TranslateCORSPolicy in pilot/pkg/networking/core/route/route.go, Istio
// 1.29 to 1.31); every value is converted by what browsers then allow,
// and every place where Istio and corsproc differ is a warning at its
// line.
// docs/migrating-istio-gateway-api.md describes the conversion.
package istio

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/corsproc/corsproc/internal/importer"
	"github.com/corsproc/corsproc/internal/importer/kubecors"
)

// SourceName names the source in the generated file and in corsproc
// import's arguments.
const SourceName = "istio"

// ClusterDomain is the Kubernetes cluster domain short host names are
// resolved in, as istiod does by default.
const ClusterDomain = "cluster.local"

// Read is the source's importer.Reader: it reads the Kubernetes objects of
// every file (YAML or JSON: one object, several documents, or a List as
// kubectl get -o yaml writes it) and returns the policies of their
// VirtualServices, in the order of the files and of the routes in each.
// Objects of other kinds are ignored, but for the VirtualServices that
// delegate routes (http[].delegate) and the AuthorizationPolicies and
// RequestAuthentications that preflights reach, which may be in any of
// the files. The error is for a file that is not YAML or is too large.
func Read(files []importer.File) (*importer.RuleSet, error) {
	rs, objs, err := kubecors.Read(SourceName, files)
	if err != nil {
		return nil, err
	}
	im := &reader{objs: objs}
	im.build(rs)
	return rs, nil
}

type reader struct {
	objs []*kubecors.Object
}

func isVirtualService(o *kubecors.Object) bool {
	return o.Kind == "VirtualService" && o.Group() == "networking.istio.io"
}

// build adds the policies of the VirtualServices, and the warnings on
// them, to rs.
func (im *reader) build(rs *importer.RuleSet) {
	w := &kubecors.Walker{}
	delegators := im.delegators(w)
	var corsSrcs []importer.Source
	for _, o := range im.objs {
		if !isVirtualService(o) {
			continue
		}
		w.File = o.File
		c := &vsConv{w: w, o: o, delegators: delegators}
		c.convert()
		rs.Policies = append(rs.Policies, c.pols...)
		rs.Warnings = append(rs.Warnings, c.warns...)
		for _, p := range c.pols {
			corsSrcs = append(corsSrcs, p.Src)
		}
		if w.Over() {
			rs.Warnings = append(rs.Warnings, importer.LeftOutAt(o.Src(o.Node, o.ID()),
				"the objects hold more YAML nodes than the importer reads, aliases expanded: the rest of the VirtualServices are left out", "split the input"))
			break
		}
	}
	if len(corsSrcs) > 0 {
		rs.Warnings = append(rs.Warnings, im.authWarnings(w)...)
	}
	// A policy that no route, host or path selects (an unnamed route of
	// hosts: ["*"] that matches every path) governs every request when it
	// is the only one; otherwise it is selected only by name.
	var empty []int
	for i, p := range rs.Policies {
		m := p.Match
		if len(m.Routes.Items) == 0 && len(m.Hosts.Items) == 0 && len(m.PathPrefixes.Items) == 0 && m.URLsRegex.S == "" {
			empty = append(empty, i)
		}
	}
	if len(empty) == 1 {
		rs.DefaultPolicy = empty[0]
	}
	for _, i := range empty {
		if len(empty) > 1 {
			rs.Warnings = append(rs.Warnings, importer.At(rs.Policies[i].Src, importer.CodeDifference,
				"no route name, host or path selects this policy (an unnamed route of every host and path), and other policies are in the same case: it is selected only by name (x-corsproc-policy)",
				"name the routes (http[].name), or make one of them the default_policy"))
		}
	}
}

// delegators maps "namespace/name" of a delegate VirtualService to the
// hosts of the VirtualServices that delegate routes to it: a delegate has
// no hosts of its own (Istio's mergeVirtualServicesIfNeeded in
// pilot/pkg/model/virtualservice.go).
func (im *reader) delegators(w *kubecors.Walker) map[string][]hostRef {
	out := map[string][]hostRef{}
	for _, o := range im.objs {
		if !isVirtualService(o) {
			continue
		}
		w.File = o.File
		spec := w.Get(o.Node, "spec")
		for _, http := range w.Seq(w.Get(spec, "http")) {
			d := w.Get(http, "delegate")
			if d == nil {
				continue
			}
			rootName, _ := w.Str(w.Get(http, "name"))
			name, _ := w.Str(w.Get(d, "name"))
			ns, ok := w.Str(w.Get(d, "namespace"))
			if !ok {
				ns = o.NamespaceOr("default")
			}
			for _, h := range w.Seq(w.Get(spec, "hosts")) {
				if s, ok := w.Str(h); ok {
					out[ns+"/"+name] = append(out[ns+"/"+name], hostRef{host: s, obj: o, node: h, rootName: rootName})
				}
			}
		}
	}
	return out
}

type hostRef struct {
	host     string
	obj      *kubecors.Object
	node     *yaml.Node
	rootName string // the name of the delegating http route
}

// delegateName is the name Istio gives a delegate's route merged into the
// route that delegates to it (mergeHTTPRoute in
// pilot/pkg/model/virtualservice.go): the root's name, then "-" and the
// delegate's.
func delegateName(root, delegate string) string {
	switch {
	case delegate == "":
		return root
	case root == "":
		return delegate
	}
	return root + "-" + delegate
}

// authWarnings finds the authentication and authorization policies that
// preflights reach before Istio's CORS filter answers them: Istio puts
// its ext_authz (CUSTOM), jwt_authn (RequestAuthentication) and RBAC
// (AuthorizationPolicy) filters before the CORS filter
// (buildHTTPConnectionManager in pilot/pkg/networking/core/listener_builder.go,
// Istio 1.29 to 1.31).
func (im *reader) authWarnings(w *kubecors.Walker) []importer.Warning {
	var out []importer.Warning
	for _, o := range im.objs {
		if o.Group() != "security.istio.io" || o.Kind != "AuthorizationPolicy" && o.Kind != "RequestAuthentication" {
			continue
		}
		wn := importer.At(o.Src(o.Node, o.ID()), importer.CodePreflightAuth,
			"Istio runs the filters of RequestAuthentication and AuthorizationPolicy before its CORS filter, so a preflight, which carries no credentials, reaches this policy before Istio's CORS answers it, and is refused if the policy requires a user or a token",
			"put corsproc first in the filter chain (it answers preflights before any authentication filter), or let OPTIONS requests through this policy until then")
		wn.Unsafe = true
		out = append(out, wn)
	}
	return out
}

// vsConv converts one VirtualService.
type vsConv struct {
	w          *kubecors.Walker
	o          *kubecors.Object
	delegators map[string][]hostRef
	pols       []*importer.Policy
	warns      []importer.Warning
}

func (c *vsConv) warn(src importer.Source, code importer.Code, msg, fix string) *importer.Warning {
	c.warns = append(c.warns, importer.At(src, code, msg, fix))
	return &c.warns[len(c.warns)-1]
}

func (c *vsConv) leftOut(src importer.Source, msg, fix string) {
	c.warns = append(c.warns, importer.LeftOutAt(src, msg, fix))
}

func (c *vsConv) convert() {
	w, o := c.w, c.o
	spec := w.Get(o.Node, "spec")
	ns := o.NamespaceOr("default")
	id := fmt.Sprintf("VirtualService %s/%s", ns, o.Name)
	hosts := c.hosts(spec, ns, id)
	var earlier []earlierRoute // routes before this one, for the selection warning
	for j, http := range w.Seq(w.Get(spec, "http")) {
		routeName, _ := w.Str(w.Get(http, "name"))
		ck, cors := w.Field(http, "corsPolicy")
		if cors == nil || cors.Kind != yaml.MappingNode {
			if cors != nil && !(cors.Kind == yaml.ScalarNode && cors.Tag == "!!null") {
				c.leftOut(o.Src(ck, "corsPolicy"), fmt.Sprintf("corsPolicy is %s, not an object: left out", kubecors.Describe(cors)), "")
			}
			paths, every := c.uriPaths(http)
			earlier = append(earlier, earlierRoute{index: j, line: http.Line, paths: paths, every: every})
			continue
		}
		key := fmt.Sprintf("%s http[%d]", id, j)
		if routeName != "" {
			key = fmt.Sprintf("%s http[%d] (%s)", id, j, routeName)
		}
		p := &importer.Policy{
			Name: ns + "." + o.Name + "." + cmpOr(routeName, fmt.Sprintf("http-%d", j)),
			Src:  o.Src(ck, key),
			Vary: importer.VaryMissing, VarySrc: o.Src(ck, "corsPolicy"),
		}
		names := []string{routeName}
		if refs := c.delegators[ns+"/"+o.Name]; len(refs) > 0 && len(w.Seq(w.Get(spec, "hosts"))) == 0 {
			names = nil
			for _, ref := range refs {
				if n := delegateName(ref.rootName, routeName); !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
		if dk, d := w.Field(http, "delegate"); d != nil {
			// The delegate's routes take this corsPolicy when they have none
			// (mergeHTTPRoute), under names made of both routes' names:
			// hosts and paths select them.
			names = []string{""}
			c.warn(o.Src(dk, "delegate"), importer.CodeDifference,
				"the route delegates to another VirtualService, whose routes without a corsPolicy of their own take this one under their own route names: the policy selects them by host and path",
				"give the delegate's routes this corsPolicy, so that their policies are selected by route name")
		}
		c.match(p, http, hosts, names, earlier)
		c.cors(p, ck, cors)
		c.pols = append(c.pols, p)
		earlier = append(earlier, earlierRoute{index: j, line: http.Line, cors: true})
	}
}

type earlierRoute struct {
	index, line int
	cors        bool
	paths       []kubecors.Path
	every       bool
}

// uriPaths returns the path conditions of a route's matches; every is set
// when some match has none.
func (c *vsConv) uriPaths(http *yaml.Node) (paths []kubecors.Path, every bool) {
	w := c.w
	matches := w.Seq(w.Get(http, "match"))
	every = len(matches) == 0
	for _, m := range matches {
		uri := w.Get(m, "uri")
		if uri == nil {
			every = true
			continue
		}
		ic, _ := w.Bool(w.Get(m, "ignoreUriCase"))
		for _, k := range []struct {
			key  string
			kind kubecors.PathKind
		}{{"prefix", kubecors.PathPrefix}, {"exact", kubecors.PathExact}, {"regex", kubecors.PathRegex}} {
			if v, ok := w.Str(w.Get(uri, k.key)); ok {
				paths = append(paths, kubecors.Path{Kind: k.kind, Value: v, IgnoreCase: ic})
				break
			}
		}
	}
	return paths, every
}

// overlap reports whether two routes' paths may select the same request.
func overlap(a []kubecors.Path, everyA bool, b []kubecors.Path, everyB bool) bool {
	if everyA || everyB {
		return true
	}
	for _, pa := range a {
		for _, pb := range b {
			x, y := pa.Value, pb.Value
			if pa.IgnoreCase || pb.IgnoreCase {
				x, y = strings.ToLower(x), strings.ToLower(y)
			}
			switch {
			case pa.Kind == kubecors.PathRegex || pb.Kind == kubecors.PathRegex:
				return true
			case pa.Kind == kubecors.PathPrefix && pb.Kind == kubecors.PathPrefix:
				if strings.HasPrefix(x, y) || strings.HasPrefix(y, x) {
					return true
				}
			case pa.Kind == kubecors.PathPrefix:
				if strings.HasPrefix(y, x) {
					return true
				}
			case pb.Kind == kubecors.PathPrefix:
				if strings.HasPrefix(x, y) {
					return true
				}
			case x == y:
				return true
			}
		}
	}
	return false
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// hosts returns the names the VirtualService's routes answer, as corsproc
// matches them (:authority without port).
func (c *vsConv) hosts(spec *yaml.Node, ns, id string) importer.List {
	w, o := c.w, c.o
	hk, hv := w.Field(spec, "hosts")
	var l importer.List
	if hk != nil {
		l.Src = o.Src(hk, "hosts")
	}
	seqHosts := w.Seq(hv)
	if len(seqHosts) == 0 {
		// A delegate: the hosts of the VirtualServices that delegate to it.
		for _, ref := range c.delegators[ns+"/"+o.Name] {
			l.Add(importer.Value{S: strings.ToLower(ref.host), Src: ref.obj.Src(ref.node, "hosts (delegating "+ref.obj.ID()+")")})
		}
		if len(l.Items) > 0 {
			return c.expand(l, ns)
		}
		if hk == nil {
			c.warn(o.Src(o.Node, id), importer.CodeDifference,
				"the VirtualService has no hosts and no VirtualService among the input delegates to it: its policies are selected by route name and path only",
				"import it together with the VirtualService that delegates to it")
		}
		return importer.List{}
	}
	for _, h := range seqHosts {
		s, ok := w.Str(h)
		if !ok || s == "" {
			continue
		}
		if s == "*" {
			// Every host: no host restriction at all.
			return importer.List{}
		}
		// Warnings name the host's own line; the policy's comment names
		// the key.
		l.Items = append(l.Items, importer.Value{S: strings.ToLower(s), Src: o.Src(h, "hosts")})
	}
	out := c.expand(l, ns)
	for i := range out.Items {
		out.Items[i].Src = l.Src
	}
	return out
}

// expand resolves short names as Istio does (ResolveShortnameToFQDN in
// pilot/pkg/model/config.go: "reviews" in namespace shop is
// reviews.shop.svc.cluster.local) and adds the other names a sidecar's
// virtual host answers for a Kubernetes service (GenerateAltVirtualHosts
// in pilot/pkg/networking/core/httproute.go: reviews.shop and
// reviews.shop.svc).
func (c *vsConv) expand(l importer.List, ns string) importer.List {
	out := importer.List{Src: l.Src}
	seen := map[string]bool{}
	add := func(s string, src importer.Source) {
		if !seen[s] {
			seen[s] = true
			out.Items = append(out.Items, importer.Value{S: s, Src: src})
		}
	}
	suffix := ".svc." + ClusterDomain
	for _, v := range l.Items {
		h := v.S
		if !strings.Contains(h, ".") && !isIP(h) {
			fq := h + "." + ns + suffix
			c.warn(v.Src, importer.CodeDifference, fmt.Sprintf(
				"Istio resolves the short name %s in namespace %s to %s: the policy matches it and the names a sidecar answers for it (%s.%s, %s.%s.svc); a client in namespace %s may also send plain %s, which the policy does not match",
				h, ns, fq, h, ns, h, ns, ns, h),
				fmt.Sprintf("if your cluster's domain is not %s, correct the hosts; add %s if that client is a browser", ClusterDomain, h))
			h = fq
		}
		add(h, v.Src)
		if base, ok := strings.CutSuffix(h, suffix); ok && strings.Count(base, ".") == 1 {
			add(base, v.Src)
			add(base+".svc", v.Src)
		}
	}
	return out
}

func isIP(h string) bool {
	return strings.Contains(h, ":") || strings.Trim(h, "0123456789.") == "" && h != ""
}

// match sets the policy's match: the route names Istio gives the route's
// Envoy routes (TranslateRoute in pilot/pkg/networking/core/route/route.go:
// http[].name, then "." and match[].name when the match has one), the
// VirtualService's hosts, and the URI prefixes of the route's matches.
func (c *vsConv) match(p *importer.Policy, http *yaml.Node, hosts importer.List, routeNames []string, earlier []earlierRoute) {
	w, o := c.w, c.o
	nk, _ := w.Field(http, "name")
	mk, mv := w.Field(http, "match")
	matches := w.Seq(mv)
	var routes importer.List
	addRoute := func(name string, src importer.Source) {
		for _, r := range routes.Items {
			if r.S == name {
				return
			}
		}
		routes.Add(importer.Value{S: name, Src: src})
	}
	// Every Envoy route of the http route has a name when each name is
	// not empty: then the route names select exactly the requests Istio
	// gave this corsPolicy. Otherwise some requests of the route reach
	// Envoy under the route name "" and only hosts and paths can select
	// them.
	allNamed := true
	for _, routeName := range routeNames {
		if len(matches) == 0 {
			if routeName == "" {
				allNamed = false
			} else {
				addRoute(routeName, o.Src(nk, "http[].name"))
			}
		}
		for _, m := range matches {
			mn, _ := w.Str(w.Get(m, "name"))
			switch {
			case mn != "":
				addRoute(routeName+"."+mn, o.Src(m, "match[].name"))
			case routeName != "":
				addRoute(routeName, o.Src(nk, "http[].name"))
			default:
				allNamed = false
			}
		}
	}
	if allNamed {
		p.Match.Routes = routes
	}
	p.Match.Hosts = hosts

	var paths []kubecors.Path
	every := len(matches) == 0
	var lost []string
	for _, m := range matches {
		uk, uri := w.Field(m, "uri")
		ignoreCase, _ := w.Bool(w.Get(m, "ignoreUriCase"))
		if uri == nil {
			every = true
		}
		for _, kind := range []struct {
			key  string
			kind kubecors.PathKind
		}{{"prefix", kubecors.PathPrefix}, {"exact", kubecors.PathExact}, {"regex", kubecors.PathRegex}} {
			if v := w.Get(uri, kind.key); v != nil {
				s, _ := w.Str(v)
				if kind.kind == kubecors.PathRegex {
					if _, err := regexp.Compile(s); err != nil {
						c.leftOut(o.Src(uk, "match[].uri.regex"), fmt.Sprintf("%q is not an RE2 regex Istio accepts: the policy selects every path of the hosts", s), "correct the regex")
						every = true
						break
					}
				}
				paths = append(paths, kubecors.Path{Kind: kind.kind, Value: s, IgnoreCase: ignoreCase, Src: o.Src(uk, "match[].uri."+kind.key)})
				break
			}
		}
		for _, k := range w.Keys(m) {
			switch k.Value {
			case "uri", "name", "ignoreUriCase":
			default:
				lost = append(lost, k.Value)
			}
		}
	}
	// Istio turns uri into the route's prefix, path or safe_regex, which
	// Envoy matches against the path without the query
	// (TranslateRouteMatch in pilot/pkg/networking/core/route/route.go).
	kubecors.SetPaths(&p.Match, paths, every)
	if allNamed {
		return
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		lost = slices.Compact(lost)
		c.warn(o.Src(mk, "match"), importer.CodeDifference, fmt.Sprintf(
			"the route also matches on %s, which a corsproc match cannot say: the policy selects every request to its hosts and paths", strings.Join(lost, ", ")),
			"name the route (http[].name) so that the policy selects it by route name")
	}
	for _, e := range earlier {
		if e.cors || !overlap(e.paths, e.every, paths, every) {
			continue // its own policy comes first, as Istio's route does
		}
		c.warn(o.Src(http, "http"), importer.CodeDifference, fmt.Sprintf(
			"the route has no name, so the policy selects it by host and path; requests that Istio sends to the route before it (http[%d], line %d, which has no corsPolicy) are selected too when their host and path match",
			e.index, e.line), "name the route (http[].name) so that the policy selects it by route name")
		break
	}
}

// corsKeys are the fields of Istio's CorsPolicy (networking/v1alpha3,
// istio/api 1.30 and 1.31): the JSON names, as Kubernetes stores them.
var corsKeys = []string{"allowOrigin", "allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders", "maxAge", "allowCredentials", "unmatchedPreflights"}

func (c *vsConv) cors(p *importer.Policy, ck, cors *yaml.Node) {
	w, o := c.w, c.o
	for _, k := range w.Keys(cors) {
		if !slices.Contains(corsKeys, k.Value) {
			c.leftOut(o.Src(k, "corsPolicy."+k.Value), fmt.Sprintf("corsPolicy.%s is not a field the importer knows: left out", k.Value),
				"check the field's spelling, or carry it over by hand")
		}
	}
	corsSrc := o.Src(ck, "corsPolicy")

	credsK, credsV := w.Field(cors, "allowCredentials")
	creds := false
	if credsK != nil {
		if b, ok := w.Bool(credsV); ok {
			creds = b
			p.Credentials = importer.Bool{V: b, Src: o.Src(credsK, "corsPolicy.allowCredentials")}
		} else {
			c.leftOut(o.Src(credsK, "corsPolicy.allowCredentials"), fmt.Sprintf("allowCredentials is %s, not a boolean: left out", kubecors.Describe(credsV)), "write true or false")
		}
	}

	c.origins(p, cors)

	p.Methods = c.list(cors, "allowMethods", corsSrc, creds, kubecors.Methods)
	p.Headers = c.list(cors, "allowHeaders", corsSrc, creds, kubecors.Headers)
	if ek, _ := w.Field(cors, "exposeHeaders"); ek != nil {
		p.Expose = c.list(cors, "exposeHeaders", corsSrc, creds, kubecors.Expose)
	}

	mk, mv := w.Field(cors, "maxAge")
	switch s, ok := w.Str(mv); {
	case mk == nil:
		// Envoy sends no Access-Control-Max-Age, and browsers cache the
		// preflight for 5 seconds: corsproc's 0 sends none either.
		p.MaxAge = importer.Int{N: 0, Src: importer.Source{File: o.File, Line: ck.Line, Key: "corsPolicy without maxAge"}}
	case !ok:
		c.leftOut(o.Src(mk, "corsPolicy.maxAge"), fmt.Sprintf("maxAge is %s, not a duration: left out", kubecors.Describe(mv)), `write a duration such as "24h"`)
	default:
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			c.leftOut(o.Src(mk, "corsPolicy.maxAge"), fmt.Sprintf("maxAge %q is not a duration Istio accepts: left out", s), `write a duration such as "24h"`)
			break
		}
		secs := int64(d / time.Second)
		src := o.Src(mk, "corsPolicy.maxAge")
		p.MaxAge = importer.Int{N: secs, Src: src}
		if secs == 0 {
			c.warn(src, importer.CodeDifference,
				"Envoy sends Access-Control-Max-Age: 0, which tells browsers not to cache the preflight; corsproc's 0 sends no header, and browsers cache it for 5 seconds", "")
		}
	}

	uk, uv := w.Field(cors, "unmatchedPreflights")
	mode, _ := w.Str(uv)
	switch mode {
	case "IGNORE":
		p.UnmatchedPreflight = importer.String{S: "reject", Src: o.Src(uk, "corsPolicy.unmatchedPreflights")}
	case "", "UNSPECIFIED", "FORWARD":
		src := o.Src(uk, "corsPolicy.unmatchedPreflights")
		if uk == nil {
			src = importer.Source{File: o.File, Line: ck.Line, Key: "corsPolicy without unmatchedPreflights (Istio's default, FORWARD)"}
		}
		p.UnmatchedPreflight = importer.String{S: "forward", Src: src}
		c.warn(src, importer.CodeDifference,
			"Istio passes a preflight from an origin it does not allow to the upstream, whose answer reaches the browser as it is (forward_not_matching_preflights); corsproc's forward passes it too, but removes the upstream's CORS headers from the answer, so such a preflight always fails",
			"if the upstream does not answer OPTIONS requests itself, write unmatched_preflight: reject (corsproc's default), which answers 403 without reaching it")
	default:
		c.leftOut(o.Src(uk, "corsPolicy.unmatchedPreflights"), fmt.Sprintf("unmatchedPreflights %q is neither FORWARD nor IGNORE: left out", mode), "write FORWARD or IGNORE")
	}
}

// origins converts allowOrigins (StringMatch: exact, prefix, regex), or
// the deprecated allowOrigin (exact strings) when allowOrigins is absent,
// as TranslateCORSPolicy does: ConvertToEnvoyMatch
// (pilot/pkg/networking/util/util.go, Istio 1.29 to 1.31) makes each an
// Envoy StringMatcher exact, prefix or safe_regex, never ignore_case.
func (c *vsConv) origins(p *importer.Policy, cors *yaml.Node) {
	w, o := c.w, c.o
	ok, ov := w.Field(cors, "allowOrigins")
	if ok == nil {
		dk, dv := w.Field(cors, "allowOrigin")
		if dk == nil {
			return
		}
		p.OriginsSrc = o.Src(dk, "corsPolicy.allowOrigin")
		c.warn(p.OriginsSrc, importer.CodeDifference, "allowOrigin is deprecated in Istio; its entries are exact origins, as Istio reads them", "")
		for _, e := range w.Seq(dv) {
			s, _ := w.Str(e)
			c.exact(p, s, o.Src(e, "corsPolicy.allowOrigin"))
		}
		return
	}
	p.OriginsSrc = o.Src(ok, "corsPolicy.allowOrigins")
	if ov.Kind != yaml.SequenceNode {
		c.leftOut(p.OriginsSrc, fmt.Sprintf("allowOrigins is %s, not a list: left out", kubecors.Describe(ov)), "")
		return
	}
	for _, e := range w.Seq(ov) {
		var kind, val string
		for _, k := range []string{"exact", "prefix", "regex"} {
			if v := w.Get(e, k); v != nil {
				kind = k
				val, _ = w.Str(v)
				break
			}
		}
		src := o.Src(e, "corsPolicy.allowOrigins[]."+kind)
		switch kind {
		case "exact":
			c.exact(p, val, src)
		case "prefix":
			if val == "" || val == "*" {
				c.warns = append(c.warns, kubecors.StarWarning(src, fmt.Sprintf("the prefix %q", val)))
				p.Origins = append(p.Origins, importer.Origin{Kind: importer.OriginReflect, Value: val, Src: src})
				continue
			}
			p.Origins = append(p.Origins, importer.Origin{Kind: importer.OriginPrefix, Value: val, Src: src})
		case "regex":
			// Envoy's safe_regex is RE2 matched against the whole string
			// (RegexMatcher.regex in api/envoy/type/matcher/v3/regex.proto),
			// as corsproc's allowed_origin_regexes are.
			if _, err := regexp.Compile(val); err != nil || val == "" {
				c.leftOut(src, fmt.Sprintf("%q is not an RE2 regex Istio accepts: left out", val), "correct the regex")
				continue
			}
			if kubecors.MatchesStar(val) {
				c.warns = append(c.warns, kubecors.StarWarning(src, fmt.Sprintf("the regex %q", val)))
				p.Origins = append(p.Origins, importer.Origin{Kind: importer.OriginReflect, Value: val, Src: src})
				continue
			}
			p.Origins = append(p.Origins, importer.Origin{Kind: importer.OriginRegex, Value: val, Src: src})
		default:
			c.leftOut(o.Src(e, "corsPolicy.allowOrigins[]"), "an allowOrigins entry without exact, prefix or regex: left out", "")
		}
	}
}

func (c *vsConv) exact(p *importer.Policy, s string, src importer.Source) {
	or, warn, ok := kubecors.ExactOrigin(s, src)
	if !ok {
		c.warns = append(c.warns, *warn)
		return
	}
	p.Origins = append(p.Origins, or)
}

// list converts allowMethods, allowHeaders or exposeHeaders. Istio joins
// a list with "," into the one string Envoy sends, so an entry holding
// commas is several names. A list that is absent is written empty: Envoy
// then sends no header, and browsers allow only what is safelisted.
func (c *vsConv) list(cors *yaml.Node, key string, corsSrc importer.Source, creds bool,
	conv func([]importer.Value, importer.Source, bool) (importer.List, []importer.Warning)) importer.List {
	w, o := c.w, c.o
	k, v := w.Field(cors, key)
	src := importer.Source{File: o.File, Line: corsSrc.Line, Key: "corsPolicy without " + key}
	if k != nil {
		src = o.Src(k, "corsPolicy."+key)
	}
	var items []importer.Value
	if k != nil && v.Kind != yaml.SequenceNode && !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
		c.leftOut(src, fmt.Sprintf("%s is %s, not a list: left out", key, kubecors.Describe(v)), "")
		return importer.List{}
	}
	for _, e := range w.Seq(v) {
		s, ok := w.Str(e)
		if !ok {
			c.leftOut(o.Src(e, "corsPolicy."+key), fmt.Sprintf("an entry of %s is %s, not a string: left out", key, kubecors.Describe(e)), "")
			continue
		}
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				items = append(items, importer.Value{S: part, Src: o.Src(e, "corsPolicy."+key)})
			}
		}
	}
	l, ws := conv(items, src, creds)
	c.warns = append(c.warns, ws...)
	// Warnings name each entry's line; the policy's comment names the key.
	for i := range l.Items {
		l.Items[i].Src = src
	}
	return l
}
