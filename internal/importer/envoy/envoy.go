// Package envoy reads the CORS policies of Envoy configurations into the
// importer's rule set (internal/importer): the envoy.filters.http.cors
// CorsPolicy of a virtual host's or route's typed_per_filter_config, and
// the legacy cors field of virtual hosts and route actions, in a
// RouteConfiguration, an HttpConnectionManager or a Bootstrap, as YAML or
// JSON. Each policy is matched by route name, or by the virtual host's
// domains and the route's path when the route has no name. The CORS
// messages are decoded with go-control-plane's types and protojson; the
// rest of the file is walked as YAML, so that filters and extensions the
// importer does not know never stop it, and the route API's types (3 MB
// of the binary) stay out. docs/migrating.md
// describes the mapping.
//
// Envoy's behaviour is read from its source as of Envoy 1.37 (the main
// branch), source/extensions/filters/http/cors/cors_filter.cc:
//
//   - CorsFilter::initializeCorsPolicies: the typed_per_filter_config
//     policies of the route and the virtual host, the route's first; only
//     when there are none, the legacy cors fields of the route and the
//     virtual host.
//   - CorsFilter::allowOrigins, allowMethods, ... : each field comes from
//     the first of those policies that sets it.
//   - CorsFilter::enabled and shadowEnabled: from the first policy only.
//   - CorsFilter::isOriginAllowed: an origin is allowed when a matcher
//     matches it, or matches the string "*": a matcher that matches "*"
//     (regex \*, .*, a prefix "") allows every origin.
//   - CorsFilter::decodeHeaders: a preflight is answered 200, with the
//     request's origin (never "*") in Access-Control-Allow-Origin and the
//     configured methods and headers, without checking the requested
//     method or headers against them; a preflight from an origin not
//     allowed is forwarded to the upstream unless
//     forward_not_matching_preflights is false (CorsFilter::
//     forwardNotMatchingPreflights, default true).
//   - CorsFilter::encodeHeaders: an allowed origin is echoed on the
//     response, with credentials and exposed headers; no Vary: Origin is
//     added.
//
// A safe_regex is matched with RE2's FullMatch
// (source/common/common/regex.h, CompiledGoogleReMatcher::match), as
// corsproc matches allowed_origin_regexes.
package envoy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/corsproc/corsproc/internal/importer"
	"github.com/corsproc/corsproc/internal/importer/kubecors"
)

const (
	corsFilterName = "envoy.filters.http.cors"
	corsPolicyType = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
	corsFilterType = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"
)

// Read reads Envoy configuration files. The error is for a file that is not
// YAML or JSON; CORS configuration it cannot carry over is a warning.
func Read(files []importer.File) (*importer.RuleSet, error) {
	r := &reader{rs: &importer.RuleSet{Source: "envoy", DefaultPolicy: -1}}
	for _, f := range files {
		r.rs.Files = append(r.rs.Files, f.Name)
		dec := yaml.NewDecoder(bytes.NewReader(f.Data))
		for i := 0; ; i++ {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			if i > 1000 {
				return nil, fmt.Errorf("%s: more than 1000 YAML documents", f.Name)
			}
			r.file = f.Name
			r.walk(&doc, nil, 0)
		}
	}
	if len(r.rs.Policies) == 0 && len(r.rs.Warnings) == 0 {
		r.rs.Warnings = append(r.rs.Warnings, importer.Warning{File: strings.Join(r.rs.Files, ", "), Code: importer.CodeDifference,
			Message: "no CORS policy found (typed_per_filter_config envoy.filters.http.cors, or the cors field of a virtual host or route)"})
	}
	return r.rs, nil
}

type reader struct {
	rs   *importer.RuleSet
	file string
	// star is the index of the policy of a virtual host with domain "*".
	starPolicies []*importer.Policy
}

// hcm is what the importer knows of the HttpConnectionManager a route
// configuration belongs to.
type hcm struct {
	node     *yaml.Node
	hasCORS  bool
	corsName string
	// auth are the authentication filters ahead of the CORS filter.
	auth []importer.Source
}

