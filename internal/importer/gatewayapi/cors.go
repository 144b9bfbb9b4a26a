package gatewayapi

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/corsproc/corsproc/internal/importer"
	"github.com/corsproc/corsproc/internal/importer/kubecors"
	"github.com/corsproc/corsproc/internal/origins"
)

// filterKeys are the fields of HTTPCORSFilter (apis/v1/httproute_types.go,
// gateway-api v1.6.3), policyKeys those of Envoy Gateway's CORS
// (api/v1alpha1/cors_types.go, Envoy Gateway 1.9.0).
var (
	filterKeys = []string{"allowOrigins", "allowCredentials", "allowMethods", "allowHeaders", "exposeHeaders", "maxAge"}
	policyKeys = filterKeys
)

// filterCORS converts an HTTPRoute rule's CORS filter.
func (r *reader) filterCORS(p *importer.Policy, o *kubecors.Object, key, cors *yaml.Node) {
	r.convert(p, o, key, cors, "cors", filterKeys)
	w := r.w
	mk, mv := w.Field(cors, "maxAge")
	switch n, ok := w.Int(mv); {
	case mk == nil:
		// The CRD's default, which the API server writes into the
		// object; Envoy Gateway sends it.
		p.MaxAge = importer.Int{N: DefaultMaxAge, Src: importer.Source{File: o.File, Line: key.Line, Key: "cors without maxAge (Gateway API's default, 5)"}}
	case !ok || n < 1:
		r.leftOut(o.Src(mk, "cors.maxAge"), fmt.Sprintf("maxAge is %s, not a number of seconds of at least 1: left out", describe(mv)), "write a number of seconds")
	default:
		p.MaxAge = importer.Int{N: n, Src: o.Src(mk, "cors.maxAge")}
	}
}

// policyCORS converts a SecurityPolicy's cors.
func (r *reader) policyCORS(p *importer.Policy, o *kubecors.Object, key, cors *yaml.Node) {
	r.convert(p, o, key, cors, "cors", policyKeys)
	w := r.w
	mk, mv := w.Field(cors, "maxAge")
	s, ok := w.Str(mv)
	switch {
	case mk == nil:
		// Envoy sends no Access-Control-Max-Age, and browsers cache the
		// preflight for 5 seconds: corsproc's 0 sends none either.
		p.MaxAge = importer.Int{N: 0, Src: importer.Source{File: o.File, Line: key.Line, Key: "cors without maxAge"}}
		return
	case !ok:
		r.leftOut(o.Src(mk, "cors.maxAge"), fmt.Sprintf("maxAge is %s, not a duration: left out", describe(mv)), `write a duration such as "1h"`)
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		// Envoy Gateway's buildCORS leaves such a maxAge out too.
		r.leftOut(o.Src(mk, "cors.maxAge"), fmt.Sprintf("maxAge %q is not a duration: Envoy Gateway ignores it, and so does the importer", s), `write a duration such as "1h"`)
		return
	}
	p.MaxAge = importer.Int{N: int64(d / time.Second), Src: o.Src(mk, "cors.maxAge")}
}

func describe(n *yaml.Node) string { return kubecors.Describe(n) }

// convert reads the fields both forms share.
func (r *reader) convert(p *importer.Policy, o *kubecors.Object, key, cors *yaml.Node, prefix string, known []string) {
	w := r.w
	w.File = o.File
	if cors == nil || cors.Kind != yaml.MappingNode {
		r.leftOut(o.Src(key, prefix), fmt.Sprintf("%s is %s, not an object: left out", prefix, describe(cors)), "")
		return
	}
	for _, k := range w.Keys(cors) {
		if !slices.Contains(known, k.Value) {
			r.leftOut(o.Src(k, prefix+"."+k.Value), fmt.Sprintf("%s.%s is not a field the importer knows: left out", prefix, k.Value),
				"check the field's spelling, or carry it over by hand")
		}
	}
	corsSrc := importer.Source{File: o.File, Line: key.Line, Key: prefix}

	ck, cv := w.Field(cors, "allowCredentials")
	creds := false
	if ck != nil {
		if b, ok := w.Bool(cv); ok {
			creds = b
			p.Credentials = importer.Bool{V: b, Src: o.Src(ck, prefix+".allowCredentials")}
		} else {
			r.leftOut(o.Src(ck, prefix+".allowCredentials"), fmt.Sprintf("allowCredentials is %s, not a boolean: left out", describe(cv)), "write true or false")
		}
	}

	if ok, ov := w.Field(cors, "allowOrigins"); ok != nil {
		p.OriginsSrc = o.Src(ok, prefix+".allowOrigins")
		for _, e := range w.Seq(ov) {
			s, _ := w.Str(e)
			r.origin(p, s, o.Src(e, prefix+".allowOrigins"))
		}
	}

	p.Methods = r.list(o, cors, prefix, "allowMethods", corsSrc, creds, kubecors.Methods)
	p.Headers = r.list(o, cors, prefix, "allowHeaders", corsSrc, creds, kubecors.Headers)
	if ek, _ := w.Field(cors, "exposeHeaders"); ek != nil {
		p.Expose = r.list(o, cors, prefix, "exposeHeaders", corsSrc, creds, kubecors.Expose)
	}
}

