package k8s_test

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

// TestPlatformMutations proves the checks of platform_test.go fail on
// broken manifests, the way TestMutations does for the others: each case
// breaks one file of an in-memory copy of k8s/ and expects a problem naming
// the overlay, the object and what is wrong.
func TestPlatformMutations(t *testing.T) {
	env := newTestEnv(t)
	orig := loadTree(t)
	cases := []struct {
		name, overlay, file, old, new string
		want                          []string
	}{
		{
			name: "GOMAXPROCS left to Go", overlay: "base", file: "base/deployment.yaml",
			old: "            - name: GOMAXPROCS\n              valueFrom:\n                resourceFieldRef:\n                  resource: limits.cpu\n                  divisor: \"1\"\n", new: "",
			want: []string{"k8s/base: Deployment corsproc (k8s/base/deployment.yaml)", `container "corsproc": no GOMAXPROCS`, "at least 2"},
		},
		{
			name: "GOMAXPROCS from the request", overlay: "prod", file: "base/deployment.yaml",
			old: "                  resource: limits.cpu\n", new: "                  resource: requests.cpu\n",
			want: []string{"k8s/prod: Deployment corsproc/corsproc", "GOMAXPROCS from requests.cpu", "want limits.cpu"},
		},
		{
			name: "fractional CPU limit", overlay: "base", file: "base/deployment.yaml",
			old: "              cpu: \"1\"\n", new: "              cpu: 1500m\n",
			want: []string{"Deployment corsproc (k8s/base/deployment.yaml)", "CPU limit 1500m is not a whole number of CPUs"},
		},
		{
			name: "HPA with replicas in the Deployment", overlay: "prod", file: "components/hpa/kustomization.yaml",
			old: "      - op: remove\n        path: /spec/replicas\n", new: "      - op: replace\n        path: /spec/replicas\n        value: 2\n",
			want: []string{"k8s/prod: Deployment corsproc/corsproc", "spec.replicas is 2, but HorizontalPodAutoscaler corsproc scales it"},
		},
		{
			name: "HPA on a Deployment that is not there", overlay: "prod", file: "components/hpa/horizontalpodautoscaler.yaml",
			old: "    kind: Deployment\n    name: corsproc\n", new: "    kind: Deployment\n    name: cors-proc\n",
			want: []string{"k8s/prod: HorizontalPodAutoscaler corsproc/corsproc", "is no Deployment of the overlay"},
		},
		{
			name: "production without an HPA", overlay: "prod", file: "prod/kustomization.yaml",
			old: "  - ../components/hpa\n", new: "",
			want: []string{"k8s/prod: Deployment corsproc/corsproc", "no HorizontalPodAutoscaler"},
		},
		{
			name: "production on :latest", overlay: "prod", file: "prod/kustomization.yaml",
			old: "    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n", new: "    newTag: latest\n",
			want: []string{"k8s/prod: Deployment corsproc/corsproc", `image "registry.example.com/corsproc:latest"`, "never runs :latest"},
		},
		{
			name: "production by tag", overlay: "prod", file: "prod/kustomization.yaml",
			old: "    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n", new: "    newTag: v1.2.3\n",
			want: []string{"k8s/prod: Deployment corsproc/corsproc", "is not pinned by digest"},
		},
		{
			name: "Envoy probed by TCP", overlay: "envoy-gateway", file: "envoy-gateway/envoy-deployment.yaml",
			old: "            httpGet:\n              path: /ready\n              port: ready\n", new: "            tcpSocket:\n              port: http\n",
			want: []string{"k8s/envoy-gateway: Deployment corsproc/envoy (k8s/envoy-gateway/envoy-deployment.yaml)", "readinessProbe must be an httpGet of Envoy's /ready"},
		},
		{
			name: "ready listener forwards everything", overlay: "envoy-gateway", file: "envoy-gateway/envoy.yaml",
			old: "                        - match: {path: /ready}\n", new: "                        - match: {prefix: /}\n",
			want: []string{"Deployment corsproc/envoy", `listener "ready"`, "must route the exact path /ready alone"},
		},
		{
			name: "Envoy's drain shorter than its connections", overlay: "sidecar", file: "sidecar/deployment-patch.yaml",
			old: "              sleep:\n                seconds: 40\n", new: "              sleep:\n                seconds: 5\n",
			want: []string{"k8s/sidecar: Deployment corsproc/corsproc", `preStop sleeps 5s, but listener "ingress"`, "sleep at least 40s"},
		},
		{
			name: "Envoy never drains", overlay: "envoy-gateway", file: "envoy-gateway/envoy.yaml",
			old: "                common_http_protocol_options:\n                  max_connection_duration: 30s\n", new: "",
			want: []string{"Deployment corsproc/envoy", "sets no common_http_protocol_options.max_connection_duration"},
		},
		{
			name: "Envoy as the default ServiceAccount", overlay: "envoy-gateway", file: "envoy-gateway/envoy-deployment.yaml",
			old: "      serviceAccountName: envoy\n", new: "",
			want: []string{"Deployment corsproc/envoy", "default ServiceAccount"},
		},
		{
			name: "sidecar preStop", overlay: "sidecar", file: "sidecar/deployment-patch.yaml",
			old: "          lifecycle: null\n", new: "",
			want: []string{"k8s/sidecar: Deployment corsproc/corsproc", `native sidecar "corsproc" has a preStop hook`},
		},
		{
			name: "sidecar grace too short", overlay: "sidecar", file: "sidecar/deployment-patch.yaml",
			old: "      terminationGracePeriodSeconds: 60\n", new: "      terminationGracePeriodSeconds: 45\n",
			want: []string{"k8s/sidecar: Deployment corsproc/corsproc", "terminationGracePeriodSeconds 45s", `then sidecar "corsproc"'s drain`},
		},
		{
			name: "admin port open to the namespace", overlay: "envoy-gateway", file: "components/networkpolicy/networkpolicy.yaml",
			old: "          podSelector:\n            matchLabels:\n              app.kubernetes.io/name: prometheus\n", new: "",
			want: []string{"k8s/envoy-gateway: NetworkPolicy corsproc/corsproc-admin (k8s/components/networkpolicy/networkpolicy.yaml)", "admits another pod of Prometheus's namespace to port 9002"},
		},
		{
			name: "gRPC open to every pod", overlay: "envoy-gateway", file: "envoy-gateway/networkpolicy.yaml",
			old: "    - from:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: envoy\n      ports:\n", new: "    - ports:\n",
			want: []string{"NetworkPolicy corsproc/corsproc-ext-proc (k8s/envoy-gateway/networkpolicy.yaml)", "admits another pod of corsproc's namespace to port 9001"},
		},
		{
			name: "gRPC closed to Envoy", overlay: "envoy-gateway", file: "envoy-gateway/networkpolicy.yaml",
			old: "              app.kubernetes.io/name: envoy\n", new: "              app.kubernetes.io/name: envoy-proxy\n",
			want: []string{"Deployment corsproc/corsproc", "no NetworkPolicy admits the Envoy pods of Deployment corsproc/envoy", "to port 9001"},
		},
		{
			name: "admin port closed to Prometheus", overlay: "sidecar", file: "sidecar/kustomization.yaml",
			old: "components:\n  - ../components/networkpolicy\n", new: "",
			want: []string{"k8s/sidecar: Deployment corsproc/corsproc", "no NetworkPolicy admits Prometheus to port 9002"},
		},
		{
			name: "no NetworkPolicy", overlay: "envoy-gateway", file: "envoy-gateway/kustomization.yaml",
			old: "  - networkpolicy.yaml\n\ncomponents:\n  # corsproc's admin port for Prometheus only (k8s/components/networkpolicy).\n  - ../components/networkpolicy\n", new: "",
			want: []string{"k8s/envoy-gateway: Deployment corsproc/corsproc", "no NetworkPolicy selects corsproc's pods"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { mutate(t, env, orig, c.overlay, c.file, c.old, c.new, c.want) })
	}
}

// TestApplyResetsReplicas shows the platform behaviour the HPA component
// is for, with the code kubectl apply runs (k8s.io/kubectl
// pkg/cmd/apply/patcher.go, Patcher.patchSimple, calls apimachinery's
// strategicpatch.CreateThreeWayMergePatch with the last applied manifest,
// the new one and the live object): a manifest with replicas resets the
// count an HPA set; one without leaves it alone.
func TestApplyResetsReplicas(t *testing.T) {
	meta, err := strategicpatch.NewPatchMetaFromStruct(appsv1.Deployment{})
	if err != nil {
		t.Fatal(err)
	}
	const withReplicas = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"corsproc"},"spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"corsproc","image":"corsproc:1"}]}}}}`
	const without = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"corsproc"},"spec":{"template":{"spec":{"containers":[{"name":"corsproc","image":"corsproc:2"}]}}}}`
	// The HPA scaled the live object to 7.
	const live = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"corsproc"},"spec":{"replicas":7,"template":{"spec":{"containers":[{"name":"corsproc","image":"corsproc:1"}]}}}}`
	replicas := func(patch []byte) any {
		var p map[string]any
		if err := yaml.Unmarshal(patch, &p); err != nil {
			t.Fatal(err)
		}
		spec, _ := p["spec"].(map[string]any)
		return spec["replicas"]
	}
	// Applying a manifest that says replicas: 2 again (an image change).
	modified := strings.Replace(withReplicas, "corsproc:1", "corsproc:2", 1)
	patch, err := strategicpatch.CreateThreeWayMergePatch([]byte(withReplicas), []byte(modified), []byte(live), meta, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := replicas(patch); got != float64(2) {
		t.Errorf("apply with replicas: patch %s sets replicas %v, want 2 (the reset this test documents)", patch, got)
	}
	// Applying the manifest without replicas, the HPA component's way.
	patch, err = strategicpatch.CreateThreeWayMergePatch([]byte(without), []byte(without), []byte(live), meta, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := replicas(patch); got != nil {
		t.Errorf("apply without replicas: patch %s sets replicas %v, want it untouched", patch, got)
	}
}