// get returns the value of key (snake_case or its lowerCamelCase) in a
// mapping node, and the key node.
func get(n *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	camel := lowerCamel(key)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i].Value; k == key || k == camel {
			return n.Content[i+1], n.Content[i]
		}
	}
	return nil, nil
}

func lowerCamel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

func str(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// walk finds HttpConnectionManagers and route configurations anywhere in
// the document.
func (r *reader) walk(n *yaml.Node, h *hcm, depth int) {
	if n == nil || depth > 100 {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			r.walk(c, h, depth+1)
		}
	case yaml.AliasNode:
		// Aliases are followed where they are used as values; walking
		// them here would read a definition twice.
	case yaml.MappingNode:
		if filters, _ := get(n, "http_filters"); filters != nil && filters.Kind == yaml.SequenceNode {
			h = r.readHCM(n, filters)
		}
		if vhs, _ := get(n, "virtual_hosts"); vhs != nil && vhs.Kind == yaml.SequenceNode {
			r.routeConfig(n, vhs, h)
			return
		}
		for i := 1; i < len(n.Content); i += 2 {
			r.walk(n.Content[i], h, depth+1)
		}
	}
}

// authFilters are the HTTP filters that refuse a request without
// credentials, which a browser never sends on a preflight.
var authFilters = map[string]bool{
	"envoy.filters.http.ext_authz": true, "envoy.filters.http.jwt_authn": true, "envoy.filters.http.oauth2": true,
	"envoy.filters.http.basic_auth": true, "envoy.filters.http.api_key_auth": true, "envoy.filters.http.rbac": true,
}

// filterTypeRE takes the filter's name out of a typed_config's @type.
var filterTypeRE = regexp.MustCompile(`^envoy\.extensions\.filters\.http\.([a-z0-9_]+)\.v3\.`)

func (r *reader) readHCM(n, filters *yaml.Node) *hcm {
	h := &hcm{node: n}
	for _, f := range filters.Content {
		name := str(first(get(f, "name")))
		typ := ""
		if tc, _ := get(f, "typed_config"); tc != nil {
			typ = str(first(get(tc, "@type")))
		}
		if name == corsFilterName || typ == corsFilterType {
			h.hasCORS, h.corsName = true, name
			break
		}
		kind := name
		if i := strings.LastIndex(typ, "/"); i >= 0 {
			// type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
			if m := filterTypeRE.FindStringSubmatch(typ[i+1:]); m != nil {
				kind = "envoy.filters.http." + m[1]
			}
		}
		if tc, _ := get(f, "typed_config"); (kind == "envoy.filters.http.jwt_authn" || name == "envoy.filters.http.jwt_authn") &&
			str(first(get(tc, "bypass_cors_preflight"))) == "true" {
			// jwt_authn lets preflights through with bypass_cors_preflight
			// (source/extensions/filters/http/jwt_authn/filter.cc,
			// Filter::decodeHeaders).
			continue
		}
		if authFilters[kind] || authFilters[name] {
			h.auth = append(h.auth, importer.Source{File: r.file, Line: f.Line, Key: "http_filters " + name})
		}
	}
	return h
}

func first(n, _ *yaml.Node) *yaml.Node { return n }

// corsConfig is one CORS policy of Envoy's configuration and the YAML it
// was read from.
type corsConfig struct {
	p    *corsv3.CorsPolicy
	node *yaml.Node
	key  string // how comments name it: "virtual host www cors"
	file string
}

func (c *corsConfig) src(field string) importer.Source {
	if field == "" {
		return importer.Source{File: c.file, Line: c.node.Line, Key: c.key}
	}
	line := c.node.Line
	if v, k := get(c.node, field); v != nil {
		line = k.Line
	}
	return importer.Source{File: c.file, Line: line, Key: c.key + "." + field}
}

