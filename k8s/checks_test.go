package k8s_test

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corsproc/corsproc/policy/policyfile"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
)

// Names the manifests share with corsproc and with each other.
const (
	corsprocContainer = "corsproc"
	corsprocImageName = "corsproc" // the name the manifests use, set by images:
	envoyContainer    = "envoy"
	grpcPortName      = "grpc"
	adminPortName     = "admin"
	// The flags every corsproc container sets, and the value some must have.
	defaultShutdownTimeout = 10 * time.Second // corsproc serve's --shutdown-timeout default
)

// pod is a pod template of a workload, with what the checks need of it.
type pod struct {
	owner     *object
	namespace string
	labels    map[string]string
	meta      *metav1.ObjectMeta
	spec      *corev1.PodSpec
	replicas  int32
}

// long-running containers: the main ones and native sidecars.
func (p *pod) longRunning() []*corev1.Container {
	var cs []*corev1.Container
	for i := range p.spec.InitContainers {
		if c := &p.spec.InitContainers[i]; isSidecar(c) {
			cs = append(cs, c)
		}
	}
	for i := range p.spec.Containers {
		cs = append(cs, &p.spec.Containers[i])
	}
	return cs
}

func (p *pod) allContainers() []*corev1.Container {
	var cs []*corev1.Container
	for i := range p.spec.InitContainers {
		cs = append(cs, &p.spec.InitContainers[i])
	}
	for i := range p.spec.Containers {
		cs = append(cs, &p.spec.Containers[i])
	}
	return cs
}

func (p *pod) container(name string) *corev1.Container {
	for _, c := range p.allContainers() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (p *pod) volume(name string) *corev1.Volume {
	for i := range p.spec.Volumes {
		if p.spec.Volumes[i].Name == name {
			return &p.spec.Volumes[i]
		}
	}
	return nil
}

func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func pods(objs []*object) []*pod {
	var ps []*pod
	for _, o := range objs {
		d, ok := o.typed.(*appsv1.Deployment)
		if !ok {
			continue
		}
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		} else if hpa := autoscalerOf(objs, o); hpa != nil && hpa.Spec.MinReplicas != nil {
			replicas = *hpa.Spec.MinReplicas // the HPA sets the count (platform_test.go)
		}
		ps = append(ps, &pod{owner: o, namespace: d.Namespace, labels: d.Spec.Template.Labels,
			meta: &d.Spec.Template.ObjectMeta, spec: &d.Spec.Template.Spec, replicas: replicas})
	}
	return ps
}

// selected returns the pods of namespace ns whose labels hold selector.
func selected(ps []*pod, ns string, selector labels.Selector) []*pod {
	var out []*pod
	for _, p := range ps {
		if p.namespace == ns && selector.Matches(labels.Set(p.labels)) {
			out = append(out, p)
		}
	}
	return out
}

func find(objs []*object, kind, ns, name string) *object {
	for _, o := range objs {
		if o.is(kind, ns, name) {
			return o
		}
	}
	return nil
}

// checkObjects runs the checks every overlay must pass.
func checkObjects(env *testEnv, r *report, tr tree, objs []*object) {
	for _, o := range objs {
		switch {
		case r.overlay == "base" && o.namespace != "":
			r.add(o, "the base must be namespace-agnostic, but this object sets namespace %q", o.namespace)
		case r.overlay != "base" && o.kind != "Namespace" && o.namespace == "":
			r.add(o, "no namespace: every object of an overlay must say where it goes")
		}
		if u := unstructuredOf(o.data); u != nil {
			if _, ok := u.GetLabels()["app.kubernetes.io/name"]; !ok {
				r.add(o, "no app.kubernetes.io/name label: selecting the deployment's objects by label (kubectl get configmap,deploy,svc -l app.kubernetes.io/name=corsproc) would miss it")
			}
		}
	}
	ps := pods(objs)
	for _, p := range ps {
		checkPod(env, r, tr, objs, ps, p)
	}
	// Policy ConfigMaps no corsproc container mounts are validated too.
	for _, o := range typed[*corev1.ConfigMap](objs) {
		if o.name == policyMap && !r.checked[o] {
			checkPolicyConfigMap(r, o)
		}
	}
	for _, o := range typed[*corev1.Service](objs) {
		checkService(r, o, ps)
	}
	for _, o := range typed[*policyv1.PodDisruptionBudget](objs) {
		checkPDB(r, o, ps)
	}
	for _, o := range objs {
		if o.kind == "EnvoyFilter" && o.typed != nil {
			checkEnvoyFilter(r, o, objs, ps)
		}
	}
	checkGatewayObjects(r, objs, ps)
	checkPlatform(env, r, tr, objs, ps)
}

