package k8s_test

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/corsproc/corsproc/envoy/configcheck"
)

// The attribute pattern of Envoy Gateway's CRD (ProcessingModeOptions
// .attributes, a kubebuilder marker the Go type does not enforce).
var egAttributePattern = regexp.MustCompile(`^(connection\.|source\.|destination\.|request\.|response\.|upstream\.|xds\.route_)[a-z_1-9]*$`)

// egDefaultFilterOrder is Envoy Gateway v1.9.1's default order of HTTP
// filters (internal/xds/translator/httpfilters.go, newOrderedHTTPFilter),
// the types filterOrder may name.
var egDefaultFilterOrder = []egv1a1.EnvoyFilter{
	egv1a1.EnvoyFilterCustomResponse,
	egv1a1.EnvoyFilterHealthCheck,
	egv1a1.EnvoyFilterFault,
	egv1a1.EnvoyFilterCORS,
	egv1a1.EnvoyFilterCSRF,
	egv1a1.EnvoyFilterHeaderMutation,
	egv1a1.EnvoyFilterExtAuthz,
	egv1a1.EnvoyFilterAPIKeyAuth,
	egv1a1.EnvoyFilterBasicAuth,
	egv1a1.EnvoyFilterOAuth2,
	egv1a1.EnvoyFilterJWTAuthn,
	egv1a1.EnvoyFilterSessionPersistence,
	egv1a1.EnvoyFilterBuffer,
	egv1a1.EnvoyFilterLua,
	egv1a1.EnvoyFilterExtProc,
	egv1a1.EnvoyFilterWasm,
	egv1a1.EnvoyFilterDynamicModules,
	egv1a1.EnvoyFilterGeoIP,
	egv1a1.EnvoyFilterRBAC,
	egv1a1.EnvoyFilterLocalRateLimit,
	egv1a1.EnvoyFilterRateLimit,
	egv1a1.EnvoyFilterBandwidthLimit,
	egv1a1.EnvoyFilterGRPCWeb,
	egv1a1.EnvoyFilterGRPCStats,
	egv1a1.EnvoyFilterCredentialInjector,
	egv1a1.EnvoyFilterCompressor,
	egv1a1.EnvoyFilterDynamicForwardProxy,
	egv1a1.EnvoyFilterRouter,
}

// egAuthFilters are Envoy Gateway's filters that can reject a preflight
// (401/403) before ext_proc in the default order.
var egAuthFilters = []egv1a1.EnvoyFilter{
	egv1a1.EnvoyFilterExtAuthz,
	egv1a1.EnvoyFilterAPIKeyAuth,
	egv1a1.EnvoyFilterBasicAuth,
	egv1a1.EnvoyFilterOAuth2,
	egv1a1.EnvoyFilterJWTAuthn,
}

func checkGatewayObjects(r *report, objs []*object, ps []*pod) {
	for _, o := range typed[*egv1a1.EnvoyExtensionPolicy](objs) {
		checkExtensionPolicy(r, o, objs, ps)
	}
	for _, o := range typed[*egv1a1.EnvoyProxy](objs) {
		checkFilterOrder(r, o)
	}
}

