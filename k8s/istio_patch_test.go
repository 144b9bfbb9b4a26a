package k8s_test

// How Istio and Envoy treat corsproc's EnvoyFilters, beyond their syntax:
// the :authority of the ext_proc streams, the filter's name, the order in
// which istiod applies patch sets, the annotation that keeps the cluster on
// filtering gateways, and the one place the Service's host name is set.
// docs/istio.md explains each, with the Istio and Envoy sources read.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	istioapinetworking "istio.io/api/networking/v1alpha3"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1alpha3"
)

const (
	// istioExtProcName is the name Istio gives its own ext_proc filter (the
	// InferencePool one) and keys its per-route ExtProcPerRoute by (Istio
	// 1.31, pilot/pkg/xds/filters/filters.go InferencePoolExtProc,
	// pilot/pkg/networking/core/route/route.go): corsproc must not use it.
	istioExtProcName = "envoy.filters.http.ext_proc"
	// referencedServicesAnnotation names the Services an EnvoyFilter needs
	// that no route of a gateway uses (Istio 1.31, pilot/pkg/model
	// envoyfilter.go convertToEnvoyFilterWrapper; read by push_context.go
	// extraServicesForProxy for gateways and waypoints).
	referencedServicesAnnotation = "envoyfilter.istio.io/referenced-services"
	// istioServiceFile is the local-config object of each Istio overlay that
	// holds the corsproc Service's host name.
	istioServiceFile = "corsproc-service.yaml"
)

var istioOverlays = []string{"istio-ingress", "istio-mesh"}

// validAuthority reports whether s is made only of the characters an
// HTTP/2 :authority may hold, the set Envoy checks a request's authority
// against (source/common/http/header_utility.cc,
// HeaderUtility::authorityIsValid: RFC 3986's reg-name, IP-literal and port
// characters). `|` is not one of them.
func validAuthority(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@[]%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// envoyGrpcServices returns every GrpcService.EnvoyGrpc inside m, looking
// into the typed_config (Any) fields too.
func envoyGrpcServices(m proto.Message) []*corev3.GrpcService_EnvoyGrpc {
	var out []*corev3.GrpcService_EnvoyGrpc
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if eg, ok := m.Interface().(*corev3.GrpcService_EnvoyGrpc); ok {
			out = append(out, eg)
			return
		}
		if a, ok := m.Interface().(*anypb.Any); ok {
			if inner, err := a.UnmarshalNew(); err == nil {
				walk(inner.ProtoReflect())
			}
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind:
			case fd.IsList():
				for i := range v.List().Len() {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap():
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
						walk(mv.Message())
						return true
					})
				}
			default:
				walk(v.Message())
			}
			return true
		})
	}
	walk(m.ProtoReflect())
	return out
}

// envoyConfigs returns the Envoy configurations an overlay ships, each with
// where it comes from: the HTTP filters of EnvoyFilter patches and the
// bootstraps in ConfigMaps.
func envoyConfigs(t *testing.T, objs []*object) map[string]proto.Message {
	t.Helper()
	out := map[string]proto.Message{}
	for _, o := range envoyFilters(objs) {
		for i, cp := range as[*istionetworking.EnvoyFilter](o).Spec.GetConfigPatches() {
			if cp.GetPatch().GetValue() == nil {
				continue
			}
			js, err := protojson.Marshal(cp.GetPatch().GetValue())
			if err != nil {
				t.Errorf("%s: %v", o, err)
				continue
			}
			r := &report{overlay: o.overlay}
			if f := checkHTTPFilter(r, o, "", js); f != nil {
				out[fmt.Sprintf("%s: spec.configPatches[%d].patch.value", o, i)] = f
			}
		}
	}
	for _, o := range objs {
		for key, data := range configMapData(o) {
			if bs, err := loadBootstrap([]byte(data)); err == nil {
				out[fmt.Sprintf("%s: key %q", o, key)] = bs
			}
		}
	}
	return out
}