var psaEvaluator = func() psapolicy.Evaluator {
	e, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		panic(err)
	}
	return e
}()

func checkPod(env *testEnv, r *report, tr tree, objs []*object, ps []*pod, p *pod) {
	o := p.owner
	if d, ok := o.typed.(*appsv1.Deployment); ok {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		switch {
		case err != nil:
			r.add(o, "spec.selector: %v", err)
		case sel.Empty():
			r.add(o, "spec.selector is empty")
		case !sel.Matches(labels.Set(p.labels)):
			r.add(o, "spec.selector %s does not match the pod template's labels %v", sel, p.labels)
		}
		if p.replicas > 1 {
			checkSpread(r, o, objs, p)
		}
	}

	// The restricted Pod Security Standard, as the API server's admission
	// evaluates it.
	for _, res := range psaEvaluator.EvaluatePod(psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}, p.meta, p.spec) {
		if !res.Allowed {
			r.add(o, "pod template violates the restricted Pod Security Standard: %s: %s", res.ForbiddenReason, res.ForbiddenDetail)
		}
	}
	if p.spec.AutomountServiceAccountToken == nil || *p.spec.AutomountServiceAccountToken {
		r.add(o, "pod template: automountServiceAccountToken must be false: nothing here talks to the Kubernetes API")
	}
	if sa := p.spec.ServiceAccountName; sa != "" && sa != "default" {
		so := find(objs, "ServiceAccount", p.namespace, sa)
		if so == nil {
			r.add(o, "serviceAccountName %q: no such ServiceAccount in namespace %q of the overlay", sa, p.namespace)
		} else if s := as[*corev1.ServiceAccount](so); s != nil && (s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken) {
			r.add(so, "automountServiceAccountToken must be false")
		}
	}

	var preStop time.Duration
	for _, c := range p.allContainers() {
		checkContainer(r, objs, p, c)
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			preStop = max(preStop, time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second)
		}
	}
	grace := 30 * time.Second
	if p.spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*p.spec.TerminationGracePeriodSeconds) * time.Second
	}
	for _, c := range p.allContainers() {
		if c.Name == corsprocContainer {
			drain := checkCorsproc(env, r, tr, objs, p, c)
			if need := preStop + drain; grace <= need {
				r.add(o, "terminationGracePeriodSeconds %v leaves corsproc no time: the preStop sleep and --shutdown-timeout take %v", grace, need)
			}
		}
		if c.Name == envoyContainer {
			checkEnvoyContainer(r, objs, ps, p, c)
		}
	}
}

// checkSpread checks that a workload with several replicas spreads them over
// nodes and has a PodDisruptionBudget.
func checkSpread(r *report, o *object, objs []*object, p *pod) {
	spread := false
	for _, tsc := range p.spec.TopologySpreadConstraints {
		sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.labels)) && tsc.TopologyKey == "kubernetes.io/hostname" {
			spread = true
		}
	}
	if a := p.spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		spread = true
	}
	if !spread {
		r.add(o, "%d replicas but no topologySpreadConstraints on kubernetes.io/hostname selecting its pods (or podAntiAffinity): they may all land on one node", p.replicas)
	}
	covered := false
	for _, po := range typed[*policyv1.PodDisruptionBudget](objs) {
		pdb := as[*policyv1.PodDisruptionBudget](po)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err == nil && po.namespace == p.namespace && !sel.Empty() && sel.Matches(labels.Set(p.labels)) {
			covered = true
		}
	}
	if !covered {
		r.add(o, "%d replicas but no PodDisruptionBudget selects its pods: a node drain may evict them all at once", p.replicas)
	}
}