func checkExtensionPolicy(r *report, o *object, objs []*object, ps []*pod) {
	p := as[*egv1a1.EnvoyExtensionPolicy](o)
	if len(p.Spec.TargetRefs) == 0 && p.Spec.TargetRef == nil && len(p.Spec.TargetSelectors) == 0 {
		r.add(o, "no targetRefs: the policy attaches to nothing")
	}
	for i, t := range p.Spec.TargetRefs {
		if t.Group != gwapiv1.GroupName || !slices.Contains([]gwapiv1.Kind{"Gateway", "HTTPRoute", "GRPCRoute", "ListenerSet"}, t.Kind) || t.Name == "" {
			r.add(o, "spec.targetRefs[%d]: %s/%s %q: want a Gateway or an HTTPRoute of group %s", i, t.Group, t.Kind, t.Name, gwapiv1.GroupName)
		}
	}
	if len(p.Spec.ExtProc) == 0 {
		r.add(o, "no extProc")
	}
	for i, ep := range p.Spec.ExtProc {
		where := fmt.Sprintf("spec.extProc[%d]", i)
		if ep.BackendRef != nil {
			r.add(o, "%s: backendRef is deprecated (and refused by the CRD): use backendRefs", where)
		}
		if len(ep.BackendRefs) != 1 {
			r.add(o, "%s: %d backendRefs, want the corsproc Service", where, len(ep.BackendRefs))
		}
		for j, br := range ep.BackendRefs {
			checkBackendRef(r, o, objs, ps, fmt.Sprintf("%s.backendRefs[%d]", where, j), p.Namespace, br.BackendObjectReference)
		}
		pm := ep.ProcessingMode
		switch {
		case pm == nil:
			r.add(o, "%s: no processingMode: Envoy Gateway would send corsproc neither request nor response headers", where)
		case pm.Request == nil:
			r.add(o, "%s.processingMode: no request: Envoy Gateway sends the request headers only when it is present", where)
		case pm.Response == nil:
			r.add(o, "%s.processingMode: no response: Envoy Gateway sends the response headers only when it is present, and corsproc writes the CORS headers there", where)
		}
		if pm != nil {
			if pm.Request != nil {
				if !slices.Contains(pm.Request.Attributes, configcheck.AttributeRoute) {
					r.add(o, "%s.processingMode.request.attributes = %q, want it to hold %q: policies select routes by it", where, pm.Request.Attributes, configcheck.AttributeRoute)
				}
				for _, a := range pm.Request.Attributes {
					if !egAttributePattern.MatchString(a) {
						r.add(o, "%s.processingMode.request.attributes: %q does not match the CRD's pattern %s", where, a, egAttributePattern)
					}
				}
			}
			for dir, opts := range map[string]*egv1a1.ProcessingModeOptions{"request": pm.Request, "response": pm.Response} {
				if opts != nil && opts.Body != nil {
					r.add(o, "%s.processingMode.%s.body is set: corsproc never needs a body, and every payload would go through it", where, dir)
				}
			}
			if !pm.AllowModeOverride {
				r.add(o, "%s.processingMode.allowModeOverride must be true: corsproc skips the response phase of requests that need nothing", where)
			}
		}
		if ep.MessageTimeout == nil {
			r.add(o, "%s: messageTimeout must be set (and explained)", where)
		} else if d, err := time.ParseDuration(string(*ep.MessageTimeout)); err != nil || d <= 0 || d > time.Second {
			r.add(o, "%s: messageTimeout %q: want a positive duration of at most 1s", where, *ep.MessageTimeout)
		}
		if ep.FailOpen == nil || !*ep.FailOpen {
			r.add(o, "%s: failOpen must be true: failing closed (the default) turns a corsproc outage into 500s for the whole Gateway", where)
		}
		if ep.ShadowMode != nil && *ep.ShadowMode {
			r.add(o, "%s: shadowMode makes Envoy ignore corsproc's answers", where)
		}
		var cb *egv1a1.CircuitBreaker
		if ep.BackendSettings != nil {
			cb = ep.BackendSettings.CircuitBreaker
		}
		if cb == nil || cb.MaxParallelRequests == nil || *cb.MaxParallelRequests <= 1024 {
			r.add(o, "%s: backendSettings.circuitBreaker.maxParallelRequests must be raised above Envoy's default 1024: every request in flight holds one ext_proc stream", where)
		}
	}
}

