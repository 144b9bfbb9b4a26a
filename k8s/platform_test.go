package k8s_test

// Checks of how the manifests meet the platform they run on, beyond what
// each object says of itself: GOMAXPROCS against the CPU limit, the
// HorizontalPodAutoscaler against the Deployment's replicas, Envoy's
// readiness, drain and identity, the order in which the kubelet stops a
// native sidecar, the NetworkPolicies against the callers each overlay
// configures, and the production image. docs/kubernetes.md cites the
// platform code each rule relies on.

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	istioapinetworking "istio.io/api/networking/v1alpha3"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	// The ports corsproc serves on TCP in the base.
	grpcPort  = 9001
	adminPort = 9002
	// endpointsLag is what the preStop sleeps allow for the endpoints of a
	// terminating pod to be removed everywhere (kube-proxy, Istio, Envoy's
	// DNS), before a drain can count on no new connections.
	endpointsLag = 5 * time.Second
	// envoyDefaultDrainTimeout is the HttpConnectionManager's drain_timeout
	// when unset (Envoy's http_connection_manager.proto: 5 s).
	envoyDefaultDrainTimeout = 5 * time.Second
	// envoyReadyPath is Envoy's admin readiness handler
	// (source/server/admin/admin.cc, "/ready").
	envoyReadyPath = "/ready"
	// defaultServiceAccount is what a pod without serviceAccountName runs as.
	defaultServiceAccount = "default"
)

// productionOverlays must run images pinned by digest, and scale corsproc
// with a HorizontalPodAutoscaler.
var productionOverlays = map[string]bool{"prod": true}

// checkPlatform runs the checks of this file on one rendered overlay.
func checkPlatform(env *testEnv, r *report, tr tree, objs []*object, ps []*pod) {
	for _, p := range ps {
		for _, c := range p.allContainers() {
			if c.Name == corsprocContainer {
				checkGOMAXPROCS(r, p, c)
			}
			if productionOverlays[r.overlay] {
				checkProductionImage(r, p, c)
			}
		}
		if c := p.container(envoyContainer); c != nil && !isSidecar(c) {
			checkEnvoyPod(env, r, objs, p, c)
		}
		checkSidecarOrder(env, r, p)
	}
	hpas := typed[*autoscalingv2.HorizontalPodAutoscaler](objs)
	for _, o := range hpas {
		checkHPA(r, o, objs)
	}
	if productionOverlays[r.overlay] && len(hpas) == 0 {
		r.add(find(objs, "Deployment", ns, corsprocName), "no HorizontalPodAutoscaler: production scales corsproc on CPU (k8s/components/hpa)")
	}
	checkNetworkPolicies(r, objs, ps)
}

// checkGOMAXPROCS: Go's default GOMAXPROCS in a container is the CPU limit
// rounded up, and at least 2 (Go 1.25 and later; Go 1.26's
// runtime/cgroup_linux.go, adjustCgroupGOMAXPROCS). With a limit of one CPU
// that is two threads on one CPU of quota, throttled in bursts. So the
// container must set GOMAXPROCS itself, from its CPU limit, and the limit
// must be whole CPUs: the kubelet rounds a resourceFieldRef of limits.cpu up
// to the divisor (pkg/api/v1/resource/helpers.go,
// ExtractContainerResourceValue), so 1500m would give 2.
func checkGOMAXPROCS(r *report, p *pod, c *corev1.Container) {
	o := p.owner
	where := fmt.Sprintf("container %q", c.Name)
	lim, ok := c.Resources.Limits[corev1.ResourceCPU]
	if !ok {
		return // checkContainer reports the missing limit
	}
	if lim.MilliValue()%1000 != 0 {
		r.add(o, "%s: CPU limit %s is not a whole number of CPUs: GOMAXPROCS is a whole number, so the runtime would run more threads than the quota and be throttled in bursts", where, lim.String())
	}
	var gmp *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "GOMAXPROCS" {
			gmp = &c.Env[i]
		}
	}
	switch {
	case gmp == nil:
		r.add(o, "%s: no GOMAXPROCS: Go's default rounds the CPU limit (%s) up and uses at least 2, so two threads share one CPU of quota; set it from the limit (valueFrom.resourceFieldRef: limits.cpu)", where, lim.String())
	case gmp.ValueFrom != nil && gmp.ValueFrom.ResourceFieldRef != nil:
		ref := gmp.ValueFrom.ResourceFieldRef
		if ref.Resource != "limits.cpu" || ref.ContainerName != "" && ref.ContainerName != c.Name {
			r.add(o, "%s: GOMAXPROCS from %s of container %q, want limits.cpu of this container", where, ref.Resource, ref.ContainerName)
		}
		if !ref.Divisor.IsZero() && ref.Divisor.MilliValue() != 1000 {
			r.add(o, "%s: GOMAXPROCS from limits.cpu with divisor %s, want 1 (whole CPUs)", where, ref.Divisor.String())
		}
	case gmp.Value != "":
		if want := fmt.Sprint(lim.MilliValue() / 1000); gmp.Value != want {
			r.add(o, "%s: GOMAXPROCS %q, but the CPU limit is %s: set it from the limit (valueFrom.resourceFieldRef: limits.cpu) so that the two never drift", where, gmp.Value, lim.String())
		}
	default:
		r.add(o, "%s: GOMAXPROCS has no value", where)
	}
}