func checkContainer(r *report, objs []*object, p *pod, c *corev1.Container) {
	o := p.owner
	where := fmt.Sprintf("container %q", c.Name)
	switch img := c.Image; {
	case img == "":
		r.add(o, "%s: no image", where)
	case !strings.Contains(img, "@sha256:") && !strings.Contains(img[strings.LastIndex(img, "/")+1:], ":"):
		r.add(o, "%s: image %q has no tag or digest: it would pull whatever :latest is that day", where, img)
	case strings.HasSuffix(img, ":latest"):
		r.add(o, "%s: image %q: pin a version, not :latest", where, img)
	}

	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		r.add(o, "%s: securityContext.readOnlyRootFilesystem must be true", where)
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		r.add(o, "%s: securityContext.allowPrivilegeEscalation must be false", where)
	}
	if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		r.add(o, "%s: securityContext.capabilities must drop ALL and add none", where)
	}

	req, lim := c.Resources.Requests, c.Resources.Limits
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		rq, okr := req[res]
		lm, okl := lim[res]
		switch {
		case !okr:
			r.add(o, "%s: no %s request: the scheduler cannot place it by its needs", where, res)
		case !okl:
			r.add(o, "%s: no %s limit", where, res)
		case rq.Cmp(lm) > 0:
			r.add(o, "%s: %s request %s is above its limit %s", where, res, rq.String(), lm.String())
		}
	}
	for _, e := range c.Env {
		if e.Name != "GOMEMLIMIT" {
			continue
		}
		gml, err := goMemLimit(e.Value)
		if lm, ok := lim[corev1.ResourceMemory]; err != nil || !ok || gml.Cmp(lm) >= 0 {
			r.add(o, "%s: GOMEMLIMIT %q must be a size below the memory limit", where, e.Value)
		}
	}

	if isSidecar(c) || slices.ContainsFunc(p.spec.Containers, func(m corev1.Container) bool { return m.Name == c.Name }) {
		if c.ReadinessProbe == nil {
			r.add(o, "%s: no readinessProbe: traffic would reach it before it can answer", where)
		}
		if c.LivenessProbe == nil {
			r.add(o, "%s: no livenessProbe: a hung process would never be restarted", where)
		}
	}
	for name, pr := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
		if pr == nil {
			continue
		}
		var port *intstr.IntOrString
		switch {
		case pr.HTTPGet != nil:
			port = &pr.HTTPGet.Port
		case pr.TCPSocket != nil:
			port = &pr.TCPSocket.Port
		case pr.GRPC != nil:
			port = &intstr.IntOrString{IntVal: pr.GRPC.Port}
		case pr.Exec != nil:
			r.add(o, "%s: %s runs a command, and the images have no shell", where, name)
			continue
		}
		if port != nil && containerPort(c, *port) == nil {
			r.add(o, "%s: %s port %s is not a port of the container (its ports: %s)", where, name, port.String(), portList(c))
		}
	}

	seen := map[string]bool{}
	for _, cp := range c.Ports {
		if cp.Name != "" && seen[cp.Name] {
			r.add(o, "%s: two ports named %q", where, cp.Name)
		}
		seen[cp.Name] = true
	}

	for _, vm := range c.VolumeMounts {
		v := p.volume(vm.Name)
		if v == nil {
			r.add(o, "%s: volumeMount %q: no such volume in the pod", where, vm.Name)
			continue
		}
		if v.ConfigMap == nil {
			continue
		}
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			r.add(o, "%s: volumeMount %q mounts ConfigMap %s with subPath: the kubelet never updates such a mount, so edits of the ConfigMap would not reach the container", where, vm.Name, v.ConfigMap.Name)
		}
		cm := find(objs, "ConfigMap", p.namespace, v.ConfigMap.Name)
		if cm == nil {
			if v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional {
				r.add(o, "volume %q: ConfigMap %q is not in namespace %q of the overlay: the pod would never start", v.Name, v.ConfigMap.Name, p.namespace)
			}
			continue
		}
		if data := configMapData(cm); data != nil {
			for _, it := range v.ConfigMap.Items {
				if _, ok := data[it.Key]; !ok {
					r.add(o, "volume %q: ConfigMap %q has no key %q", v.Name, v.ConfigMap.Name, it.Key)
				}
			}
		}
	}
}

func configMapData(o *object) map[string]string {
	cm := as[*corev1.ConfigMap](o)
	if cm == nil {
		return nil
	}
	return cm.Data
}

