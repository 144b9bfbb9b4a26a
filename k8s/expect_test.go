package k8s_test

import (
	"net/url"
	"slices"
	"strings"

	"github.com/corsproc/corsproc/policy/policyfile"
	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"
	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	istioapinetworking "istio.io/api/networking/v1alpha3"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

const (
	ns            = "corsproc" // the namespace of k8s/namespaced and the overlays
	policyMap     = "corsproc-policy"
	policyKey     = "policy.yaml"
	corsprocName  = "corsproc"
	ingressLabel  = "istio"
	headlessName  = "corsproc-headless"
	socketPath    = "/run/corsproc/corsproc.sock"
	serveArgsBase = "serve --listen 0.0.0.0:9001 --admin 0.0.0.0:9002 --policy /etc/corsproc --log-format json"
)

// expectations are what each overlay must contain, beyond the checks every
// overlay passes (checkObjects).
var expectations = map[string]func(env *testEnv, r *report, tr tree, objs []*object){
	"base": func(env *testEnv, r *report, tr tree, objs []*object) {
		wantKinds(r, objs, "", "ServiceAccount/corsproc", "Deployment/corsproc", "Service/corsproc", "PodDisruptionBudget/corsproc", "ConfigMap/corsproc-policy")
		d := deployment(r, objs, "", corsprocName)
		if d == nil {
			return
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
			r.add(find(objs, "Deployment", "", corsprocName), "want 2 replicas")
		}
		if c := containerOf(d, corsprocContainer); c == nil {
			r.add(find(objs, "Deployment", "", corsprocName), "no container %q", corsprocContainer)
		} else if got := strings.Join(c.Args, " "); got != serveArgsBase {
			r.add(find(objs, "Deployment", "", corsprocName), "container %q: args %q, want %q", c.Name, got, serveArgsBase)
		}
		wantPolicyFrom(r, tr, objs, "", "base/policy.yaml")
	},
	"namespaced": func(env *testEnv, r *report, tr tree, objs []*object) {
		wantKinds(r, objs, ns, "ServiceAccount/corsproc", "Deployment/corsproc", "Service/corsproc", "PodDisruptionBudget/corsproc", "ConfigMap/corsproc-policy")
		if find(objs, "Namespace", "", ns) == nil {
			r.add(nil, "no Namespace %q", ns)
		}
	},
	"envoy-gateway": func(env *testEnv, r *report, tr tree, objs []*object) {
		wantKinds(r, objs, ns, "Deployment/corsproc", "Deployment/envoy", "Service/envoy", "Service/"+headlessName, "PodDisruptionBudget/envoy")
		if d := deployment(r, objs, ns, "envoy"); d != nil && containerOf(d, envoyContainer) == nil {
			r.add(find(objs, "Deployment", ns, "envoy"), "no container %q", envoyContainer)
		}
		wantPolicyFrom(r, tr, objs, ns, "base/policy.yaml")
	},
	"sidecar": func(env *testEnv, r *report, tr tree, objs []*object) {
		o := find(objs, "Deployment", ns, corsprocName)
		d := deployment(r, objs, ns, corsprocName)
		if d == nil {
			return
		}
		spec := d.Spec.Template.Spec
		if len(spec.Containers) != 1 || spec.Containers[0].Name != envoyContainer {
			r.add(o, "want Envoy as the one main container")
		}
		if len(spec.InitContainers) != 1 || spec.InitContainers[0].Name != corsprocContainer || !isSidecar(&spec.InitContainers[0]) {
			r.add(o, "want corsproc as a native sidecar: the one init container, with restartPolicy: Always")
		} else if got := flagValue(&spec.InitContainers[0], "listen"); got != "unix://"+socketPath {
			r.add(o, "corsproc --listen %q, want unix://%s", got, socketPath)
		} else if spec.InitContainers[0].StartupProbe == nil {
			r.add(o, "corsproc needs a startupProbe: Envoy starts once it succeeds")
		}
		if svc := as[*corev1.Service](find(objs, "Service", ns, corsprocName)); svc != nil {
			for _, p := range svc.Spec.Ports {
				if p.Port == 9001 {
					r.add(find(objs, "Service", ns, corsprocName), "still exposes 9001: corsproc listens on a socket here")
				}
			}
		}
		wantPolicyFrom(r, tr, objs, ns, "base/policy.yaml")
	},
	"istio-ingress": func(env *testEnv, r *report, tr tree, objs []*object) {
		efs := envoyFilters(objs)
		if len(efs) != 1 {
			r.add(nil, "want one EnvoyFilter, got %d", len(efs))
			return
		}
		o := efs[0]
		ef := as[*istionetworking.EnvoyFilter](o)
		if len(ef.Spec.GetWorkloadSelector().GetLabels()) == 0 {
			r.add(o, "no workloadSelector: in %s it would apply to every gateway", o.namespace)
		}
		wantPatches(r, o, istioapinetworking.EnvoyFilter_GATEWAY, istioapinetworking.EnvoyFilter_Patch_INSERT_FIRST)
	},
	"istio-mesh": func(env *testEnv, r *report, tr tree, objs []*object) {
		var insert, remove *object
		for _, o := range envoyFilters(objs) {
			ef := as[*istionetworking.EnvoyFilter](o)
			for _, cp := range ef.Spec.GetConfigPatches() {
				switch cp.GetPatch().GetOperation() {
				case istioapinetworking.EnvoyFilter_Patch_INSERT_FIRST:
					insert = o
				case istioapinetworking.EnvoyFilter_Patch_REMOVE:
					remove = o
				}
			}
		}
		if insert == nil {
			r.add(nil, "no EnvoyFilter inserts corsproc")
		} else {
			ef := as[*istionetworking.EnvoyFilter](insert)
			if insert.namespace != istioRootNamespace || ef.Spec.GetWorkloadSelector() != nil || len(ef.Spec.GetTargetRefs()) > 0 {
				r.add(insert, "a mesh-wide EnvoyFilter lives in the root namespace %q without a workloadSelector", istioRootNamespace)
			}
			wantPatches(r, insert, istioapinetworking.EnvoyFilter_SIDECAR_INBOUND, istioapinetworking.EnvoyFilter_Patch_INSERT_FIRST)
		}
		if remove == nil || remove.namespace != ns {
			r.add(remove, "want an opt-out EnvoyFilter (REMOVE) in corsproc's namespace %q: a sidecar on corsproc would call corsproc for its own streams", ns)
		} else {
			wantPatches(r, remove, istioapinetworking.EnvoyFilter_SIDECAR_INBOUND, istioapinetworking.EnvoyFilter_Patch_REMOVE)
		}
	},
	"envoy-gateway-api": func(env *testEnv, r *report, tr tree, objs []*object) {
		eeps := typed[*egv1a1.EnvoyExtensionPolicy](objs)
		if len(eeps) != 1 {
			r.add(nil, "want one EnvoyExtensionPolicy, got %d", len(eeps))
		}
		for _, o := range eeps {
			var kinds []string
			for _, t := range as[*egv1a1.EnvoyExtensionPolicy](o).Spec.TargetRefs {
				kinds = append(kinds, string(t.Kind))
			}
			if !slices.Equal(kinds, []string{"Gateway"}) {
				r.add(o, "targetRefs kinds %q, want the Gateway only: a route-level attachment without mergeType takes the route's one EnvoyExtensionPolicy slot (docs/envoy-gateway.md)", kinds)
			}
		}
		if len(typed[*egv1a1.EnvoyProxy](objs)) != 1 {
			r.add(nil, "want one EnvoyProxy, with the filterOrder that puts ext_proc before authentication")
		}
		if len(typed[*gwapiv1beta1.ReferenceGrant](objs)) != 1 {
			r.add(nil, "want one ReferenceGrant for the cross-namespace backendRef")
		}
	},
	"dev": func(env *testEnv, r *report, tr tree, objs []*object) {
		o := find(objs, "Deployment", ns, corsprocName)
		if d := deployment(r, objs, ns, corsprocName); d != nil {
			if c := containerOf(d, corsprocContainer); c == nil || flagValue(c, "log-level") != "debug" {
				r.add(o, "the development overlay logs every decision: --log-level debug")
			}
		}
		pf := wantPolicyFrom(r, tr, objs, ns, "dev/policy.yaml")
		cm := find(objs, "ConfigMap", ns, policyMap)
		for _, p := range pf.GetPolicies() {
			for _, origin := range p.GetAllowedOrigins() {
				if !localOrigin(origin) {
					r.add(cm, "policy %q: %q is not a local origin: the development policy allows only pages served from the developer's machine", p.GetName(), origin)
				}
			}
			if p.GetAllowAllOrigins() || len(p.GetAllowedOriginRegexes()) > 0 {
				r.add(cm, "policy %q: allow_all_origins or regexes in the development policy: list local origins", p.GetName())
			}
		}
	},
	"prod": func(env *testEnv, r *report, tr tree, objs []*object) {
		pf := wantPolicyFrom(r, tr, objs, ns, "prod/policy.yaml")
		cm := find(objs, "ConfigMap", ns, policyMap)
		credentials := false
		for _, p := range pf.GetPolicies() {
			if !p.GetAllowCredentials() {
				continue
			}
			credentials = true
			if len(p.GetAllowedOriginRegexes()) > 0 {
				r.add(cm, "policy %q: regexes with credentials in production: list exact origins", p.GetName())
			}
			for _, origin := range p.GetAllowedOrigins() {
				if u, err := url.Parse(origin); err != nil || u.Scheme != "https" || strings.Contains(origin, "*") {
					r.add(cm, "policy %q: %q: production origins with credentials are exact https:// origins", p.GetName(), origin)
				}
			}
			if p.GetMode() != corsprocv1.Mode_MODE_ENFORCE {
				r.add(cm, "policy %q: mode %v: production enforces", p.GetName(), p.GetMode())
			}
		}
		if !credentials {
			r.add(cm, "no policy allows credentials: the production example shows a cookie-authenticated frontend")
		}
	},
}

func wantKinds(r *report, objs []*object, namespace string, want ...string) {
	for _, w := range want {
		kind, name, _ := strings.Cut(w, "/")
		if find(objs, kind, namespace, name) == nil {
			r.add(nil, "no %s %q in namespace %q", kind, name, namespace)
		}
	}
}

func deployment(r *report, objs []*object, namespace, name string) *appsv1.Deployment {
	o := find(objs, "Deployment", namespace, name)
	if o == nil {
		r.add(nil, "no Deployment %q in namespace %q", name, namespace)
		return nil
	}
	return as[*appsv1.Deployment](o)
}

func containerOf(d *appsv1.Deployment, name string) *corev1.Container {
	p := &pod{spec: &d.Spec.Template.Spec}
	return p.container(name)
}

func envoyFilters(objs []*object) []*object {
	var out []*object
	for _, o := range objs {
		if as[*istionetworking.EnvoyFilter](o) != nil {
			out = append(out, o)
		}
	}
	return out
}

func wantPatches(r *report, o *object, ctx istioapinetworking.EnvoyFilter_PatchContext, op istioapinetworking.EnvoyFilter_Patch_Operation) {
	ef := as[*istionetworking.EnvoyFilter](o)
	for i, cp := range ef.Spec.GetConfigPatches() {
		if cp.GetMatch().GetContext() != ctx || cp.GetPatch().GetOperation() != op {
			r.add(o, "spec.configPatches[%d]: context %v, operation %v; want %v, %v", i, cp.GetMatch().GetContext(), cp.GetPatch().GetOperation(), ctx, op)
		}
	}
}

// wantPolicyFrom checks that the policy ConfigMap holds exactly the file
// file (relative to k8s/), and returns that file decoded.
func wantPolicyFrom(r *report, tr tree, objs []*object, namespace, file string) *corsprocv1.PolicyFile {
	cm := find(objs, "ConfigMap", namespace, policyMap)
	if cm == nil {
		r.add(nil, "no ConfigMap %q in namespace %q", policyMap, namespace)
		return nil
	}
	data := configMapData(cm)
	if len(data) != 1 || data[policyKey] != string(tr[file]) {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		r.add(cm, "want exactly the key %q holding k8s/%s; has keys %q", policyKey, file, keys)
		return nil
	}
	pf, err := policyfile.Decode("k8s/"+file, tr[file])
	if err != nil {
		return nil // checkPolicyConfigMap reports it
	}
	return pf
}

// localOrigin reports whether an allowed origin (or pattern) is on the
// developer's machine.
func localOrigin(origin string) bool {
	u, err := url.Parse(strings.ReplaceAll(origin, ":*", ""))
	if err != nil {
		return false
	}
	h := u.Hostname()
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || h == "127.0.0.1" || h == "::1"
}