// checkProductionImage: a production image is pinned by digest, and never
// a moving tag.
var digestRef = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

func checkProductionImage(r *report, p *pod, c *corev1.Container) {
	img := c.Image
	name, _, _ := strings.Cut(img, "@")
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		tag = name[i+1:]
	}
	switch {
	case tag == "dev" || tag == "latest":
		r.add(p.owner, "container %q: image %q: a production overlay never runs :%s, a tag that moves (and with imagePullPolicy IfNotPresent, whatever a node has under that name)", c.Name, img, tag)
	case !digestRef.MatchString(img):
		r.add(p.owner, "container %q: image %q is not pinned by digest: set images: in the overlay (kustomize edit set image %s=REGISTRY/%s@sha256:...)", c.Name, img, c.Name, c.Name)
	}
}

// autoscalerOf returns the HorizontalPodAutoscaler that scales Deployment
// d, or nil.
func autoscalerOf(objs []*object, d *object) *autoscalingv2.HorizontalPodAutoscaler {
	for _, o := range typed[*autoscalingv2.HorizontalPodAutoscaler](objs) {
		h := as[*autoscalingv2.HorizontalPodAutoscaler](o)
		ref := h.Spec.ScaleTargetRef
		if o.namespace == d.namespace && ref.Kind == "Deployment" && ref.Name == d.name && strings.HasPrefix(ref.APIVersion, "apps/") {
			return h
		}
	}
	return nil
}

// checkHPA: the HPA scales a Deployment of the overlay on CPU, which then
// sets no replicas. `kubectl apply` patches what the three-way merge of the
// last applied manifest, the new one and the live object gives
// (k8s.io/kubectl pkg/cmd/apply/patcher.go, Patcher.patchSimple, calling
// apimachinery's strategicpatch.CreateThreeWayMergePatch): a manifest with
// replicas resets the live count, the HPA's, on every apply
// (TestApplyResetsReplicas shows it).
func checkHPA(r *report, o *object, objs []*object) {
	h := as[*autoscalingv2.HorizontalPodAutoscaler](o)
	if h == nil {
		return
	}
	ref := h.Spec.ScaleTargetRef
	do := find(objs, ref.Kind, o.namespace, ref.Name)
	var d *appsv1.Deployment
	if do != nil {
		d = as[*appsv1.Deployment](do)
	}
	if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || d == nil {
		r.add(o, "scaleTargetRef %s %s (%s) is no Deployment of the overlay in namespace %q", ref.Kind, ref.Name, ref.APIVersion, o.namespace)
		return
	}
	if d.Spec.Replicas != nil {
		r.add(do, "spec.replicas is %d, but HorizontalPodAutoscaler %s scales it: every kubectl apply would reset the count the HPA set; remove replicas", *d.Spec.Replicas, h.Name)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
		r.add(o, "minReplicas must be at least 2: with one pod, a node drain or a crash leaves no corsproc")
	}
	if h.Spec.MinReplicas != nil && h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		r.add(o, "maxReplicas %d is below minReplicas %d", h.Spec.MaxReplicas, *h.Spec.MinReplicas)
	}
	cpu := false
	for _, m := range h.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType && m.Resource.Target.AverageUtilization != nil {
			cpu = true
		}
	}
	if !cpu {
		r.add(o, "no CPU utilization target: corsproc's load is CPU (docs/performance.md, \"Sizing for Kubernetes\")")
	}
	// Utilization is of the requests: every container needs one.
	p := &pod{spec: &d.Spec.Template.Spec}
	for _, c := range p.allContainers() {
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok && (isSidecar(c) || !slices.ContainsFunc(d.Spec.Template.Spec.InitContainers, func(ic corev1.Container) bool { return ic.Name == c.Name })) {
			r.add(o, "container %q of %s has no CPU request: the HPA cannot compute utilization", c.Name, do)
		}
	}
}