// containerPort resolves a probe's or a Service's port in a container: a
// name of one of its ports, or a number one of them declares.
func containerPort(c *corev1.Container, port intstr.IntOrString) *corev1.ContainerPort {
	for i, cp := range c.Ports {
		if port.Type == intstr.String && cp.Name == port.StrVal || port.Type == intstr.Int && cp.ContainerPort == port.IntVal {
			return &c.Ports[i]
		}
	}
	return nil
}

func portList(c *corev1.Container) string {
	var s []string
	for _, cp := range c.Ports {
		s = append(s, fmt.Sprintf("%s=%d", cp.Name, cp.ContainerPort))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// serveArgs parses the arguments of a corsproc container: the subcommand,
// then flags, each checked against the flags the real binary accepts.
func serveArgs(env *testEnv, r *report, o *object, c *corev1.Container) map[string]string {
	args := slices.Concat(c.Command, c.Args)
	if len(args) == 0 || args[0] != "serve" {
		r.add(o, "container %q: args must start with the subcommand serve, got %q", c.Name, args)
		return nil
	}
	flags := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			r.add(o, "container %q: argument %q is not a flag", c.Name, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if env.serveFlagsErr != nil {
			r.add(o, "container %q: cannot check the flags: %v", c.Name, env.serveFlagsErr)
		} else if !env.serveFlags[name] {
			known := make([]string, 0, len(env.serveFlags))
			for f := range env.serveFlags {
				known = append(known, "--"+f)
			}
			slices.Sort(known)
			r.add(o, "container %q: corsproc serve has no flag --%s (it has %s)", c.Name, name, strings.Join(known, ", "))
		}
		if !hasValue {
			if i+1 >= len(args) {
				r.add(o, "container %q: flag --%s has no value", c.Name, name)
				continue
			}
			i++
			value = args[i]
		}
		if _, dup := flags[name]; dup {
			r.add(o, "container %q: flag --%s given twice", c.Name, name)
		}
		flags[name] = value
	}
	return flags
}

// checkCorsproc checks a corsproc container against its own flags and the
// pod around it. It returns the drain time its --shutdown-timeout allows.
func checkCorsproc(env *testEnv, r *report, tr tree, objs []*object, p *pod, c *corev1.Container) time.Duration {
	o := p.owner
	where := fmt.Sprintf("container %q", c.Name)
	if env.corsprocImageErr != nil {
		r.add(o, "%s: %v", where, env.corsprocImageErr)
	} else if want, from := overlayImage(tr, r.overlay, env.corsprocImage); c.Image != want {
		r.add(o, "%s: image %q, want %q, the one k8s/%s sets with images: (the manifests name it %q)", where, c.Image, want, from, corsprocImageName)
	}
	flags := serveArgs(env, r, o, c)
	if flags == nil {
		return defaultShutdownTimeout
	}
	for _, f := range []string{"listen", "admin", "policy"} {
		if flags[f] == "" {
			r.add(o, "%s: --%s must be set: corsproc's default is not for a pod", where, f)
		}
	}
	if v := flags["log-format"]; v != "json" {
		r.add(o, "%s: --log-format %q, want json: log collectors parse it", where, v)
	}

	drain := defaultShutdownTimeout
	if v, ok := flags["shutdown-timeout"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			r.add(o, "%s: --shutdown-timeout %q: %v", where, v, err)
		}
		drain = d
	}

	// The listeners and the ports the container declares must agree.
	declared := map[int32]bool{}
	for _, cp := range c.Ports {
		declared[cp.ContainerPort] = false
	}
	tcpPort := func(flag, portName string) {
		v := flags[flag]
		if v == "" || strings.HasPrefix(v, "unix://") {
			return
		}
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			r.add(o, "%s: --%s %q: %v", where, flag, v, err)
			return
		}
		if host != "0.0.0.0" && host != "::" && host != "" {
			r.add(o, "%s: --%s %q listens on %s only: in a pod Envoy and the kubelet come from other addresses; use 0.0.0.0", where, flag, v, host)
		}
		n, _ := strconv.Atoi(port)
		cp := containerPort(c, intstr.FromString(portName))
		switch {
		case cp == nil:
			r.add(o, "%s: --%s %q, but no container port is named %q (its ports: %s)", where, flag, v, portName, portList(c))
		case cp.ContainerPort != int32(n):
			r.add(o, "%s: --%s %q, but container port %q is %d", where, flag, v, portName, cp.ContainerPort)
		}
		if _, ok := declared[int32(n)]; ok {
			declared[int32(n)] = true
		}
	}
	tcpPort("listen", grpcPortName)
	tcpPort("admin", adminPortName)
	for port, used := range declared {
		if !used {
			r.add(o, "%s: declares port %d, where corsproc does not listen (--listen %q, --admin %q)", where, port, flags["listen"], flags["admin"])
		}
	}
	if sock, ok := strings.CutPrefix(flags["listen"], "unix://"); ok {
		checkSocket(r, p, c, sock)
	}

	// Probes: readiness on /readyz, liveness on /healthz, both on the admin port.
	for name, want := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"readinessProbe": {c.ReadinessProbe, "/readyz"}, "livenessProbe": {c.LivenessProbe, "/healthz"}} {
		pr := want.probe
		if pr == nil {
			continue
		}
		if pr.HTTPGet == nil || pr.HTTPGet.Path != want.path {
			r.add(o, "%s: %s must be an httpGet of %s", where, name, want.path)
			continue
		}
		if cp := containerPort(c, pr.HTTPGet.Port); cp != nil && cp.Name != adminPortName {
			r.add(o, "%s: %s probes port %s, not the admin port", where, name, pr.HTTPGet.Port.String())
		}
	}

	// The policy: a ConfigMap mounted as a directory at --policy.
	dir := path.Clean(flags["policy"])
	var mount *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if path.Clean(vm.MountPath) == dir {
			mount = &c.VolumeMounts[i]
		}
	}
	if flags["policy"] == "" {
		return drain
	}
	if mount == nil {
		r.add(o, "%s: --policy %s, but no volume is mounted there", where, dir)
		return drain
	}
	if !mount.ReadOnly {
		r.add(o, "%s: the policy mount %q must be readOnly", where, mount.Name)
	}
	v := p.volume(mount.Name)
	if v == nil || v.ConfigMap == nil {
		r.add(o, "%s: --policy %s: volume %q is not a ConfigMap", where, dir, mount.Name)
		return drain
	}
	if len(v.ConfigMap.Items) > 0 {
		r.add(o, "%s: volume %q lists items: every policy file of the ConfigMap should be mounted, and new keys too", where, v.Name)
	}
	if cm := find(objs, "ConfigMap", p.namespace, v.ConfigMap.Name); cm != nil {
		checkPolicyConfigMap(r, cm)
	}
	return drain
}