// checkBackendRef checks that a backendRef is a Service of the overlay
// leading to corsproc's gRPC port, and that a ReferenceGrant allows it when
// it crosses namespaces.
func checkBackendRef(r *report, o *object, objs []*object, ps []*pod, where, policyNS string, br gwapiv1.BackendObjectReference) {
	if br.Group != nil && *br.Group != "" || br.Kind != nil && *br.Kind != "Service" {
		r.add(o, "%s: want a core Service, got %v/%v", where, br.Group, br.Kind)
		return
	}
	ns := policyNS
	if br.Namespace != nil {
		ns = string(*br.Namespace)
	}
	if br.Port == nil {
		r.add(o, "%s: no port", where)
		return
	}
	checkServiceAddress(r, o, objs, ps, ns, string(br.Name), uint32(*br.Port), where, false)
	if ns == policyNS {
		return
	}
	for _, g := range typed[*gwapiv1beta1.ReferenceGrant](objs) {
		rg := as[*gwapiv1beta1.ReferenceGrant](g)
		if rg.Namespace != ns {
			continue
		}
		from := slices.ContainsFunc(rg.Spec.From, func(f gwapiv1beta1.ReferenceGrantFrom) bool {
			return f.Group == egv1a1.GroupName && f.Kind == egv1a1.KindEnvoyExtensionPolicy && string(f.Namespace) == policyNS
		})
		to := slices.ContainsFunc(rg.Spec.To, func(t gwapiv1beta1.ReferenceGrantTo) bool {
			return t.Group == "" && t.Kind == "Service" && (t.Name == nil || *t.Name == br.Name)
		})
		if from && to {
			return
		}
	}
	r.add(o, "%s: Service %s/%s is in another namespace, and no ReferenceGrant in %q lets EnvoyExtensionPolicies of %q use it: Envoy Gateway would refuse the reference", where, ns, br.Name, ns, policyNS)
}

// checkFilterOrder replays Envoy Gateway's filterOrder algorithm (v1.9.1,
// sortHTTPFilters) on every combination of its authentication filters and
// checks that ext_proc always ends up before all of them.
func checkFilterOrder(r *report, o *object) {
	ep := as[*egv1a1.EnvoyProxy](o)
	order := ep.Spec.FilterOrder
	for i, fp := range order {
		for _, f := range []*egv1a1.EnvoyFilter{&fp.Name, fp.Before, fp.After} {
			if f != nil && !slices.Contains(egDefaultFilterOrder, *f) {
				r.add(o, "spec.filterOrder[%d]: %q is not a filter type Envoy Gateway knows", i, *f)
				return
			}
		}
		if (fp.Before == nil) == (fp.After == nil) {
			r.add(o, "spec.filterOrder[%d]: exactly one of before and after must be set", i)
			return
		}
	}
	for _, chain := range egChains(order) {
		pos := slices.Index(chain, egv1a1.EnvoyFilterExtProc)
		for _, f := range egAuthFilters {
			if i := slices.Index(chain, f); i >= 0 && i < pos {
				r.add(o, "spec.filterOrder leaves ext_proc after %s in the chain %v: preflights would be rejected before corsproc sees them", f, chain)
				return
			}
		}
	}
}

// egChains returns Envoy Gateway's default filter chain with every
// combination of its authentication filters present, each reordered by an
// EnvoyProxy's filterOrder.
func egChains(order []egv1a1.FilterPosition) [][]egv1a1.EnvoyFilter {
	var chains [][]egv1a1.EnvoyFilter
	for mask := range 1 << len(egAuthFilters) {
		var chain []egv1a1.EnvoyFilter
		for _, f := range egDefaultFilterOrder {
			if i := slices.Index(egAuthFilters, f); i >= 0 && mask&(1<<i) == 0 {
				continue
			}
			chain = append(chain, f)
		}
		chains = append(chains, applyFilterOrder(chain, order))
	}
	return chains
}

// applyFilterOrder moves filters as Envoy Gateway does: for each position in
// turn, the named filter goes right before the first filter of type Before,
// or right after the last of type After, when that one is in the chain.
func applyFilterOrder(chain []egv1a1.EnvoyFilter, order []egv1a1.FilterPosition) []egv1a1.EnvoyFilter {
	chain = slices.Clone(chain)
	for _, fp := range order {
		from := slices.Index(chain, fp.Name)
		if from < 0 {
			continue
		}
		var anchor egv1a1.EnvoyFilter
		if fp.Before != nil {
			anchor = *fp.Before
		} else {
			anchor = *fp.After
		}
		if !slices.Contains(chain, anchor) {
			continue
		}
		chain = slices.Delete(chain, from, from+1)
		to := slices.Index(chain, anchor)
		if fp.After != nil {
			for i, f := range chain {
				if f == anchor {
					to = i + 1 // after the last one
				}
			}
		}
		chain = slices.Insert(chain, to, fp.Name)
	}
	return chain
}