// envoyBootstrap returns the bootstrap an Envoy container runs, from the
// ConfigMap mounted at its --config-path, or nil (checkEnvoyContainer
// reports why).
func envoyBootstrap(objs []*object, p *pod, c *corev1.Container) *bootstrapv3.Bootstrap {
	cfgPath := envoyConfigPath(c)
	if cfgPath == "" {
		return nil
	}
	v := p.volume(mountFor(c, cfgPath))
	if v == nil || v.ConfigMap == nil {
		return nil
	}
	data, ok := configMapData(find(objs, "ConfigMap", p.namespace, v.ConfigMap.Name))[path.Base(cfgPath)]
	if !ok {
		return nil
	}
	bs, err := loadBootstrap([]byte(data))
	if err != nil {
		return nil
	}
	return bs
}

// checkEnvoyPod checks the pod of an Envoy gateway: its own ServiceAccount,
// a readiness probe on Envoy's admin /ready, and a drain before SIGTERM.
func checkEnvoyPod(env *testEnv, r *report, objs []*object, p *pod, c *corev1.Container) {
	o := p.owner
	where := fmt.Sprintf("container %q", c.Name)

	// Identity: Envoy's own, neither the namespace's default (shared by
	// anything else there) nor corsproc's (what a mesh or a NetworkPolicy
	// grants corsproc would then be Envoy's too).
	switch sa := p.spec.ServiceAccountName; sa {
	case "", defaultServiceAccount:
		r.add(o, "Envoy runs as the namespace's default ServiceAccount: give it its own (serviceAccountName)")
	case corsprocName:
		r.add(o, "Envoy runs as corsproc's ServiceAccount %q: give it its own, so that corsproc's identity stays corsproc's", sa)
	}

	bs := envoyBootstrap(objs, p, c)
	if bs == nil {
		return
	}
	admin := bs.GetAdmin().GetAddress().GetSocketAddress()
	if admin.GetAddress() != "127.0.0.1" && admin.GetAddress() != "::1" {
		r.add(o, "%s: Envoy's admin interface listens on %q: it can drain and stop Envoy; keep it on 127.0.0.1 and probe a ready listener", where, admin.GetAddress())
	}

	// Readiness: an HTTP GET of the admin's /ready, through a listener that
	// forwards that path alone to the admin address. Envoy answers 200 only
	// when the server is LIVE (source/server/admin/server_info_handler.cc,
	// ServerInfoHandler::handlerReady, with source/server/utils.cc,
	// serverState): initialized and not failing health checks.
	rp := c.ReadinessProbe
	if rp == nil || rp.HTTPGet == nil {
		r.add(o, "%s: readinessProbe must be an httpGet of Envoy's %s (a ready listener forwarding it to the admin interface): a TCP connect succeeds before Envoy can route, and tells nothing of its state", where, envoyReadyPath)
	} else {
		cp := containerPort(c, rp.HTTPGet.Port)
		var l *listenerv3.Listener
		if cp != nil {
			l = listenerOn(bs, uint32(cp.ContainerPort))
		}
		switch {
		case cp == nil:
			// checkContainer reports the port.
		case rp.HTTPGet.Path != envoyReadyPath:
			r.add(o, "%s: readinessProbe path %q, want %s", where, rp.HTTPGet.Path, envoyReadyPath)
		case l == nil:
			r.add(o, "%s: readinessProbe port %d is no listener of Envoy's bootstrap", where, cp.ContainerPort)
		default:
			for _, e := range readyListenerErrors(bs, l, admin.GetPortValue()) {
				r.add(o, "%s: listener %q: %s", where, l.GetName(), e)
			}
		}
	}

	// Drain: Envoy exits at once on SIGTERM (source/server/server.cc,
	// RunHelper: the SIGTERM handler calls InstanceImpl::shutdown), and its
	// admin's drain endpoints take POST only (source/server/admin/admin.cc,
	// AdminImpl::makeRequest), which no preStop handler sends. So the
	// listener closes every client connection gracefully within
	// max_connection_duration + drain_timeout
	// (source/common/http/conn_manager_impl.cc,
	// ConnectionManagerImpl::onConnectionDurationTimeout, startDrainSequence),
	// and the preStop sleep outlasts that.
	sleep := time.Duration(0)
	if lc := c.Lifecycle; lc != nil && lc.PreStop != nil && lc.PreStop.Sleep != nil {
		sleep = time.Duration(lc.PreStop.Sleep.Seconds) * time.Second
	}
	for _, l := range bs.GetStaticResources().GetListeners() {
		if l.GetName() == "" || slices.Contains(readyListeners(bs, admin.GetPortValue()), l.GetName()) {
			continue
		}
		hcm := listenerHCM(l)
		if hcm == nil {
			continue
		}
		mcd := hcm.GetCommonHttpProtocolOptions().GetMaxConnectionDuration()
		if mcd == nil || mcd.AsDuration() <= 0 {
			r.add(o, "%s: listener %q sets no common_http_protocol_options.max_connection_duration: Envoy exits at once on SIGTERM, and nothing closes a client's keep-alive connection before, so requests in flight are cut", where, l.GetName())
			continue
		}
		drain := envoyDefaultDrainTimeout
		if dt := hcm.GetDrainTimeout(); dt != nil {
			drain = dt.AsDuration()
		}
		if need := mcd.AsDuration() + drain + endpointsLag; sleep < need {
			r.add(o, "%s: preStop sleeps %v, but listener %q closes its connections only within max_connection_duration %v + drain_timeout %v, after the endpoints forget the pod (%v): sleep at least %v", where, sleep, l.GetName(), mcd.AsDuration(), drain, endpointsLag, need)
		}
	}
	grace := 30 * time.Second
	if p.spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*p.spec.TerminationGracePeriodSeconds) * time.Second
	}
	if grace <= sleep {
		r.add(o, "terminationGracePeriodSeconds %v does not outlast Envoy's preStop sleep %v: the kubelet would kill Envoy mid-drain", grace, sleep)
	}
}

