package k8s_test

// How Envoy Gateway treats corsproc's objects, beyond their syntax: one
// EnvoyExtensionPolicy per target, the route names a policy can select by,
// ext_proc running only on routes a request matches, the EnvoyProxy merge
// and the filters still ahead of ext_proc. docs/envoy-gateway.md explains
// each, with the Envoy Gateway v1.9.1 sources read.

import (
	"bytes"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	"go.yaml.in/yaml/v3"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/corsproc/corsproc/envoy/configcheck"
)

const egDoc = "../docs/envoy-gateway.md"

// egRouteName is the form of Envoy Gateway's route names, defined once for
// `corsproc check --route-names envoy-gateway` and these tests.
var egRouteName = configcheck.EnvoyGatewayRouteName

// renderDecoded renders an overlay of tr and decodes its objects, failing
// the test on any decoding problem.
func renderDecoded(t *testing.T, tr tree, overlay string) []*object {
	t.Helper()
	objs, err := render(tr, overlay)
	if err != nil {
		t.Fatal(err)
	}
	r := &report{overlay: overlay}
	for _, o := range objs {
		decode(r, o)
	}
	for _, p := range r.problems {
		t.Error(p)
	}
	return objs
}

// docObjects decodes the objects of kind shown in a doc's yaml blocks into
// T, strictly.
func docObjects[T any](t *testing.T, doc, kind string) []T {
	t.Helper()
	var out []T
	for _, m := range yamlBlock.FindAllSubmatch(readFile(t, doc), -1) {
		if !bytes.Contains(m[1], []byte("kind: "+kind+"\n")) {
			continue
		}
		js, err := yamlToJSON(m[1])
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		var v T
		strict, err := sigsjson.UnmarshalStrict(js, &v)
		if err != nil {
			t.Fatalf("%s: %s: %v", doc, kind, err)
		}
		for _, e := range strict {
			t.Errorf("%s: %s: %v", doc, kind, e)
		}
		out = append(out, v)
	}
	return out
}

// TestEnvoyExtensionPolicyTargets checks the attachment of corsproc's
// EnvoyExtensionPolicies, the overlay's and the docs': Envoy Gateway attaches
// one policy per Gateway or route, the oldest, and marks the others
// Conflicted (v1.9.1, internal/gatewayapi/envoyextensionpolicy.go
// resolveEnvoyExtensionPolicyGatewayTargetRef and
// resolveEnvoyExtensionPolicyRouteTargetRef); a policy on a route without
// mergeType replaces the Gateway's there (processEnvoyExtensionPolicyForRoute).
// So corsproc's policy targets routes only with a mergeType, which merges
// it into the Gateway's policy, and never two of the overlay's policies
// share a target. The docs must say how to see the Conflicted condition.
func TestEnvoyExtensionPolicyTargets(t *testing.T) {
	type target struct{ kind, namespace, name, section string }
	var policies []*egv1a1.EnvoyExtensionPolicy
	for _, o := range typed[*egv1a1.EnvoyExtensionPolicy](renderDecoded(t, loadTree(t), "envoy-gateway-api")) {
		policies = append(policies, as[*egv1a1.EnvoyExtensionPolicy](o))
	}
	if len(policies) == 0 {
		t.Fatal("no EnvoyExtensionPolicy in k8s/envoy-gateway-api")
	}
	owner := map[target]string{}
	for _, p := range policies {
		for _, tr := range p.Spec.TargetRefs {
			k := target{string(tr.Kind), p.Namespace, string(tr.Name), ""}
			if tr.SectionName != nil {
				k.section = string(*tr.SectionName)
			}
			if other, ok := owner[k]; ok {
				t.Errorf("EnvoyExtensionPolicies %s and %s/%s both target %s %s/%s: Envoy Gateway applies the older and marks the other Conflicted", other, p.Namespace, p.Name, k.kind, k.namespace, k.name)
			}
			owner[k] = p.Namespace + "/" + p.Name
		}
	}
	docPolicies := docObjects[egv1a1.EnvoyExtensionPolicy](t, egDoc, "EnvoyExtensionPolicy")
	routeLevel := 0
	for i := range docPolicies {
		policies = append(policies, &docPolicies[i])
	}
	for _, p := range policies {
		for _, tr := range p.Spec.TargetRefs {
			switch tr.Kind {
			case "HTTPRoute", "GRPCRoute":
				routeLevel++
				if p.Spec.MergeType == nil || *p.Spec.MergeType == egv1a1.Replace {
					t.Errorf("EnvoyExtensionPolicy %s/%s targets %s %q without mergeType: it replaces the Gateway's policy on that route and takes the route's one slot, so another team's policy there is Conflicted or makes corsproc's Conflicted; set mergeType: StrategicMerge, or target the Gateway only", p.Namespace, p.Name, tr.Kind, tr.Name)
				}
			case "Gateway", "ListenerSet":
				if p.Spec.MergeType != nil {
					t.Errorf("EnvoyExtensionPolicy %s/%s: mergeType with a %s target: the CRD allows it with xRoute targets only", p.Namespace, p.Name, tr.Kind)
				}
			}
		}
	}
	if routeLevel == 0 {
		t.Errorf("%s shows no route-level EnvoyExtensionPolicy with mergeType: the way in when another policy already targets the Gateway", egDoc)
	}
	doc := string(readFile(t, egDoc))
	for _, want := range []string{"Conflicted", `conditions[?(@.type=="Accepted")]`} {
		if !strings.Contains(doc, want) {
			t.Errorf("%s does not say %q: it must show how to see that Envoy Gateway did not apply corsproc's policy", egDoc, want)
		}
	}
}