// typedCORS returns the CORS policy of a typed_per_filter_config.
func (r *reader) typedCORS(owner *yaml.Node, key string, h *hcm) *corsConfig {
	tpfc, _ := get(owner, "typed_per_filter_config")
	if tpfc == nil || tpfc.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(tpfc.Content); i += 2 {
		name, v := tpfc.Content[i].Value, tpfc.Content[i+1]
		typ := str(first(get(v, "@type")))
		if typ == "type.googleapis.com/envoy.config.route.v3.FilterConfig" {
			// FilterConfig wraps the policy: {config: {...}, is_optional, disabled}.
			if inner, _ := get(v, "config"); inner != nil {
				v, typ = inner, str(first(get(inner, "@type")))
			}
		}
		if typ != corsPolicyType && !(typ == "" && (name == corsFilterName || h != nil && name == h.corsName)) {
			continue
		}
		c := &corsConfig{node: v, key: key + " typed_per_filter_config." + name, file: r.file}
		p := new(corsv3.CorsPolicy)
		if err := r.decode(v, p, c.key); err != nil {
			return nil
		}
		c.p = p
		if h != nil && h.hasCORS && name != h.corsName && name != corsFilterName && typ == corsPolicyType {
			r.warn(importer.Source{File: r.file, Line: tpfc.Content[i].Line, Key: c.key}, importer.CodeDifference, false,
				fmt.Sprintf("the CORS filter is named %q in http_filters; Envoy looks its per-route configuration up by that name", h.corsName), "check that this entry is the CORS filter's")
		}
		return c
	}
	return nil
}

// legacyCORS returns the legacy cors field of a virtual host or route
// action.
func (r *reader) legacyCORS(owner *yaml.Node, key string) *corsConfig {
	v, _ := get(owner, "cors")
	if v == nil {
		return nil
	}
	c := &corsConfig{node: v, key: key + " cors", file: r.file}
	// The legacy route.v3.CorsPolicy has the fields of the filter's
	// CorsPolicy, by the same names and types (it only adds deprecated
	// ones Envoy 1.27+ no longer accepts), so it is decoded as one: the
	// route API's Go types weigh 3 MB in the binary (docs/migrating.md).
	p := new(corsv3.CorsPolicy)
	if err := r.decode(v, p, c.key); err != nil {
		return nil
	}
	c.p = p
	return c
}

// decode decodes a YAML subtree into m with protojson.
func (r *reader) decode(n *yaml.Node, m proto.Message, key string) error {
	var v any
	err := n.Decode(&v)
	var b []byte
	if err == nil {
		if mv, ok := v.(map[string]any); ok {
			delete(mv, "@type")
		}
		b, err = json.Marshal(v)
	}
	if err == nil {
		err = protojson.Unmarshal(b, m)
	}
	if err != nil {
		r.warn(importer.Source{File: r.file, Line: n.Line, Key: key}, importer.CodeLeftOut, true,
			fmt.Sprintf("not read: %v", err), "correct it (Envoy refuses it too), or write this policy by hand")
	}
	return err
}

func (r *reader) warn(src importer.Source, code importer.Code, leftOut bool, msg, fix string) {
	if src.File == "" {
		src.File = r.file
	}
	w := importer.At(src, code, msg, fix)
	w.LeftOut = leftOut
	r.rs.Warnings = append(r.rs.Warnings, w)
}