func listenerOn(bs *bootstrapv3.Bootstrap, port uint32) *listenerv3.Listener {
	for _, l := range bs.GetStaticResources().GetListeners() {
		if l.GetAddress().GetSocketAddress().GetPortValue() == port {
			return l
		}
	}
	return nil
}

func listenerHCM(l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetName() != hcmFilterName {
				continue
			}
			hcm := new(hcmv3.HttpConnectionManager)
			if f.GetTypedConfig().UnmarshalTo(hcm) == nil {
				return hcm
			}
		}
	}
	return nil
}

// readyListenerErrors checks that l routes GET /ready, and nothing else, to
// a cluster whose one endpoint is the admin interface.
func readyListenerErrors(bs *bootstrapv3.Bootstrap, l *listenerv3.Listener, adminPort uint32) []string {
	hcm := listenerHCM(l)
	if hcm == nil {
		return []string{"no HTTP connection manager"}
	}
	var errs []string
	routes := 0
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, rt := range vh.GetRoutes() {
			routes++
			if rt.GetMatch().GetPath() != envoyReadyPath {
				errs = append(errs, fmt.Sprintf("routes %v: it must route the exact path %s alone, or anything reaching the port reaches the admin interface (which drains and stops Envoy)", rt.GetMatch(), envoyReadyPath))
				continue
			}
			if !isAdminCluster(bs, rt.GetRoute().GetCluster(), adminPort) {
				errs = append(errs, fmt.Sprintf("routes %s to cluster %q, which is not the admin interface (127.0.0.1:%d)", envoyReadyPath, rt.GetRoute().GetCluster(), adminPort))
			}
		}
	}
	if routes == 0 {
		errs = append(errs, "routes nothing")
	}
	return errs
}