// checkSocket checks that a Unix socket is in an emptyDir volume that
// another container of the pod (Envoy) mounts too.
func checkSocket(r *report, p *pod, c *corev1.Container, sock string) {
	o := p.owner
	vol := mountFor(c, sock)
	if vol == "" {
		r.add(o, "container %q: the socket %s is on the read-only root file system: mount an emptyDir volume on %s", c.Name, sock, path.Dir(sock))
		return
	}
	if v := p.volume(vol); v == nil || v.EmptyDir == nil {
		r.add(o, "container %q: the socket %s must be in an emptyDir volume, %q is not one", c.Name, sock, vol)
	}
	shared := false
	for _, other := range p.allContainers() {
		if other.Name != c.Name && mountFor(other, sock) == vol {
			shared = true
		}
	}
	if !shared {
		r.add(o, "container %q: no other container mounts volume %q at the socket's directory: nobody can reach %s", c.Name, vol, sock)
	}
}

// mountFor returns the volume mounted at the directory holding file in c.
func mountFor(c *corev1.Container, file string) string {
	for _, vm := range c.VolumeMounts {
		if path.Clean(vm.MountPath) == path.Dir(path.Clean(file)) && vm.SubPath == "" {
			return vm.Name
		}
	}
	return ""
}

// checkPolicyConfigMap validates the policy set a ConfigMap holds with
// corsproc's own code: its keys are written to a directory, as the kubelet
// mounts them, and loaded with policyfile.Load, as `corsproc serve --policy DIR`
// does. Warnings fail too (corsproc check --strict). Diagnostics name the
// source file the generator read the key from, with its line.
func checkPolicyConfigMap(r *report, cm *object) {
	if r.checked[cm] {
		return
	}
	if r.checked == nil {
		r.checked = map[*object]bool{}
	}
	r.checked[cm] = true
	data := configMapData(cm)
	if data == nil {
		return
	}
	dir, err := os.MkdirTemp(tmpDir, "policy-")
	if err != nil {
		r.add(cm, "%v", err)
		return
	}
	defer os.RemoveAll(dir)
	files := 0
	for k, v := range data {
		if ext := path.Ext(k); ext != ".yaml" && ext != ".yml" {
			r.add(cm, "key %q: corsproc only loads *.yaml and *.yml files of the directory; this one would be ignored", k)
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			r.add(cm, "%v", err)
			return
		}
		files++
	}
	if files == 0 {
		r.add(cm, "holds no policy file (*.yaml): corsproc would refuse to start")
		return
	}
	// Name the file the generator read, when there is one.
	src := "data key "
	if gen, ok := strings.CutSuffix(cm.origin, " (ConfigMapGenerator)"); ok {
		src = path.Dir(gen) + "/"
	}
	rename := func(s string) string { return strings.ReplaceAll(s, dir+string(filepath.Separator), src) }
	set, err := policyfile.Load(dir)
	if err != nil {
		r.add(cm, "the policy does not pass corsproc's validation (corsproc would refuse it):\n%s", rename(err.Error()))
		return
	}
	for _, w := range set.Warnings() {
		r.add(cm, "policy warning (corsproc check --strict fails on it): %s", rename(w.String()))
	}
}