// TestGatewayRouteNames checks that under Envoy Gateway no policy selects by
// a route name Envoy Gateway cannot generate (the base's storefront is
// envoy/envoy.yaml's), and that every concrete route name the docs and the
// overlay's comments show has Envoy Gateway's form.
func TestGatewayRouteNames(t *testing.T) {
	objs := renderDecoded(t, loadTree(t), "envoy-gateway-api")
	cm := find(objs, "ConfigMap", ns, policyMap)
	if cm == nil {
		t.Fatalf("k8s/envoy-gateway-api: no ConfigMap %s/%s", ns, policyMap)
	}
	for key, data := range configMapData(cm) {
		var pf struct {
			Policies []struct {
				Name  string `yaml:"name"`
				Match struct {
					Routes []string `yaml:"routes"`
				} `yaml:"match"`
			} `yaml:"policies"`
		}
		if err := yaml.Unmarshal([]byte(data), &pf); err != nil {
			t.Fatalf("%s: key %q: %v", cm, key, err)
		}
		for _, p := range pf.Policies {
			for _, route := range p.Match.Routes {
				if !egRouteName.MatchString(route) {
					t.Errorf("k8s/envoy-gateway-api: %s: key %q: policy %q selects route %q, a name Envoy Gateway never gives a route (they look like httproute/<namespace>/<name>/rule/<i>/match/<j>/<host with dots as underscores>): the policy never applies; select by match.hosts and match.path_prefixes", cm, key, p.Name, route)
				}
			}
		}
	}
	concrete := regexp.MustCompile("(?:httproute|grpcroute)/[^\\s`'\"<>),]+")
	files := []string{egDoc, "envoy-gateway-api/envoyextensionpolicy.yaml", "envoy-gateway-api/policy.yaml"}
	shown := 0
	for _, f := range files {
		for _, name := range concrete.FindAllString(string(readFile(t, f)), -1) {
			name = strings.TrimRight(name, ".:;")
			if !strings.Contains(name, "/rule/") {
				continue // a prefix, such as httproute/<namespace>/...
			}
			shown++
			if !egRouteName.MatchString(name) {
				t.Errorf("%s shows the route name %q, which Envoy Gateway never generates (want the form %s)", f, name, egRouteName)
			}
		}
	}
	if shown == 0 {
		t.Errorf("%s shows no concrete Envoy Gateway route name: show one, with its host's dots as underscores", egDoc)
	}
}