func isAdminCluster(bs *bootstrapv3.Bootstrap, name string, adminPort uint32) bool {
	cl := clusterByName(bs, name)
	eps := cl.GetLoadAssignment().GetEndpoints()
	if cl == nil || len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		return false
	}
	sa := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	return (sa.GetAddress() == "127.0.0.1" || sa.GetAddress() == "::1") && sa.GetPortValue() == adminPort
}

// readyListeners are the listeners that forward /ready to the admin.
func readyListeners(bs *bootstrapv3.Bootstrap, adminPort uint32) []string {
	var names []string
	for _, l := range bs.GetStaticResources().GetListeners() {
		if l.GetName() != "" && len(readyListenerErrors(bs, l, adminPort)) == 0 {
			names = append(names, l.GetName())
		}
	}
	return names
}

// k8sEnvoyAdditions strips from a bootstrap of the manifests what the k8s
// copies of envoy/envoy.yaml add on purpose (their header comments say
// which): the ready listener and the admin cluster it forwards to, and the
// ingress listener's max_connection_duration and drain_timeout, so that the
// rest can be compared with envoy/envoy.yaml. checkEnvoyPod checks the
// additions against the pod.
func k8sEnvoyAdditions(bs *bootstrapv3.Bootstrap) {
	adminPort := bs.GetAdmin().GetAddress().GetSocketAddress().GetPortValue()
	ready := readyListeners(bs, adminPort)
	sr := bs.GetStaticResources()
	var admin []string
	sr.Listeners = slices.DeleteFunc(sr.Listeners, func(l *listenerv3.Listener) bool {
		if !slices.Contains(ready, l.GetName()) {
			return false
		}
		for _, vh := range listenerHCM(l).GetRouteConfig().GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				admin = append(admin, rt.GetRoute().GetCluster())
			}
		}
		return true
	})
	for _, name := range admin {
		if cl := clusterByName(bs, name); cl != nil && isAdminCluster(bs, name, adminPort) {
			sr.Clusters = slices.DeleteFunc(sr.Clusters, func(c *clusterv3.Cluster) bool { return c.GetName() == name })
		}
	}
	for _, l := range sr.GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if f.GetName() != hcmFilterName {
					continue
				}
				hcm := new(hcmv3.HttpConnectionManager)
				if f.GetTypedConfig().UnmarshalTo(hcm) != nil {
					continue
				}
				if o := hcm.GetCommonHttpProtocolOptions(); o != nil {
					o.MaxConnectionDuration = nil
					if proto.Equal(o, new(corev3.HttpProtocolOptions)) {
						hcm.CommonHttpProtocolOptions = nil
					}
				}
				if hcm.GetDrainTimeout().AsDuration() == envoyDefaultDrainTimeout {
					hcm.DrainTimeout = nil
				}
				_ = f.GetTypedConfig().MarshalFrom(hcm)
			}
		}
	}
}

// checkSidecarOrder checks the termination of a pod whose native sidecar
// (corsproc) serves its main container (Envoy). The kubelet runs every
// container's preStop hook as termination starts, a sidecar's beside the
// main containers', and sends a sidecar its SIGTERM only once the main
// containers have exited (pkg/kubelet/kuberuntime/kuberuntime_container.go,
// killContainer: executePreStopHook, then ordering.waitForTurn; the order
// from kuberuntime_termination_order.go, newTerminationOrdering; Kubernetes
// 1.29 and later). So a sidecar's preStop does not run "after Envoy", and
// the grace period must hold Envoy's stop and then corsproc's drain, one
// after the other.
func checkSidecarOrder(env *testEnv, r *report, p *pod) {
	if len(p.spec.Containers) == 0 {
		return
	}
	var mainStop time.Duration
	for i := range p.spec.Containers {
		if lc := p.spec.Containers[i].Lifecycle; lc != nil && lc.PreStop != nil && lc.PreStop.Sleep != nil {
			mainStop = max(mainStop, time.Duration(lc.PreStop.Sleep.Seconds)*time.Second)
		}
	}
	grace := 30 * time.Second
	if p.spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*p.spec.TerminationGracePeriodSeconds) * time.Second
	}
	for i := range p.spec.InitContainers {
		c := &p.spec.InitContainers[i]
		if !isSidecar(c) || c.Name != corsprocContainer {
			continue
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			r.add(p.owner, "native sidecar %q has a preStop hook: the kubelet runs it as termination starts, beside the main containers' own, not after them; a sidecar serving the main containers over a socket needs none (it is stopped once they exited)", c.Name)
		}
		drain := defaultShutdownTimeout
		if v := flagValue(c, "shutdown-timeout"); v != "" {
			if d, err := time.ParseDuration(v); err == nil {
				drain = d
			}
		}
		if need := mainStop + drain; grace <= need {
			r.add(p.owner, "terminationGracePeriodSeconds %v: the main containers' preStop (%v) and then sidecar %q's drain (--shutdown-timeout %v) run one after the other and need more than %v", grace, mainStop, c.Name, drain, need)
		}
	}
}