func (r *reader) routeConfig(rc, vhs *yaml.Node, h *hcm) {
	rcName := str(first(get(rc, "name")))
	if h == nil {
		r.warn(importer.Source{Line: rc.Line, Key: "route configuration " + rcName}, importer.CodeDifference, false,
			"the HttpConnectionManager of this route configuration is not in the files: whether its http_filters hold the CORS filter, and any authentication filter ahead of it, is not known",
			"import the listener's configuration too, to check that")
	}
	var rcCORS *corsConfig
	if c := r.typedCORS(rc, "route configuration "+rcName, h); c != nil {
		rcCORS = c
	}
	var star []*importer.Policy
	for vi, vh := range vhs.Content {
		vhName := str(first(get(vh, "name")))
		if vhName == "" {
			vhName = strconv.Itoa(vi)
		}
		vkey := "virtual host " + vhName
		hosts, hasStar := r.domains(vh, vkey)
		vhTyped := r.typedCORS(vh, vkey, h)
		vhLegacy := r.legacyCORS(vh, vkey)
		chainFor := func(routeTyped, routeLegacy *corsConfig) []*corsConfig {
			var typed []*corsConfig
			for _, c := range []*corsConfig{routeTyped, vhTyped, rcCORS} {
				if c != nil {
					typed = append(typed, c)
				}
			}
			if len(typed) > 0 {
				if routeLegacy != nil && routeTyped == nil {
					r.warn(routeLegacy.src(""), importer.CodeDifference, false, "Envoy ignores this legacy cors field: a typed_per_filter_config CORS policy applies to the route (CorsFilter::initializeCorsPolicies)", "delete it")
				}
				return typed
			}
			var legacy []*corsConfig
			for _, c := range []*corsConfig{routeLegacy, vhLegacy} {
				if c != nil {
					legacy = append(legacy, c)
				}
			}
			return legacy
		}
		routes, _ := get(vh, "routes")
		if routes != nil {
			for ri, rt := range routes.Content {
				name := str(first(get(rt, "name")))
				rkey := fmt.Sprintf("%s route %d", vkey, ri)
				if name != "" {
					rkey = "route " + name
				}
				rTyped := r.typedCORS(rt, rkey, h)
				var rLegacy *corsConfig
				if action, _ := get(rt, "route"); action != nil {
					rLegacy = r.legacyCORS(action, rkey+" route")
				}
				if rTyped == nil && rLegacy == nil {
					continue
				}
				chain := chainFor(rTyped, rLegacy)
				p := r.policy(chain, name, h)
				if p == nil {
					continue
				}
				p.Src = importer.Source{File: r.file, Line: rt.Line, Key: rkey}
				if name != "" {
					p.Name = name
					p.Match.Routes.Add(importer.Value{S: name, Src: p.Src})
				} else {
					p.Name = vhName + "-route-" + strconv.Itoa(ri)
					p.Match.Hosts = hosts
					r.routeMatch(rt, rkey, p)
				}
				r.rs.Policies = append(r.rs.Policies, p)
			}
		}
		chain := chainFor(nil, nil)
		if len(chain) == 0 || vhTyped == nil && vhLegacy == nil && rcCORS == nil {
			continue
		}
		p := r.policy(chain, vhName, h)
		if p == nil {
			continue
		}
		p.Name = vhName
		p.Src = importer.Source{File: r.file, Line: vh.Line, Key: vkey}
		p.Match.Hosts = hosts
		if hasStar {
			// Envoy takes a "*" virtual host last (after exact and wildcard
			// domains), so its policy goes last, as the default_policy
			// when it has no other match.
			star = append(star, p)
			continue
		}
		r.rs.Policies = append(r.rs.Policies, p)
	}
	for _, p := range star {
		if len(p.Match.Hosts.Items) == 0 && r.rs.DefaultPolicy < 0 {
			r.rs.DefaultPolicy = len(r.rs.Policies)
		}
		r.rs.Policies = append(r.rs.Policies, p)
	}
}