// preflightReaches reports whether a CORS preflight (OPTIONS, with Origin
// and Access-Control-Request-* but no Authorization or cookies) to a
// request matching m also matches some match of the route: Envoy Gateway
// enables ext_proc only on its routes (v1.9.1,
// internal/xds/translator/extproc.go), so a preflight no rule matches gets
// Envoy's 404 without corsproc.
func preflightReaches(route *gwapiv1.HTTPRoute, m gwapiv1.HTTPRouteMatch) bool {
	for _, rule := range route.Spec.Rules {
		for _, pm := range rule.Matches {
			if pm.Method != nil && *pm.Method != gwapiv1.HTTPMethodOptions {
				continue
			}
			if !reflect.DeepEqual(pm.Path, m.Path) && (pm.Path == nil || pm.Path.Value == nil || *pm.Path.Value != "/") {
				continue
			}
			ok := true
			for _, h := range pm.Headers {
				switch strings.ToLower(string(h.Name)) {
				case "origin", "access-control-request-method", "access-control-request-headers":
				default:
					ok = false // a preflight carries no other header the route could require
				}
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// TestGatewayPreflightRoute checks that docs/envoy-gateway.md shows an
// HTTPRoute whose rules let preflights in, and that every match of it that
// a preflight cannot take (a method other than OPTIONS, a header) has one
// beside it that the preflight does take.
func TestGatewayPreflightRoute(t *testing.T) {
	routes := docObjects[gwapiv1.HTTPRoute](t, egDoc, "HTTPRoute")
	if len(routes) == 0 {
		t.Fatalf("%s shows no HTTPRoute: show the rule shape that lets preflights reach corsproc", egDoc)
	}
	restricted := 0
	for i := range routes {
		route := &routes[i]
		for ri, rule := range route.Spec.Rules {
			for mi, m := range rule.Matches {
				if m.Method == nil && len(m.Headers) == 0 {
					continue
				}
				if m.Method != nil && *m.Method == gwapiv1.HTTPMethodOptions {
					continue
				}
				restricted++
				if !preflightReaches(route, m) {
					method := "any"
					if m.Method != nil {
						method = string(*m.Method)
					}
					t.Errorf("%s: HTTPRoute %s: rules[%d].matches[%d] (method %s, %d header matches) has no match a preflight to the same path takes: Envoy Gateway answers it 404 without calling corsproc", egDoc, route.Name, ri, mi, method, len(m.Headers))
				}
			}
		}
	}
	if restricted == 0 {
		t.Errorf("%s: its HTTPRoutes restrict no match by method or header: show the case that needs an OPTIONS match", egDoc)
	}
}

// egFiltersBeforeExtProc replays Envoy Gateway's default order and an
// EnvoyProxy's filterOrder on every combination of its authentication
// filters, and returns the filters that come before ext_proc in any of them.
func egFiltersBeforeExtProc(order []egv1a1.FilterPosition) []egv1a1.EnvoyFilter {
	var before []egv1a1.EnvoyFilter
	for _, chain := range egChains(order) {
		for _, f := range chain[:slices.Index(chain, egv1a1.EnvoyFilterExtProc)] {
			if !slices.Contains(before, f) {
				before = append(before, f)
			}
		}
	}
	return before
}

// TestEnvoyProxyMerge checks that corsproc's EnvoyProxy merges into the
// GatewayClass's instead of replacing it (without mergeType a Gateway's
// EnvoyProxy replaces the class's whole spec; v1.9.1,
// internal/gatewayapi/envoyproxy_merge.go MergeEnvoyProxyConfigs), and
// that the docs and the manifest name every Envoy Gateway filter still
// running before ext_proc with its filterOrder.
func TestEnvoyProxyMerge(t *testing.T) {
	eps := typed[*egv1a1.EnvoyProxy](renderDecoded(t, loadTree(t), "envoy-gateway-api"))
	if len(eps) == 0 {
		t.Fatal("no EnvoyProxy in k8s/envoy-gateway-api")
	}
	const section = "## What still runs before corsproc"
	doc := string(readFile(t, egDoc))
	if i := strings.Index(doc, section); i < 0 {
		t.Errorf("%s has no section %q", egDoc, section)
	} else {
		doc = doc[i+len(section):]
		if j := strings.Index(doc, "\n## "); j >= 0 {
			doc = doc[:j]
		}
	}
	manifest := string(readFile(t, "envoy-gateway-api/envoyproxy.yaml"))
	for _, o := range eps {
		ep := as[*egv1a1.EnvoyProxy](o)
		if mt := ep.Spec.MergeType; mt == nil || *mt == egv1a1.Replace {
			t.Errorf("%s: no mergeType (or Replace): referenced from a Gateway it replaces the GatewayClass's EnvoyProxy, provider and telemetry settings included; set mergeType: StrategicMerge", o)
		}
		before := egFiltersBeforeExtProc(ep.Spec.FilterOrder)
		if len(before) == 0 {
			t.Fatalf("%s: nothing before ext_proc: the replay is broken", o)
		}
		for _, f := range before {
			short := strings.TrimPrefix(string(f), "envoy.filters.http.")
			for file, text := range map[string]string{egDoc: doc, "k8s/envoy-gateway-api/envoyproxy.yaml": manifest} {
				if !regexp.MustCompile(`\b` + short + `\b`).MatchString(text) {
					t.Errorf("%s: %s runs before ext_proc with the filterOrder of %s, and it does not say so", file, f, o)
				}
			}
		}
	}
}