// A peer of the network: a pod of some namespace, as a NetworkPolicy
// selects it. admits, ruleAdmits and rulePort follow the semantics the API
// defines (k8s.io/api v0.36.3, networking/v1/types.go, NetworkPolicyPeer,
// NetworkPolicyIngressRule and NetworkPolicyPort), which every enforcing
// network plugin implements.
type peer struct {
	what      string
	namespace string
	nsLabels  map[string]string
	podLabels map[string]string
	// anyPod: every pod of namespaces with nsLabels is such a peer (a mesh's
	// sidecars); podLabels is then one example.
	anyPod bool
}

// newPeer labels the namespace with its name, as the API server does for
// every namespace (k8s.io/api v0.36.3, core/v1/well_known_labels.go,
// LabelMetadataName).
func newPeer(what, ns string, nsLabels, podLabels map[string]string) peer {
	l := map[string]string{"kubernetes.io/metadata.name": ns}
	for k, v := range nsLabels {
		l[k] = v
	}
	return peer{what: what, namespace: ns, nsLabels: l, podLabels: podLabels}
}

// prometheusPeer is a Prometheus of the Prometheus Operator in namespace
// monitoring: its pods carry app.kubernetes.io/name: prometheus
// (prometheus-operator v0.93.0, pkg/prometheus/server/operator.go,
// makeSelectorLabels).
var prometheusPeer = newPeer("Prometheus", "monitoring", nil, map[string]string{
	"app.kubernetes.io/name":       "prometheus",
	"app.kubernetes.io/managed-by": "prometheus-operator",
	"prometheus":                   "k8s",
})

// admits reports whether a NetworkPolicy rule's peer admits p.
func admits(np *networkingv1.NetworkPolicy, from networkingv1.NetworkPolicyPeer, p peer) bool {
	if from.IPBlock != nil {
		return from.IPBlock.CIDR == "0.0.0.0/0" || from.IPBlock.CIDR == "::/0"
	}
	if from.NamespaceSelector == nil {
		if p.namespace != np.Namespace {
			return false
		}
	} else {
		sel, err := metav1.LabelSelectorAsSelector(from.NamespaceSelector)
		if err != nil || !sel.Matches(labels.Set(p.nsLabels)) {
			return false
		}
	}
	if from.PodSelector == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(from.PodSelector)
	return err == nil && sel.Matches(labels.Set(p.podLabels))
}

// ruleAdmits reports whether rule admits p to port.
func ruleAdmits(np *networkingv1.NetworkPolicy, rule networkingv1.NetworkPolicyIngressRule, port int32, p peer) bool {
	if !rulePort(rule, port) {
		return false
	}
	if len(rule.From) == 0 {
		return true // from everywhere
	}
	for _, f := range rule.From {
		if admits(np, f, p) {
			return true
		}
	}
	return false
}

func rulePort(rule networkingv1.NetworkPolicyIngressRule, port int32) bool {
	if len(rule.Ports) == 0 {
		return true
	}
	for _, pp := range rule.Ports {
		if pp.Protocol != nil && *pp.Protocol != corev1.ProtocolTCP {
			continue
		}
		switch {
		case pp.Port == nil:
			return true
		case pp.Port.Type == intstr.Int && pp.Port.IntVal == port:
			return true
		case pp.Port.Type == intstr.Int && pp.EndPort != nil && pp.Port.IntVal <= port && port <= *pp.EndPort:
			return true
		}
	}
	return false
}