// domains maps a virtual host's domains to match.hosts; "*" matches every
// host and adds nothing.
func (r *reader) domains(vh *yaml.Node, vkey string) (importer.List, bool) {
	var hosts importer.List
	star := false
	ds, _ := get(vh, "domains")
	if ds == nil {
		return hosts, false
	}
	for _, d := range ds.Content {
		v := strings.ToLower(d.Value)
		src := importer.Source{File: r.file, Line: d.Line, Key: vkey + " domains"}
		if v == "*" {
			star = true
			continue
		}
		if host, port, ok := strings.Cut(v, ":"); ok && !strings.HasPrefix(v, "[") {
			if port != "*" && !slices.Contains(hosts.Strings(), host) {
				r.warn(src, importer.CodeDifference, false, fmt.Sprintf("%q names a port; corsproc's match.hosts ignore the port, so the policy matches %q on any port", v, host), "if another port of this host must not get these CORS rules, give its routes names and match them with match.routes")
			}
			v = host
		}
		if slices.Contains(hosts.Strings(), v) {
			continue
		}
		switch {
		case strings.HasPrefix(v, "*.") && !strings.Contains(v[2:], "*"):
		case strings.Contains(v, "*"):
			r.warn(src, importer.CodeLeftOut, true, fmt.Sprintf("the domain %q is not carried over: corsproc matches a host by name or *.suffix", v), "list the hosts it stands for in match.hosts")
			continue
		}
		hosts.Add(importer.Value{S: v, Src: src})
	}
	if star {
		hosts = importer.List{}
	}
	return hosts, star
}

// routeMatch maps a route's match to the policy's path match.
func (r *reader) routeMatch(rt *yaml.Node, rkey string, p *importer.Policy) {
	mn, _ := get(rt, "match")
	if mn == nil {
		return
	}
	src := importer.Source{File: r.file, Line: mn.Line, Key: rkey + " match"}
	// The route match is read from the YAML: the route API's Go types
	// weigh 3 MB in the binary, for five fields.
	prefix, hasPrefix := get(mn, "prefix")
	path, _ := get(mn, "path")
	sep, _ := get(mn, "path_separated_prefix")
	sre, _ := get(mn, "safe_regex")
	switch {
	case hasPrefix != nil:
		if v := str(prefix); v != "" {
			p.Match.PathPrefixes.Add(importer.Value{S: v, Src: src})
		}
	case sep != nil:
		p.Match.URLsRegex = importer.String{S: regexp.QuoteMeta(str(sep)) + "(/.*)?", Src: src}
	case path != nil:
		p.Match.URLsRegex = importer.String{S: regexp.QuoteMeta(str(path)), Src: src}
	case sre != nil && str(first(get(sre, "regex"))) != "":
		p.Match.URLsRegex = importer.String{S: str(first(get(sre, "regex"))), Src: src}
	default:
		r.warn(src, importer.CodeLeftOut, true, "this route's path match is not carried over: the policy matches the virtual host's every path", "give the route a name, and the policy match.routes")
	}
	if cs, _ := get(mn, "case_sensitive"); cs != nil && (str(cs) == "false" || str(first(get(cs, "value"))) == "false") {
		r.warn(src, importer.CodeDifference, false, "Envoy matched this path without regard to case; corsproc matches it byte for byte", "add the other spellings of the path to match.path_prefixes, or give the route a name and match it with match.routes")
	}
	for _, k := range []string{"headers", "query_parameters", "grpc", "dynamic_metadata", "filter_state", "runtime_fraction"} {
		if v, _ := get(mn, k); v != nil {
			r.warn(src, importer.CodeDifference, false, "this route also matches on "+k+", which the policy's match cannot say: it matches the host and path alone", "give the route a name, and the policy match.routes")
			break
		}
	}
}