// wildcardSub is an origin Envoy Gateway's wildcard2regex turns into a
// regex that matches what corsproc's https://*.example.com pattern does:
// "*." in front of a host, with or without a port.
var wildcardSub = regexp.MustCompile(`^[a-z][a-z0-9+.-]*://\*\.[a-z0-9.-]+(:[0-9]+)?$`)

// origin converts one allowOrigins entry. Envoy Gateway matches an entry
// without "*" exactly, and one with "*" by the regex wildcard2regex makes
// of it (internal/gatewayapi/securitypolicy.go, Envoy Gateway 1.9.0; 1.8
// escapes only "."): the entry with its metacharacters escaped and every
// "*" as ".*". So "*" allows every
// origin (the regex also matches the string "*"), https://* every https
// origin, and https://*.example.com every subdomain at any depth, never
// the apex.
func (r *reader) origin(p *importer.Policy, s string, src importer.Source) {
	switch {
	case s == "*":
		p.Origins = append(p.Origins, importer.Origin{Kind: importer.OriginReflect, Value: s, Src: src})
		return
	case !strings.Contains(s, "*"):
		or, warn, ok := kubecors.ExactOrigin(s, src)
		if !ok {
			r.warns = append(r.warns, *warn)
			return
		}
		p.Origins = append(p.Origins, or)
		return
	}
	if wildcardSub.MatchString(s) {
		_, prob := origins.ParseConfig(s)
		if prob == nil {
			p.Origins = append(p.Origins, importer.Origin{Kind: importer.OriginExact, Value: s, Src: src})
			return
		}
		// A default port, which browsers never send: the regex never
		// matched.
		r.warn(src, importer.CodeDifference, fmt.Sprintf("%q never matched an Origin browsers send (%s): left out, which changes nothing", s, prob.Msg), prob.Fix)
		return
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok && rest == "*" {
		p.Origins = append(p.Origins, importer.Origin{Kind: importer.OriginPrefix, Value: scheme + "://", Src: src})
		return
	}
	re := strings.ReplaceAll(regexp.QuoteMeta(s), `\*`, ".*")
	r.warn(src, importer.CodeDifference, fmt.Sprintf("Envoy Gateway matches %q with the regex %q, which is written as it is", s, re), "prefer exact origins, or an https://*.example.com pattern")
	p.Origins = append(p.Origins, importer.Origin{Kind: importer.OriginRegex, Value: re, Src: src})
}

// list converts allowMethods, allowHeaders or exposeHeaders. Envoy
// Gateway sends "*" alone when a method or request-header list holds it
// (patchRoute in internal/xds/translator/cors.go), which Envoy echoes; an
// absent list sends no header, and browsers then allow only what is
// safelisted: it is written empty.
func (r *reader) list(o *kubecors.Object, cors *yaml.Node, prefix, key string, corsSrc importer.Source, creds bool,
	conv func([]importer.Value, importer.Source, bool) (importer.List, []importer.Warning)) importer.List {
	w := r.w
	k, v := w.Field(cors, key)
	src := importer.Source{File: o.File, Line: corsSrc.Line, Key: prefix + " without " + key}
	if k != nil {
		src = o.Src(k, prefix+"."+key)
	}
	if k != nil && v.Kind != yaml.SequenceNode && !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
		r.leftOut(src, fmt.Sprintf("%s is %s, not a list: left out", key, describe(v)), "")
		return importer.List{}
	}
	var items []importer.Value
	for _, e := range w.Seq(v) {
		s, ok := w.Str(e)
		if !ok {
			r.leftOut(o.Src(e, prefix+"."+key), fmt.Sprintf("an entry of %s is %s, not a string: left out", key, describe(e)), "")
			continue
		}
		items = append(items, importer.Value{S: s, Src: o.Src(e, prefix+"."+key)})
	}
	if key != "exposeHeaders" && slices.ContainsFunc(items, func(v importer.Value) bool { return v.S == "*" }) {
		for _, it := range items {
			if it.S == "*" {
				items = []importer.Value{it}
				break
			}
		}
	}
	l, ws := conv(items, src, creds)
	r.warns = append(r.warns, ws...)
	for i := range l.Items {
		l.Items[i].Src = src
	}
	return l
}
