package k8s_test

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	istioapinetworking "istio.io/api/networking/v1alpha3"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1alpha3"
)

// istioRootNamespace is the mesh's config root namespace in a default
// install (meshConfig.rootNamespace).
const istioRootNamespace = "istio-system"

// checkEnvoyFilter checks an Istio EnvoyFilter that inserts or removes
// corsproc's filter: the inserted HttpFilter is a valid Envoy config with the
// ext_proc settings corsproc needs, it goes first, and its cluster is the
// one Istio generates for a corsproc Service of the overlay.
func checkEnvoyFilter(r *report, o *object, objs []*object, ps []*pod) {
	ef := as[*istionetworking.EnvoyFilter](o)
	if ef == nil {
		return
	}
	spec := &ef.Spec
	if len(spec.GetConfigPatches()) == 0 {
		r.add(o, "no configPatches")
	}
	for i, cp := range spec.GetConfigPatches() {
		where := fmt.Sprintf("spec.configPatches[%d]", i)
		if cp.GetApplyTo() != istioapinetworking.EnvoyFilter_HTTP_FILTER {
			r.add(o, "%s: applyTo %v, want HTTP_FILTER", where, cp.GetApplyTo())
			continue
		}
		ctx := cp.GetMatch().GetContext()
		if ctx != istioapinetworking.EnvoyFilter_GATEWAY && ctx != istioapinetworking.EnvoyFilter_SIDECAR_INBOUND {
			r.add(o, "%s: match.context %v: corsproc belongs on GATEWAY (an ingress gateway) or SIDECAR_INBOUND (requests arriving at a workload)", where, ctx)
		}
		if f := cp.GetMatch().GetListener().GetFilterChain().GetFilter(); f.GetName() != hcmFilterName {
			r.add(o, "%s: match.listener.filterChain.filter.name %q, want %q: HTTP filters live in the HTTP connection manager", where, f.GetName(), hcmFilterName)
		}
		switch op := cp.GetPatch().GetOperation(); op {
		case istioapinetworking.EnvoyFilter_Patch_INSERT_FIRST:
			value, err := protojson.Marshal(cp.GetPatch().GetValue())
			if err != nil {
				r.add(o, "%s.patch.value: %v", where, err)
				continue
			}
			f := checkHTTPFilter(r, o, where+".patch.value", value)
			if f == nil {
				continue
			}
			if objs != nil {
				checkIstioCluster(r, o, objs, ps, where, f.GetTypedConfig())
			}
		case istioapinetworking.EnvoyFilter_Patch_REMOVE:
			if sub := cp.GetMatch().GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName(); sub != extProcFilterName {
				r.add(o, "%s: REMOVE must match subFilter.name %q, the filter corsproc's EnvoyFilter inserts; it matches %q", where, extProcFilterName, sub)
			}
		case istioapinetworking.EnvoyFilter_Patch_INSERT_BEFORE, istioapinetworking.EnvoyFilter_Patch_INSERT_AFTER, istioapinetworking.EnvoyFilter_Patch_ADD:
			r.add(o, "%s: operation %v: use INSERT_FIRST, so that corsproc answers preflights before Istio's RBAC, ext_authz and JWT filters reject them (istio/istio#29425, #36911, #55318)", where, op)
		default:
			r.add(o, "%s: operation %v is neither INSERT_FIRST (corsproc in) nor REMOVE (an opt-out)", where, op)
		}
	}
}

// checkIstioCluster checks that the ext_proc filter's cluster is the one
// Istio generates for a corsproc Service of the overlay:
// outbound|<port>||<service>.<namespace>.svc.cluster.local.
func checkIstioCluster(r *report, o *object, objs []*object, ps []*pod, where string, typedConfig *anypb.Any) {
	ep := extProcOf(typedConfig)
	if ep == nil {
		return
	}
	name := ep.GetGrpcService().GetEnvoyGrpc().GetClusterName()
	port, host, err := parseIstioCluster(name)
	if err != nil {
		r.add(o, "%s: cluster_name: %v", where, err)
		return
	}
	what := fmt.Sprintf("%s (cluster %s)", where, name)
	if a := ep.GetGrpcService().GetEnvoyGrpc().GetAuthority(); a != host {
		r.add(o, "%s: envoy_grpc.authority %q, want the Service's host %q: without it Envoy sends the cluster name as :authority, which a sidecar on corsproc refuses (docs/istio.md, \"The filter\")", what, a, host)
	}
	if strings.Count(strings.TrimSuffix(host, ".svc.cluster.local"), ".") != 1 {
		r.add(o, "%s: the host must be <service>.<namespace>.svc.cluster.local", what)
		return
	}
	checkServiceAddress(r, o, objs, ps, "", host, port, what, false)
}