// policy builds the policy of a route or virtual host from its chain of
// CORS configurations, most specific first.
func (r *reader) policy(chain []*corsConfig, name string, h *hcm) *importer.Policy {
	if len(chain) == 0 {
		return nil
	}
	p := &importer.Policy{}
	pick := func(f func(*corsv3.CorsPolicy) bool) *corsConfig {
		for _, c := range chain {
			if f(c.p) {
				return c
			}
		}
		return nil
	}
	src := func(c *corsConfig, field string) importer.Source {
		s := c.src(field)
		s.File = r.file
		return s
	}
	// Enabled and shadow come from the most specific policy.
	top := chain[0]
	if fe := top.p.GetFilterEnabled(); fe != nil {
		// CorsPolicyImplBase::enabled (source/common/router/config_impl.h)
		// asks the runtime's featureEnabled(runtime_key, default_value):
		// enabled for that fraction of requests, 0 for none.
		num, denom := fraction(fe.GetDefaultValue())
		if num == 0 {
			shadow := top.p.GetShadowEnabled()
			if sn, _ := fraction(shadow.GetDefaultValue()); shadow != nil && sn > 0 {
				p.Mode = importer.String{S: "shadow", Src: src(top, "shadow_enabled")}
			} else {
				// Disabled: Envoy adds no CORS headers and forwards
				// preflights; the upstream's own CORS headers pass. A
				// shadow policy is the nearest: governed, nothing changed.
				p.Mode = importer.String{S: "shadow", Src: src(top, "filter_enabled")}
				r.warn(src(top, "filter_enabled"), importer.CodeDifference, false,
					"CORS is disabled here (filter_enabled 0%): Envoy left requests and responses alone; the policy is in mode: shadow, which records decisions and changes nothing", "delete the policy if corsproc should not govern these requests")
			}
		} else if rt := fe.GetRuntimeKey(); rt != "" || num < denom {
			pct := strconv.FormatFloat(float64(min(num, denom))*100/float64(denom), 'f', -1, 64)
			r.warn(src(top, "filter_enabled"), importer.CodeDifference, false,
				fmt.Sprintf("Envoy enabled CORS here for a runtime fraction (runtime key %q, default %s%%); the policy always applies", rt, pct), "if only part of the traffic should get these rules, roll the policy out with mode: shadow first")
		}
	}
	if c := pick(func(p *corsv3.CorsPolicy) bool { return len(p.GetAllowOriginStringMatch()) > 0 }); c != nil {
		p.OriginsSrc = src(c, "allow_origin_string_match")
		p.Vary, p.VarySrc = importer.VaryMissing, p.OriginsSrc
		list, _ := get(c.node, "allow_origin_string_match")
		for i, m := range c.p.GetAllowOriginStringMatch() {
			osrc := p.OriginsSrc
			osrc.Key = fmt.Sprintf("%s[%d]", osrc.Key, i)
			if list != nil && i < len(list.Content) {
				osrc.Line = list.Content[i].Line
			}
			p.Origins = append(p.Origins, r.origin(m, osrc)...)
		}
	} else {
		p.Note = "no allow_origin_string_match: Envoy allowed no origin"
	}
	// The lists are Envoy's CORS filter's, as Istio and Envoy Gateway
	// hand it theirs: kubecors converts them by what browsers read in
	// Envoy's answers ("*" alone is echoed as what was requested, "*"
	// among other names is a literal, a wildcard only without
	// credentials).
	creds := false
	if c := pick(func(p *corsv3.CorsPolicy) bool { return p.GetAllowCredentials() != nil }); c != nil && c.p.GetAllowCredentials().GetValue() {
		creds = true
		p.Credentials = importer.Bool{V: true, Src: src(c, "allow_credentials")}
	}
	list := func(conv func([]importer.Value, importer.Source, bool) (importer.List, []importer.Warning), v string, src importer.Source, norm func(string) string) importer.List {
		l, warns := conv(splitList(v, src, norm).Items, src, creds)
		r.rs.Warnings = append(r.rs.Warnings, warns...)
		return l
	}
	if c := pick(func(p *corsv3.CorsPolicy) bool { return p.GetAllowMethods() != "" }); c != nil {
		p.Methods = list(kubecors.Methods, c.p.GetAllowMethods(), src(c, "allow_methods"), strings.ToUpper)
	} else {
		// No Access-Control-Allow-Methods: browsers allow only the
		// safelisted methods, which corsproc always allows.
		p.Methods = importer.List{Src: importer.Source{File: r.file, Line: top.node.Line, Key: top.key + " (no allow_methods)"}}
	}
	if c := pick(func(p *corsv3.CorsPolicy) bool { return p.GetAllowHeaders() != "" }); c != nil {
		p.Headers = list(kubecors.Headers, c.p.GetAllowHeaders(), src(c, "allow_headers"), strings.ToLower)
	} else {
		p.Headers = importer.List{Src: importer.Source{File: r.file, Line: top.node.Line, Key: top.key + " (no allow_headers)"}}
	}
	if c := pick(func(p *corsv3.CorsPolicy) bool { return p.GetExposeHeaders() != "" }); c != nil {
		p.Expose = list(kubecors.Expose, c.p.GetExposeHeaders(), src(c, "expose_headers"), strings.ToLower)
	}
	if c := pick(func(p *corsv3.CorsPolicy) bool { return p.GetMaxAge() != "" }); c != nil {
		n, err := strconv.ParseInt(strings.TrimSpace(c.p.GetMaxAge()), 10, 64)
		if err != nil {
			r.warn(src(c, "max_age"), importer.CodeLeftOut, true, fmt.Sprintf("max_age %q is not a number of seconds", c.p.GetMaxAge()), "write preflight_max_age by hand")
		} else {
			p.MaxAge = importer.Int{N: n, Src: src(c, "max_age")}
		}
	} else {
		// No Access-Control-Max-Age: browsers cache the preflight for 5
		// seconds; corsproc sends none with 0.
		p.MaxAge = importer.Int{N: 0, Src: importer.Source{File: r.file, Line: top.node.Line, Key: top.key + " (no max_age)"}}
	}
	if c := pick(func(p *corsv3.CorsPolicy) bool { return p.GetAllowPrivateNetworkAccess() != nil }); c != nil && c.p.GetAllowPrivateNetworkAccess().GetValue() {
		p.PrivateNetwork = importer.Bool{V: true, Src: src(c, "allow_private_network_access")}
	}
	// Envoy answers an allowed preflight 200 (CorsFilter::decodeHeaders).
	p.PreflightStatus = importer.Int{N: 200, Src: importer.Source{File: r.file, Line: top.node.Line, Key: top.key + " (Envoy answers preflights 200)"}}
	if c := pick(func(p *corsv3.CorsPolicy) bool { return p.GetForwardNotMatchingPreflights() != nil }); c != nil && !c.p.GetForwardNotMatchingPreflights().GetValue() {
		p.UnmatchedPreflight = importer.String{S: "reject", Src: src(c, "forward_not_matching_preflights")}
		r.warn(p.UnmatchedPreflight.Src, importer.CodeDifference, false,
			"Envoy answered a preflight from an origin it does not allow 200 without CORS headers; corsproc answers it 403 (unmatched_preflight: reject): the browser refuses both", "keep unmatched_preflight: reject, or set forward if the upstream must see these OPTIONS requests")
	} else {
		s := importer.Source{File: r.file, Line: top.node.Line, Key: top.key + " (forward_not_matching_preflights defaults to true)"}
		if c != nil {
			s = src(c, "forward_not_matching_preflights")
		}
		p.UnmatchedPreflight = importer.String{S: "forward", Src: s}
		r.warn(s, importer.CodeDifference, false,
			"Envoy forwarded a preflight from an origin it does not allow to the upstream, whose answer reached the browser untouched (CorsFilter::forwardNotMatchingPreflights); corsproc forwards it too (unmatched_preflight: forward) but removes every CORS header from the upstream's answer, so the upstream can no longer allow what the policy refuses", "keep forward if the upstream answers OPTIONS itself; otherwise set unmatched_preflight: reject")
	}
	if p.Mode.S == "shadow" {
		p.Vary = importer.VaryUnknown // Envoy answered nothing here
	}
	if h != nil && !h.hasCORS {
		r.warn(importer.Source{File: r.file, Line: top.node.Line, Key: top.key}, importer.CodeDifference, false,
			"the HttpConnectionManager has no envoy.filters.http.cors filter in http_filters, so Envoy never applied this policy; the imported policy applies it", "delete the policy if these routes had no CORS")
	}
	if h != nil && h.hasCORS && len(h.auth) > 0 {
		w := importer.At(h.auth[0], importer.CodePreflightAuth, fmt.Sprintf("%s runs before the CORS filter, so preflights, which carry no credentials, reach it and are refused before Envoy's CORS filter answers them", h.auth[0].Key),
			"put the CORS filter (and corsproc's ext_proc filter) ahead of authentication in http_filters")
		w.Unsafe = true
		r.rs.Warnings = append(r.rs.Warnings, w)
	}
	return p
}