func checkService(r *report, o *object, ps []*pod) {
	svc := as[*corev1.Service](o)
	if len(svc.Spec.Selector) == 0 {
		r.add(o, "no selector")
		return
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	targets := selected(ps, svc.Namespace, sel)
	if len(targets) == 0 {
		r.add(o, "selector %s selects no pod of the overlay in namespace %q: the Service would have no endpoints", sel, svc.Namespace)
		return
	}
	for _, sp := range svc.Spec.Ports {
		tp := sp.TargetPort
		if tp.Type == intstr.Int && tp.IntVal == 0 {
			tp = intstr.FromInt32(sp.Port)
		}
		for _, p := range targets {
			var cp *corev1.ContainerPort
			var cname string
			for _, c := range p.longRunning() {
				if cp = containerPort(c, tp); cp != nil {
					cname = c.Name
					break
				}
			}
			if cp == nil {
				r.add(o, "port %q (%d): targetPort %s is not a port of any container of %s", sp.Name, sp.Port, tp.String(), p.owner)
				continue
			}
			if cname == corsprocContainer && cp.Name == grpcPortName && (sp.AppProtocol == nil || *sp.AppProtocol != "grpc") {
				r.add(o, "port %q leads to corsproc's gRPC port: set appProtocol: grpc, so that meshes and gateways speak HTTP/2 to it", sp.Name)
			}
		}
	}
}

func checkPDB(r *report, o *object, ps []*pod) {
	pdb := as[*policyv1.PodDisruptionBudget](o)
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() {
		r.add(o, "spec.selector is empty or invalid (%v): it would cover every pod of the namespace", err)
		return
	}
	targets := selected(ps, pdb.Namespace, sel)
	if len(targets) == 0 {
		r.add(o, "selector %s selects no pod of the overlay in namespace %q", sel, pdb.Namespace)
	}
	for _, p := range targets {
		if mu := pdb.Spec.MaxUnavailable; mu != nil && mu.Type == intstr.Int && mu.IntVal < 1 {
			r.add(o, "maxUnavailable %d blocks every eviction of %s: node drains would hang", mu.IntVal, p.owner)
		}
		if ma := pdb.Spec.MinAvailable; ma != nil && ma.Type == intstr.Int && ma.IntVal >= p.replicas {
			r.add(o, "minAvailable %d with %d replicas of %s blocks every eviction", ma.IntVal, p.replicas, p.owner)
		}
	}
}

// goMemLimit parses a GOMEMLIMIT value (a byte count with an optional B,
// KiB, MiB, GiB or TiB suffix) as a Kubernetes quantity.
func goMemLimit(v string) (resource.Quantity, error) {
	q := strings.TrimSuffix(v, "B") // 200MiB -> 200Mi, 1024B -> 1024
	if strings.HasSuffix(q, "i") && !strings.HasSuffix(q, "Ki") && !strings.HasSuffix(q, "Mi") && !strings.HasSuffix(q, "Gi") && !strings.HasSuffix(q, "Ti") {
		return resource.Quantity{}, fmt.Errorf("bad unit")
	}
	return resource.ParseQuantity(q)
}
