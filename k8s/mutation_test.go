package k8s_test

import (
	"bytes"
	"strings"
	"testing"
)

// TestMutations proves the checks fail on broken manifests: each case breaks
// one file of an in-memory copy of k8s/ (the disk is never touched) and
// expects a problem that names the overlay, the object and its file, and
// says what is wrong. A case whose `old` text no longer appears exactly once
// fails too, so the cases follow the manifests.
func TestMutations(t *testing.T) {
	env := newTestEnv(t)
	orig := loadTree(t)
	cases := []struct {
		name    string
		overlay string
		file    string
		old     string
		new     string
		// want: substrings one reported problem must all contain.
		want []string
	}{
		{
			name: "typo in a field name", overlay: "base", file: "base/deployment.yaml",
			old: "          readinessProbe:\n", new: "          readinesProbe:\n",
			want: []string{"k8s/base: Deployment corsproc (k8s/base/deployment.yaml)", `unknown field "spec.template.spec.containers[0].readinesProbe"`},
		},
		{
			name: "wrong field case", overlay: "prod", file: "base/deployment.yaml",
			old: "              containerPort: 9002\n", new: "              containerport: 9002\n",
			want: []string{"k8s/prod: Deployment corsproc/corsproc (k8s/base/deployment.yaml)", `unknown field "spec.template.spec.containers[0].ports[1].containerport"`},
		},
		{
			name: "field given twice", overlay: "base", file: "base/service.yaml",
			old: "  type: ClusterIP\n", new: "  type: ClusterIP\n  type: NodePort\n",
			want: []string{"k8s/base", "service.yaml", "already defined"},
		},
		{
			name: "Service selector matches no pod", overlay: "namespaced", file: "base/service.yaml",
			old: "  selector:\n    app.kubernetes.io/name: corsproc\n", new: "  selector:\n    app.kubernetes.io/name: cors-proc\n",
			want: []string{"k8s/namespaced: Service corsproc/corsproc (k8s/base/service.yaml)", "selects no pod"},
		},
		{
			name: "Deployment selector does not match its pods", overlay: "base", file: "base/deployment.yaml",
			old: "  selector:\n    matchLabels:\n      app.kubernetes.io/name: corsproc\n", new: "  selector:\n    matchLabels:\n      app.kubernetes.io/name: corsprocs\n",
			want: []string{"Deployment corsproc (k8s/base/deployment.yaml)", "does not match the pod template's labels"},
		},
		{
			name: "probe on a port the container does not have", overlay: "prod", file: "base/deployment.yaml",
			old: "              path: /healthz\n              port: admin\n", new: "              path: /healthz\n              port: 9003\n",
			want: []string{"k8s/prod: Deployment corsproc/corsproc (k8s/base/deployment.yaml)", "livenessProbe port 9003 is not a port of the container"},
		},
		{
			name: "Service targetPort that is no container port", overlay: "base", file: "base/service.yaml",
			old: "      targetPort: admin\n", new: "      targetPort: metrics\n",
			want: []string{"Service corsproc (k8s/base/service.yaml)", "targetPort metrics is not a port of any container"},
		},
		{
			name: "invalid production policy", overlay: "prod", file: "prod/policy.yaml",
			old: "      - https://app.example.com\n", new: "      - https://app.example.com/\n",
			want: []string{"k8s/prod: ConfigMap corsproc/corsproc-policy (k8s/prod/kustomization.yaml (ConfigMapGenerator))", "k8s/prod/policy.yaml:", "trailing slash"},
		},
		{
			name: "unknown key in the policy", overlay: "base", file: "base/policy.yaml",
			old: "    allowed_origins:\n", new: "    alowed_origins:\n",
			want: []string{"ConfigMap corsproc-policy", "k8s/base/policy.yaml:", `unknown key "alowed_origins"`},
		},
		{
			name: "policy warning", overlay: "dev", file: "dev/policy.yaml",
			old: "    preflight_max_age: 60\n", new: "    preflight_max_age: 86400\n",
			want: []string{"k8s/dev: ConfigMap corsproc/corsproc-policy", "policy warning", "k8s/dev/policy.yaml:"},
		},
		{
			name: "policy ConfigMap mounted with subPath", overlay: "base", file: "base/deployment.yaml",
			old: "              mountPath: /etc/corsproc\n", new: "              mountPath: /etc/corsproc\n              subPath: policy.yaml\n",
			want: []string{"Deployment corsproc (k8s/base/deployment.yaml)", "subPath", "never updates"},
		},
		{
			name: "volume of a ConfigMap that does not exist", overlay: "namespaced", file: "base/deployment.yaml",
			old: "            name: corsproc-policy\n", new: "            name: corsproc-policies\n",
			want: []string{"Deployment corsproc/corsproc", `ConfigMap "corsproc-policies" is not in namespace "corsproc"`},
		},
		{
			name: "flag corsproc does not have", overlay: "base", file: "base/deployment.yaml",
			old: "            - --admin\n", new: "            - --admin-listen\n",
			want: []string{"Deployment corsproc (k8s/base/deployment.yaml)", "corsproc serve has no flag --admin-listen"},
		},
		{
			name: "corsproc on loopback only", overlay: "base", file: "base/deployment.yaml",
			old: "            - 0.0.0.0:9001\n", new: "            - 127.0.0.1:9001\n",
			want: []string{"Deployment corsproc", `--listen "127.0.0.1:9001" listens on 127.0.0.1 only`},
		},
		{
			name: "running as root allowed", overlay: "base", file: "base/deployment.yaml",
			old: "        runAsNonRoot: true\n", new: "        runAsNonRoot: false\n",
			want: []string{"Deployment corsproc (k8s/base/deployment.yaml)", "restricted Pod Security Standard", "runAsNonRoot"},
		},
		{
			name: "writable root file system", overlay: "sidecar", file: "sidecar/deployment-patch.yaml",
			old: "            readOnlyRootFilesystem: true\n", new: "            readOnlyRootFilesystem: false\n",
			want: []string{"k8s/sidecar: Deployment corsproc/corsproc (k8s/base/deployment.yaml, patched by k8s/sidecar/corsproc-native-sidecar.yaml, k8s/sidecar/deployment-patch.yaml)", `container "envoy": securityContext.readOnlyRootFilesystem must be true`},
		},
		{
			name: "Envoy config drifts from envoy/envoy.yaml", overlay: "sidecar", file: "sidecar/envoy.yaml",
			old: "message_timeout: 0.1s", new: "message_timeout: 0.2s",
			want: []string{"k8s/sidecar: ConfigMap corsproc/envoy-config-", "differs from envoy/envoy.yaml", "message_timeout"},
		},
		{
			name: "Envoy config with an unknown field", overlay: "envoy-gateway", file: "envoy-gateway/envoy.yaml",
			old: "connect_timeout: 1s", new: "connect_timout: 1s",
			want: []string{"k8s/envoy-gateway: ConfigMap corsproc/envoy-config-", "not a valid Envoy bootstrap", "connect_timout"},
		},
		{
			name: "Envoy points at the ClusterIP Service", overlay: "envoy-gateway", file: "envoy-gateway/envoy.yaml",
			old: "{address: corsproc-headless, port_value: 9001}", new: "{address: corsproc, port_value: 9001}",
			want: []string{"ConfigMap corsproc/envoy-config-", "Use a headless Service (clusterIP: None)"},
		},
		{
			name: "Envoy socket path differs from corsproc's", overlay: "sidecar", file: "sidecar/envoy.yaml",
			old: "pipe: {path: /run/corsproc/corsproc.sock}", new: "pipe: {path: /run/corsproc/cors.sock}",
			want: []string{"k8s/sidecar: Deployment corsproc/corsproc", "socket /run/corsproc/cors.sock", "corsproc listens on"},
		},
		{
			name: "EnvoyFilter field in the proto's case", overlay: "istio-ingress", file: "istio-ingress/envoyfilter.yaml",
			old: "  workloadSelector:\n", new: "  workload_selector:\n",
			want: []string{"k8s/istio-ingress: EnvoyFilter istio-system/corsproc (k8s/istio-ingress/envoyfilter.yaml)", `write "workloadSelector"`},
		},
		{
			name: "EnvoyFilter unknown field", overlay: "istio-mesh", file: "istio-mesh/envoyfilter.yaml",
			old: "        context: SIDECAR_INBOUND\n", new: "        contxt: SIDECAR_INBOUND\n",
			want: []string{"k8s/istio-mesh: EnvoyFilter istio-system/corsproc (k8s/istio-mesh/envoyfilter.yaml)", "contxt"},
		},
		{
			name: "EnvoyFilter inserts after the auth filters", overlay: "istio-ingress", file: "istio-ingress/envoyfilter.yaml",
			old: "        operation: INSERT_FIRST\n", new: "        operation: INSERT_BEFORE\n",
			want: []string{"EnvoyFilter istio-system/corsproc", "use INSERT_FIRST"},
		},
		{
			name: "EnvoyFilter's Envoy config has an unknown field", overlay: "istio-ingress", file: "istio-ingress/envoyfilter.yaml",
			old: "            allow_mode_override: true\n", new: "            allow_mode_overide: true\n",
			want: []string{"EnvoyFilter istio-system/corsproc (k8s/istio-ingress/envoyfilter.yaml)", "not a valid Envoy HttpFilter", "allow_mode_overide"},
		},
		{
			name: "EnvoyFilter's Envoy config fails Envoy's validation", overlay: "istio-mesh", file: "istio-mesh/envoyfilter.yaml",
			old: "            message_timeout: 0.1s\n", new: "            message_timeout: -1s\n",
			want: []string{"EnvoyFilter istio-system/corsproc", "Envoy would refuse this HttpFilter", "MessageTimeout"},
		},
		{
			name: "EnvoyFilter cluster on the wrong port", overlay: "istio-ingress", file: "istio-ingress/envoyfilter.yaml",
			old: "outbound|9001||corsproc.corsproc.svc.cluster.local", new: "outbound|9002||corsproc.corsproc.svc.cluster.local",
			want: []string{"EnvoyFilter istio-system/corsproc", "does not lead to corsproc's \"grpc\" port"},
		},
		{
			name: "EnvoyFilter cluster in the wrong namespace", overlay: "istio-mesh", file: "istio-mesh/corsproc-service.yaml",
			old: "  host: corsproc.corsproc.svc.cluster.local\n", new: "  host: corsproc.default.svc.cluster.local\n",
			want: []string{"EnvoyFilter istio-system/corsproc", `no Service "corsproc" in namespace "default"`},
		},
		{
			name: "EnvoyExtensionPolicy field in the wrong case", overlay: "envoy-gateway-api", file: "envoy-gateway-api/envoyextensionpolicy.yaml",
			old: "      processingMode:\n", new: "      processingmode:\n",
			want: []string{"k8s/envoy-gateway-api: EnvoyExtensionPolicy default/corsproc (k8s/envoy-gateway-api/envoyextensionpolicy.yaml)", `unknown field "spec.extProc[0].processingmode"`},
		},
		{
			name: "EnvoyExtensionPolicy without the response phase", overlay: "envoy-gateway-api", file: "envoy-gateway-api/envoyextensionpolicy.yaml",
			old: "        response: {}\n", new: "",
			want: []string{"EnvoyExtensionPolicy default/corsproc", "no response"},
		},
		{
			name: "EnvoyExtensionPolicy without backendSettings", overlay: "envoy-gateway-api", file: "envoy-gateway-api/envoyextensionpolicy.yaml",
			old: "      backendSettings:\n" +
				"        # Every request holds one ext_proc stream until its response headers\n" +
				"        # come back, and Envoy's default circuit breaker stops at 1024 in\n" +
				"        # flight: beyond it, requests would lose their CORS headers (Envoy's\n" +
				"        # circuit_breaker.proto Thresholds.max_requests; Envoy Gateway v1.9.1\n" +
				"        # sets only max_retries without a circuitBreaker, internal/xds/\n" +
				"        # translator/cluster.go buildXdsClusterCircuitBreaker).\n" +
				"        circuitBreaker:\n" +
				"          maxParallelRequests: 10000\n" +
				"          maxPendingRequests: 10000\n" +
				"        timeout:\n" +
				"          tcp:\n" +
				"            # corsproc is in the cluster: a slower connection fails the stream,\n" +
				"            # which fails open.\n" +
				"            connectTimeout: 1s\n",
			new:  "",
			want: []string{"EnvoyExtensionPolicy default/corsproc (k8s/envoy-gateway-api/envoyextensionpolicy.yaml)", "backendSettings.circuitBreaker.maxParallelRequests must be raised"},
		},
		{
			name: "EnvoyExtensionPolicy without its ReferenceGrant", overlay: "envoy-gateway-api", file: "envoy-gateway-api/referencegrant.yaml",
			old: "      namespace: default\n", new: "      namespace: apps\n",
			want: []string{"EnvoyExtensionPolicy default/corsproc", "no ReferenceGrant"},
		},
		{
			name: "filterOrder leaves ext_proc after an auth filter", overlay: "envoy-gateway-api", file: "envoy-gateway-api/envoyproxy.yaml",
			old: "      before: envoy.filters.http.ext_authz\n", new: "      before: envoy.filters.http.basic_auth\n",
			want: []string{"EnvoyProxy default/corsproc-first (k8s/envoy-gateway-api/envoyproxy.yaml)", "leaves ext_proc after envoy.filters.http.ext_authz"},
		},
		{
			name: "unknown kind", overlay: "istio-ingress", file: "istio-ingress/envoyfilter.yaml",
			old: "kind: EnvoyFilter\n", new: "kind: EnvoyFiltre\n",
			want: []string{"k8s/istio-ingress: EnvoyFiltre istio-system/corsproc", "no Go API type known"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { mutate(t, env, orig, c.overlay, c.file, c.old, c.new, c.want) })
	}
}

// mutate replaces old by new, once, in k8s/file, checks overlay and wants
// one reported problem to contain every string of want.
func mutate(t *testing.T, env *testEnv, orig tree, overlay, file, old, new string, want []string) {
	t.Helper()
	problems := checkOverlay(env, mutated(t, orig, file, old, new), overlay)
	for _, p := range problems {
		if containsAll(p, want) {
			t.Logf("reported as: %s", p)
			return
		}
	}
	t.Errorf("no problem reported contains all of %q; got %d:\n%s", want, len(problems), strings.Join(problems, "\n"))
}

// mutated returns a copy of orig with old replaced by new in k8s/file,
// failing the test unless old is there exactly once.
func mutated(t *testing.T, orig tree, file, old, new string) tree {
	t.Helper()
	tr := orig.clone()
	data, ok := tr[file]
	if !ok {
		t.Fatalf("k8s/%s does not exist", file)
	}
	if n := bytes.Count(data, []byte(old)); n != 1 {
		t.Fatalf("k8s/%s holds %q %d times, want once: update this case", file, old, n)
	}
	tr[file] = bytes.Replace(data, []byte(old), []byte(new), 1)
	return tr
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