// fraction is fp as a numerator over its denominator (FractionalPercent
// in api/envoy/type/v3/percent.proto: HUNDRED, TEN_THOUSAND or MILLION).
func fraction(fp *typev3.FractionalPercent) (num, denom uint64) {
	switch fp.GetDenominator() {
	case typev3.FractionalPercent_TEN_THOUSAND:
		return uint64(fp.GetNumerator()), 10_000
	case typev3.FractionalPercent_MILLION:
		return uint64(fp.GetNumerator()), 1_000_000
	}
	return uint64(fp.GetNumerator()), 100
}

func splitList(v string, src importer.Source, norm func(string) string) importer.List {
	l := importer.List{Src: src}
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			l.Items = append(l.Items, importer.Value{S: norm(part), Src: src})
		}
	}
	return l
}

// origin maps one StringMatcher of allow_origin_string_match.
func (r *reader) origin(m *matcherv3.StringMatcher, src importer.Source) []importer.Origin {
	ic := m.GetIgnoreCase()
	every := func(how string) []importer.Origin {
		r.warn(src, importer.CodeDifference, false, fmt.Sprintf("%s matches the string \"*\", so Envoy allowed every origin (CorsFilter::isOriginAllowed tries each matcher on \"*\" first) and echoed it back: written as allow_all_origins", how),
			"list the origins you mean")
		return []importer.Origin{{Kind: importer.OriginReflect, Value: "*", Src: src}}
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		if p.Exact == "*" {
			return every(`exact "*"`)
		}
		// A string no browser sends as its Origin never matched: left
		// out with a warning, as for Istio and Envoy Gateway.
		v := p.Exact
		if ic {
			v = strings.ToLower(v)
		}
		if _, w, ok := kubecors.ExactOrigin(v, src); !ok {
			r.rs.Warnings = append(r.rs.Warnings, *w)
			return nil
		}
		return []importer.Origin{{Kind: importer.OriginExact, Value: p.Exact, IgnoreCase: ic, Src: src}}
	case *matcherv3.StringMatcher_Prefix:
		if strings.HasPrefix("*", p.Prefix) {
			return every(fmt.Sprintf("prefix %q", p.Prefix))
		}
		return []importer.Origin{{Kind: importer.OriginPrefix, Value: p.Prefix, IgnoreCase: ic, Src: src}}
	case *matcherv3.StringMatcher_Suffix:
		if strings.HasSuffix("*", p.Suffix) {
			return every(fmt.Sprintf("suffix %q", p.Suffix))
		}
		return []importer.Origin{{Kind: importer.OriginSuffix, Value: p.Suffix, IgnoreCase: ic, Src: src}}
	case *matcherv3.StringMatcher_Contains:
		if strings.Contains("*", p.Contains) {
			return every(fmt.Sprintf("contains %q", p.Contains))
		}
		return []importer.Origin{{Kind: importer.OriginContains, Value: p.Contains, IgnoreCase: ic, Src: src}}
	case *matcherv3.StringMatcher_SafeRegex:
		re := p.SafeRegex.GetRegex()
		if kubecors.MatchesStar(re) {
			return every(fmt.Sprintf("the regex %q", re))
		}
		return []importer.Origin{{Kind: importer.OriginRegex, Value: re, Src: src}}
	}
	r.warn(src, importer.CodeLeftOut, true, "this origin matcher is not carried over", "write the origins it allows into allowed_origins by hand")
	return nil
}