// callers are the ext_proc clients an overlay configures: its Envoy
// Deployments whose corsproc cluster reaches corsproc over TCP, the Istio
// gateways and sidecars its EnvoyFilters patch, and Envoy Gateway's proxies
// of the Gateways its EnvoyExtensionPolicies target.
func callers(objs []*object, ps []*pod) []peer {
	var out []peer
	for _, p := range ps {
		c := p.container(envoyContainer)
		if c == nil || p.container(corsprocContainer) != nil {
			continue // no Envoy, or corsproc in the same pod (a socket)
		}
		out = append(out, newPeer("the Envoy pods of "+p.owner.String(), p.namespace, nil, p.labels))
	}
	for _, o := range envoyFilters(objs) {
		ef := as[*istionetworking.EnvoyFilter](o)
		sel := ef.Spec.GetWorkloadSelector().GetLabels()
		for _, cp := range ef.Spec.GetConfigPatches() {
			if cp.GetPatch().GetOperation() == istioapinetworking.EnvoyFilter_Patch_INSERT_FIRST {
				if len(sel) > 0 {
					out = append(out, newPeer("the workloads "+o.String()+" selects", o.namespace, nil, sel))
				} else if cp.GetMatch().GetContext() == istioapinetworking.EnvoyFilter_SIDECAR_INBOUND {
					// Mesh-wide: every sidecar, in every namespace with injection.
					for _, nsl := range []map[string]string{{"istio-injection": "enabled"}, {"istio.io/rev": "default"}} {
						p := newPeer("the sidecars of the mesh", "app", nsl, map[string]string{"app": "any"})
						p.anyPod = true
						out = append(out, p)
					}
				}
				break
			}
		}
	}
	for _, o := range egExtensionPolicies(objs) {
		for _, gw := range egGatewayTargets(o) {
			out = append(out, newPeer("Envoy Gateway's proxies of Gateway "+o.namespace+"/"+gw, egNamespace, nil, map[string]string{
				"app.kubernetes.io/name":                         "envoy",
				"app.kubernetes.io/component":                    "proxy",
				"app.kubernetes.io/managed-by":                   "envoy-gateway",
				"gateway.envoyproxy.io/owning-gateway-name":      gw,
				"gateway.envoyproxy.io/owning-gateway-namespace": o.namespace,
			}))
		}
	}
	return out
}

// egNamespace is where Envoy Gateway runs its Envoy proxies by default: its
// controller's namespace, unless GatewayNamespaceMode is on (v1.9.1,
// internal/infrastructure/kubernetes/proxy_infra.go, GetResourceNamespace).
const egNamespace = "envoy-gateway-system"

// outsiders are pods that call nothing: a NetworkPolicy of corsproc must
// admit none of them to gRPC or the admin port.
func outsiders(ns string, cs []peer) []peer {
	out := []peer{
		newPeer("another pod of corsproc's namespace", ns, nil, map[string]string{"app.kubernetes.io/name": "other"}),
		newPeer("a pod of another namespace", "other", nil, map[string]string{"app.kubernetes.io/name": "other"}),
		newPeer("another pod of Prometheus's namespace", prometheusPeer.namespace, nil, map[string]string{"app.kubernetes.io/name": "grafana"}),
	}
	for _, c := range cs {
		if !c.anyPod {
			out = append(out, peer{what: "another pod of " + c.namespace, namespace: c.namespace, nsLabels: c.nsLabels, podLabels: map[string]string{"app.kubernetes.io/name": "other"}})
		}
	}
	return out
}