// TestEnvoyGrpcAuthority checks the :authority of every gRPC stream the
// shipped Envoy configurations open (docs/istio.md, "The filter"). Without
// envoy_grpc.authority Envoy sends the cluster name
// (source/common/grpc/async_client_impl.cc, AsyncStreamImpl::initialize),
// and Istio's cluster names (outbound|9001||host) hold `|`, which a sidecar
// on corsproc refuses. Istio's own ext_authz sets the Service's host (Istio
// 1.31, pilot/pkg/security/authz/builder/extauthz.go generateGRPCConfig);
// corsproc's EnvoyFilters must too.
func TestEnvoyGrpcAuthority(t *testing.T) {
	tr := loadTree(t)
	seen := 0
	for _, overlay := range overlays {
		objs := renderDecoded(t, tr, overlay)
		for where, m := range envoyConfigs(t, objs) {
			for _, eg := range envoyGrpcServices(m) {
				seen++
				authority := eg.GetAuthority()
				if authority == "" {
					authority = eg.GetClusterName()
				}
				if !validAuthority(authority) {
					t.Errorf("k8s/%s: %s: envoy_grpc of cluster %q sends :authority %q, which is not a valid authority: set envoy_grpc.authority to the Service's host name", overlay, where, eg.GetClusterName(), authority)
					continue
				}
				if _, host, err := parseIstioCluster(eg.GetClusterName()); err == nil && eg.GetAuthority() != host {
					t.Errorf("k8s/%s: %s: envoy_grpc.authority %q, want the host of cluster %q, %q (what Istio's ext_authz sends)", overlay, where, eg.GetAuthority(), eg.GetClusterName(), host)
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("no envoy_grpc found in any overlay: the walk is broken")
	}
}

// TestIstioFilterName checks that corsproc's filter has a name of its own in
// every EnvoyFilter, the docs' included: Istio names its InferencePool
// ext_proc envoy.filters.http.ext_proc and keys per-route overrides by that
// name, and a REMOVE strips every filter of its subFilter name (Istio 1.31,
// pilot/pkg/networking/core/envoyfilter/listener_patch.go patchHTTPFilters).
func TestIstioFilterName(t *testing.T) {
	tr := loadTree(t)
	var efs []*object
	for _, overlay := range istioOverlays {
		objs := renderDecoded(t, tr, overlay)
		efs = append(efs, envoyFilters(objs)...)
	}
	efs = append(efs, docEnvoyFilters(t, "../docs/istio.md")...)
	inserts, removes := 0, 0
	for _, o := range efs {
		for i, cp := range as[*istionetworking.EnvoyFilter](o).Spec.GetConfigPatches() {
			switch cp.GetPatch().GetOperation() {
			case istioapinetworking.EnvoyFilter_Patch_INSERT_FIRST:
				inserts++
				name := cp.GetPatch().GetValue().GetFields()["name"].GetStringValue()
				if name != extProcFilterName {
					t.Errorf("%s: spec.configPatches[%d] inserts a filter named %q, want %q: %q is Istio's own ext_proc", o, i, name, extProcFilterName, istioExtProcName)
				}
			case istioapinetworking.EnvoyFilter_Patch_REMOVE:
				removes++
				sub := cp.GetMatch().GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName()
				if sub != extProcFilterName {
					t.Errorf("%s: spec.configPatches[%d] removes the filters named %q, want %q: a REMOVE of %q would also strip Istio's InferencePool ext_proc", o, i, sub, extProcFilterName, istioExtProcName)
				}
			}
		}
	}
	if inserts < 2 || removes < 2 {
		t.Errorf("found %d inserting and %d removing patches (overlays and docs/istio.md), want at least 2 of each", inserts, removes)
	}
}

// docEnvoyFilters decodes the EnvoyFilters shown in a doc's yaml blocks.
func docEnvoyFilters(t *testing.T, doc string) []*object {
	t.Helper()
	data := readFile(t, doc)
	var out []*object
	for _, m := range yamlBlock.FindAllSubmatch(data, -1) {
		if !bytes.Contains(m[1], []byte("kind: EnvoyFilter")) {
			continue
		}
		o := &object{overlay: doc, apiVersion: istionetworking.SchemeGroupVersion.String(), kind: "EnvoyFilter", origin: doc}
		js, err := yamlToJSON(m[1])
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		o.data = js
		r := &report{overlay: doc}
		decode(r, o)
		if o.typed == nil {
			t.Fatalf("%s: %v", doc, r.problems)
		}
		out = append(out, o)
	}
	return out
}

// istioPatchSet is an EnvoyFilter as istiod orders and applies it.
type istioPatchSet struct {
	name, namespace string
	priority        int32
	created         int // creation order
	patches         []*istioapinetworking.EnvoyFilter_EnvoyConfigObjectPatch
}

// sortIstioPatchSets orders patch sets as istiod does for one proxy (Istio
// 1.31, pilot/pkg/model/push_context.go EnvoyFilters): priority, then the
// root namespace's before the workload namespace's, then creation time,
// then name. Without rootFirst it leaves the namespace out, as the sort key
// in the priority field's documentation in istio.io/api does (priority,
// creation time, name): corsproc's order must follow from priorities alone.
func sortIstioPatchSets(sets []istioPatchSet, root string, rootFirst bool) {
	slices.SortStableFunc(sets, func(a, b istioPatchSet) int {
		if a.priority != b.priority {
			return int(a.priority - b.priority)
		}
		if rootFirst && a.namespace != b.namespace && (a.namespace == root || b.namespace == root) {
			if a.namespace == root {
				return -1
			}
			return 1
		}
		if a.created != b.created {
			return a.created - b.created
		}
		return strings.Compare(a.name+"."+a.namespace, b.name+"."+b.namespace)
	})
}

// applyHTTPFilterPatches applies the HTTP_FILTER patches of context ctx to a
// chain of filter names as istiod does (Istio 1.31,
// pilot/pkg/networking/core/envoyfilter/listener_patch.go
// patchHTTPFilters): INSERT_FIRST puts the value in front of the chain,
// REMOVE drops every filter named by the subFilter.
func applyHTTPFilterPatches(chain []string, sets []istioPatchSet, ctx istioapinetworking.EnvoyFilter_PatchContext) []string {
	chain = slices.Clone(chain)
	for _, s := range sets {
		for _, cp := range s.patches {
			if cp.GetApplyTo() != istioapinetworking.EnvoyFilter_HTTP_FILTER || cp.GetMatch().GetContext() != ctx {
				continue
			}
			switch cp.GetPatch().GetOperation() {
			case istioapinetworking.EnvoyFilter_Patch_INSERT_FIRST:
				chain = slices.Insert(chain, 0, cp.GetPatch().GetValue().GetFields()["name"].GetStringValue())
			case istioapinetworking.EnvoyFilter_Patch_REMOVE:
				if sub := cp.GetMatch().GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName(); sub != "" {
					chain = slices.DeleteFunc(chain, func(f string) bool { return f == sub })
				}
			}
		}
	}
	return chain
}

// thirdPartyFirst is another team's EnvoyFilter that inserts its filter
// FIRST at the default priority, an oauth2 or a Lua authentication filter.
func thirdPartyFirst(namespace string, ctx istioapinetworking.EnvoyFilter_PatchContext, created int) istioPatchSet {
	value, err := structOf(map[string]any{"name": "envoy.filters.http.lua"})
	if err != nil {
		panic(err)
	}
	return istioPatchSet{name: "lua-auth", namespace: namespace, created: created, patches: []*istioapinetworking.EnvoyFilter_EnvoyConfigObjectPatch{{
		ApplyTo: istioapinetworking.EnvoyFilter_HTTP_FILTER,
		Match:   &istioapinetworking.EnvoyFilter_EnvoyConfigObjectMatch{Context: ctx},
		Patch:   &istioapinetworking.EnvoyFilter_Patch{Operation: istioapinetworking.EnvoyFilter_Patch_INSERT_FIRST, Value: value},
	}}}
}

// TestIstioPatchOrder replays istiod's ordering of patch sets on the Istio
// overlays with another team's EnvoyFilter that also inserts FIRST, created
// before or after corsproc's, in the root or the workload's namespace:
// corsproc's filter must come first on the gateway and on sidecars, and the
// opt-out must remove it whatever the creation order and without relying on
// the root-namespace tie-break (docs/istio.md, "Order of EnvoyFilters").
func TestIstioPatchOrder(t *testing.T) {
	tr := loadTree(t)
	chain := []string{"istio.metadata_exchange", "envoy.filters.http.jwt_authn", "istio_authn", "envoy.filters.http.rbac", "envoy.filters.http.router"}
	for _, overlay := range istioOverlays {
		objs := renderDecoded(t, tr, overlay)
		var ours []istioPatchSet
		var ctx istioapinetworking.EnvoyFilter_PatchContext
		var inserted string // the name of the filter the overlay inserts
		for _, o := range envoyFilters(objs) {
			ef := as[*istionetworking.EnvoyFilter](o)
			ours = append(ours, istioPatchSet{name: o.name, namespace: o.namespace, priority: ef.Spec.GetPriority(), patches: ef.Spec.GetConfigPatches()})
			for _, cp := range ef.Spec.GetConfigPatches() {
				if cp.GetPatch().GetOperation() == istioapinetworking.EnvoyFilter_Patch_INSERT_FIRST {
					ctx = cp.GetMatch().GetContext()
					inserted = cp.GetPatch().GetValue().GetFields()["name"].GetStringValue()
				}
			}
		}
		if inserted == "" {
			t.Fatalf("k8s/%s: no EnvoyFilter inserts a filter FIRST", overlay)
		}
		// Namespaces whose workloads get corsproc (a workload namespace
		// without an opt-out), and those that opt out.
		var optedOut []string
		for _, s := range ours {
			if s.namespace != istioRootNamespace {
				optedOut = append(optedOut, s.namespace)
			}
		}
		for _, workloadNS := range append([]string{istioRootNamespace, "shop"}, optedOut...) {
			for _, otherNS := range []string{istioRootNamespace, workloadNS} {
				for _, rootFirst := range []bool{true, false} {
					// Every creation order of our patch sets and the other one.
					for perm := range permutations(len(ours) + 1) {
						sets := []istioPatchSet{}
						for i, s := range ours {
							if s.namespace == istioRootNamespace || s.namespace == workloadNS {
								s.created = perm[i]
								sets = append(sets, s)
							}
						}
						sets = append(sets, thirdPartyFirst(otherNS, ctx, perm[len(ours)]))
						sortIstioPatchSets(sets, istioRootNamespace, rootFirst)
						got := applyHTTPFilterPatches(chain, sets, ctx)
						what := fmt.Sprintf("k8s/%s: workload in %q, another EnvoyFilter inserting FIRST in %q, creation order %v, root namespace first on ties %v: chain %q", overlay, workloadNS, otherNS, perm, rootFirst, got)
						if slices.Contains(optedOut, workloadNS) {
							if slices.Contains(got, inserted) {
								t.Errorf("%s: the opt-out did not remove %s: give it a priority above the inserting EnvoyFilter's", what, inserted)
							}
						} else if got[0] != inserted {
							t.Errorf("%s: %s is not first: give corsproc's EnvoyFilter a priority above the default 0", what, inserted)
						}
					}
				}
			}
		}
	}
}

// permutations yields every ordering of 0..n-1.
func permutations(n int) func(yield func([]int) bool) {
	return func(yield func([]int) bool) {
		p := make([]int, n)
		for i := range p {
			p[i] = i
		}
		var gen func(k int) bool
		gen = func(k int) bool {
			if k == n {
				return yield(slices.Clone(p))
			}
			for i := k; i < n; i++ {
				p[k], p[i] = p[i], p[k]
				if !gen(k + 1) {
					return false
				}
				p[k], p[i] = p[i], p[k]
			}
			return true
		}
		gen(0)
	}
}

// TestIstioReferencedServices checks that the gateway's EnvoyFilter names the
// corsproc Service in envoyfilter.istio.io/referenced-services: with
// PILOT_FILTER_GATEWAY_CLUSTER_CONFIG=true istiod sends a gateway only the
// clusters of its routes and of the Services that annotation names (Istio
// 1.31, pilot/pkg/model/push_context.go GatewayServices), and without the
// cluster the filter fails open on every request.
func TestIstioReferencedServices(t *testing.T) {
	tr := loadTree(t)
	objs := renderDecoded(t, tr, "istio-ingress")
	efs := envoyFilters(objs)
	if len(efs) == 0 {
		t.Fatal("no EnvoyFilter in k8s/istio-ingress")
	}
	for _, o := range efs {
		ef := as[*istionetworking.EnvoyFilter](o)
		refs := strings.Split(ef.Annotations[referencedServicesAnnotation], ",")
		for _, cfg := range envoyConfigs(t, []*object{o}) {
			for _, eg := range envoyGrpcServices(cfg) {
				_, host, err := parseIstioCluster(eg.GetClusterName())
				if err != nil {
					t.Errorf("%s: %v", o, err)
					continue
				}
				svcNS := strings.Split(host, ".")[1]
				if want := svcNS + "/" + host; !slices.Contains(refs, want) && !slices.Contains(refs, host) {
					t.Errorf("%s: annotation %s = %q, want it to name %q: a gateway filtering its clusters (PILOT_FILTER_GATEWAY_CLUSTER_CONFIG) would not get cluster %q", o, referencedServicesAnnotation, ef.Annotations[referencedServicesAnnotation], want, eg.GetClusterName())
				}
			}
		}
	}
}

// TestIstioServiceHost checks that each Istio overlay takes the corsproc
// Service's host name from one place, its corsproc-service.yaml, so a
// cluster domain other than cluster.local (or another namespace) is one
// edit: the rendered EnvoyFilters carry the new host in the cluster name,
// the :authority and the annotation, and no cluster.local is left.
func TestIstioServiceHost(t *testing.T) {
	const newHost = "corsproc.corsproc.svc.example.internal"
	orig := loadTree(t)
	for _, overlay := range istioOverlays {
		tr := orig.clone()
		file := overlay + "/" + istioServiceFile
		data, ok := tr[file]
		if !ok {
			t.Errorf("k8s/%s does not exist: the overlay must take the Service's host name from it", file)
			continue
		}
		const line = "  host: corsproc.corsproc.svc.cluster.local\n"
		if bytes.Count(data, []byte(line)) != 1 {
			t.Errorf("k8s/%s does not hold %q once", file, line)
			continue
		}
		tr[file] = bytes.Replace(data, []byte(line), []byte("  host: "+newHost+"\n"), 1)
		objs := renderDecoded(t, tr, overlay)
		for _, o := range objs {
			if o.kind == "ConfigMap" && o.name == "corsproc-service" {
				t.Errorf("k8s/%s: %s is in the output: it must be local-config", overlay, o)
			}
		}
		efs := envoyFilters(objs)
		for _, o := range efs {
			if bytes.Contains(o.data, []byte("cluster.local")) {
				t.Errorf("k8s/%s: %s still says cluster.local with the host set to %s in k8s/%s", overlay, o, newHost, file)
			}
			ef := as[*istionetworking.EnvoyFilter](o)
			if a, ok := ef.Annotations[referencedServicesAnnotation]; ok && a != "corsproc/"+newHost {
				t.Errorf("k8s/%s: %s: annotation %s = %q, want corsproc/%s", overlay, o, referencedServicesAnnotation, a, newHost)
			}
			for _, cfg := range envoyConfigs(t, []*object{o}) {
				for _, eg := range envoyGrpcServices(cfg) {
					if eg.GetClusterName() != "outbound|9001||"+newHost || eg.GetAuthority() != newHost {
						t.Errorf("k8s/%s: %s: cluster %q, authority %q; want both to follow k8s/%s's host %s", overlay, o, eg.GetClusterName(), eg.GetAuthority(), file, newHost)
					}
				}
			}
		}
		if len(efs) == 0 {
			t.Errorf("k8s/%s: no EnvoyFilter", overlay)
		}
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// yamlToJSON converts one YAML document to JSON.
func yamlToJSON(data []byte) ([]byte, error) {
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func structOf(m map[string]any) (*structpb.Struct, error) {
	return structpb.NewStruct(m)
}