// checkNetworkPolicies: where NetworkPolicies select corsproc's pods, they
// admit exactly the overlay's callers to the gRPC port and Prometheus to
// the admin port. Overlays that configure callers (an Envoy of their own)
// must ship them.
func checkNetworkPolicies(r *report, objs []*object, ps []*pod) {
	nps := typed[*networkingv1.NetworkPolicy](objs)
	cs := callers(objs, ps)
	for _, p := range ps {
		c := p.container(corsprocContainer)
		if c == nil {
			continue
		}
		var selecting []*object
		for _, o := range nps {
			np := as[*networkingv1.NetworkPolicy](o)
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err == nil && o.namespace == p.namespace && sel.Matches(labels.Set(p.labels)) &&
				(len(np.Spec.PolicyTypes) == 0 || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)) {
				selecting = append(selecting, o)
			}
		}
		ownEnvoy := p.container(envoyContainer) != nil || slices.ContainsFunc(cs, func(c peer) bool { return strings.HasPrefix(c.what, "the Envoy pods of") })
		if len(selecting) == 0 {
			if ownEnvoy || len(cs) > 0 {
				r.add(p.owner, "no NetworkPolicy selects corsproc's pods: the admin port (/debug/policy) is open to the whole cluster and the gRPC port to any pod; admit only this overlay's Envoy and Prometheus (k8s/components/networkpolicy)")
			}
			continue
		}
		grpcTCP := containerPort(c, intstr.FromString(grpcPortName)) != nil
		check := func(port int32, want []peer, what string) {
			for _, w := range want {
				ok := false
				for _, o := range selecting {
					np := as[*networkingv1.NetworkPolicy](o)
					for _, rule := range np.Spec.Ingress {
						ok = ok || ruleAdmits(np, rule, port, w)
					}
				}
				if !ok {
					r.add(p.owner, "no NetworkPolicy admits %s to port %d (%s): it could not reach corsproc", w.what, port, what)
				}
			}
			for _, o := range selecting {
				np := as[*networkingv1.NetworkPolicy](o)
				for i, rule := range np.Spec.Ingress {
					for _, x := range outsiders(p.namespace, want) {
						if ruleAdmits(np, rule, port, x) {
							r.add(o, "spec.ingress[%d] admits %s to port %d (%s): admit only %s", i, x.what, port, what, peerList(want))
							break
						}
					}
				}
			}
		}
		check(adminPort, []peer{prometheusPeer}, "admin: /metrics, /debug/policy")
		if grpcTCP {
			check(grpcPort, cs, "ext_proc gRPC")
		}
	}
}

func peerList(ps []peer) string {
	var s []string
	for _, p := range ps {
		if !slices.Contains(s, p.what) {
			s = append(s, p.what)
		}
	}
	if len(s) == 0 {
		return "nobody"
	}
	return strings.Join(s, ", ")
}

// overlayImage returns the corsproc image an overlay renders: the images:
// entry for corsproc of the kustomization nearest the overlay (an outer
// kustomization's images: transformer runs last), else base's.
func overlayImage(tr tree, overlay, base string) (ref, from string) {
	var visit func(dir string) (string, string)
	seen := map[string]bool{}
	visit = func(dir string) (string, string) {
		if seen[dir] {
			return "", ""
		}
		seen[dir] = true
		file := path.Join(dir, "kustomization.yaml")
		var k struct {
			Resources  []string         `yaml:"resources"`
			Components []string         `yaml:"components"`
			Images     []kustomizeImage `yaml:"images"`
		}
		if yaml.Unmarshal(tr[file], &k) != nil {
			return "", ""
		}
		if ref := corsprocImage(k.Images); ref != "" {
			return ref, file
		}
		for _, res := range slices.Concat(k.Components, k.Resources) {
			if d := path.Clean(path.Join(dir, res)); tr[path.Join(d, "kustomization.yaml")] != nil {
				if ref, from := visit(d); ref != "" {
					return ref, from
				}
			}
		}
		return "", ""
	}
	if ref, from := visit(overlay); ref != "" {
		return ref, from
	}
	return base, "base/kustomization.yaml"
}

// isComponent reports whether a kustomization file is a Component.
func isComponent(data []byte) bool {
	var k struct {
		Kind string `yaml:"kind"`
	}
	return yaml.Unmarshal(data, &k) == nil && k.Kind == "Component"
}

func egExtensionPolicies(objs []*object) []*object {
	return typed[*egv1a1.EnvoyExtensionPolicy](objs)
}

// egGatewayTargets are the names of the Gateways an EnvoyExtensionPolicy
// targets (in its own namespace).
func egGatewayTargets(o *object) []string {
	var names []string
	for _, t := range as[*egv1a1.EnvoyExtensionPolicy](o).Spec.TargetRefs {
		if t.Kind == "Gateway" {
			names = append(names, string(t.Name))
		}
	}
	return names
}
