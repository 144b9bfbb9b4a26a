package k8s_test

// Envoy configuration inside the manifests: the bootstraps of the Envoy
// Deployments (derived copies of envoy/envoy.yaml, which must stay that file
// with only their addresses changed) and the HTTP filter inside Istio's
// EnvoyFilters. Both are parsed strictly against Envoy's v3 API from
// go-control-plane and run through Envoy's validation rules
// (protoc-gen-validate's ValidateAll), as envoy/configs_test.go does for
// envoy/*.yaml, through the same envoy/configcheck helpers.

import (
	"fmt"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/corsproc/corsproc/envoy/configcheck"

	// Types that appear only inside typed_config of envoy/envoy.yaml.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

const (
	// The shipped bootstrap the Envoy Deployments run a copy of.
	envoyYAML         = "../envoy/envoy.yaml"
	corsprocCluster   = "corsproc"
	appCluster        = "app"
	extProcFilterName = "corsproc.ext_proc" // in Istio's EnvoyFilters: not Istio's own envoy.filters.http.ext_proc (docs/istio.md)
	hcmFilterName     = "envoy.filters.network.http_connection_manager"
)

// checkEnvoyContainer checks an Envoy container: its bootstrap comes from a
// ConfigMap that is envoy/envoy.yaml with only the corsproc and app
// clusters' addresses changed, the corsproc cluster reaches a corsproc of the
// overlay, and its listeners are container ports.
func checkEnvoyContainer(r *report, objs []*object, ps []*pod, p *pod, c *corev1.Container) {
	o := p.owner
	where := fmt.Sprintf("container %q", c.Name)
	cfgPath := envoyConfigPath(c)
	if !slices.Contains(slices.Concat(c.Command, c.Args), "--concurrency") {
		r.add(o, "%s: no --concurrency: Envoy would start one worker per CPU of the node, whatever its CPU limit", where)
	}
	if cfgPath == "" {
		r.add(o, "%s: no --config-path", where)
		return
	}
	vol := mountFor(c, cfgPath)
	v := p.volume(vol)
	if v == nil || v.ConfigMap == nil {
		r.add(o, "%s: --config-path %s is not in a mounted ConfigMap", where, cfgPath)
		return
	}
	cm := find(objs, "ConfigMap", p.namespace, v.ConfigMap.Name)
	if cm == nil {
		return // reported by checkContainer
	}
	key := path.Base(cfgPath)
	data, ok := configMapData(cm)[key]
	if !ok {
		r.add(cm, "no key %q, which %s of %s loads as its bootstrap", key, where, o)
		return
	}
	bs, err := loadBootstrap([]byte(data))
	if err != nil {
		r.add(cm, "key %q is not a valid Envoy bootstrap: %v", key, err)
		return
	}
	orig, err := os.ReadFile(envoyYAML)
	if err != nil {
		r.add(cm, "%v", err)
		return
	}
	want, err := loadBootstrap(orig)
	if err != nil {
		r.add(cm, "%s is not a valid Envoy bootstrap (envoy/configs_test.go says more): %v", envoyYAML, err)
		return
	}

	// Compare with envoy/envoy.yaml, the two clusters' addresses and the
	// k8s additions (platform_test.go, k8sEnvoyAdditions) aside.
	got := proto.Clone(bs).(*bootstrapv3.Bootstrap)
	k8sEnvoyAdditions(got)
	for _, name := range []string{corsprocCluster, appCluster} {
		g, w := clusterByName(got, name), clusterByName(want, name)
		if g == nil || w == nil {
			r.add(cm, "key %q: no cluster %q (envoy/envoy.yaml has it)", key, name)
			return
		}
		g.ClusterDiscoveryType, g.LoadAssignment = w.ClusterDiscoveryType, w.LoadAssignment
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		r.add(cm, "key %q differs from envoy/envoy.yaml in more than the corsproc and app clusters' addresses (-envoy/envoy.yaml +%s):\n%s", key, key, diff)
	}

	// The corsproc cluster reaches a corsproc of the overlay.
	cl := clusterByName(bs, corsprocCluster)
	eps := cl.GetLoadAssignment().GetEndpoints()
	if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		r.add(cm, "key %q: the corsproc cluster must have exactly one endpoint (a Service name or a socket)", key)
		return
	}
	addr := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()
	switch {
	case addr.GetPipe() != nil:
		sock := addr.GetPipe().GetPath()
		if cl.GetType() != clusterv3.Cluster_STATIC {
			r.add(cm, "key %q: the corsproc cluster has a pipe address, so its type must be STATIC, not %v", key, cl.GetType())
		}
		cp := p.container(corsprocContainer)
		if cp == nil {
			r.add(o, "Envoy's corsproc cluster is the socket %s, but the pod has no corsproc container to listen on it", sock)
			return
		}
		if listen := flagValue(cp, "listen"); listen != "unix://"+sock {
			r.add(o, "Envoy's corsproc cluster is the socket %s (%s), but corsproc listens on --listen %q", sock, cm, listen)
		}
		if mountFor(c, sock) == "" || mountFor(c, sock) != mountFor(cp, sock) {
			r.add(o, "%s: the socket %s is not in a volume mounted by both Envoy and corsproc", where, sock)
		}
	case addr.GetSocketAddress() != nil:
		sa := addr.GetSocketAddress()
		if cl.GetType() != clusterv3.Cluster_STRICT_DNS {
			r.add(cm, "key %q: the corsproc cluster must be STRICT_DNS to follow the Service's pods, not %v", key, cl.GetType())
		}
		checkServiceAddress(r, cm, objs, ps, p.namespace, sa.GetAddress(), sa.GetPortValue(), "Envoy's corsproc cluster", true)
	default:
		r.add(cm, "key %q: the corsproc cluster's address is neither a socket address nor a pipe", key)
	}

	// Envoy's listeners are declared ports of the container.
	for _, l := range bs.GetStaticResources().GetListeners() {
		port := l.GetAddress().GetSocketAddress().GetPortValue()
		if containerPort(c, intstr.FromInt32(int32(port))) == nil {
			r.add(o, "%s: Envoy listens on %d (listener %q of %s), which is not a port of the container (its ports: %s)", where, port, l.GetName(), cm, portList(c))
		}
	}
}

// checkServiceAddress checks that host:port, as a client in namespace ns
// resolves it, is a Service of the overlay whose port leads to corsproc's
// gRPC port. headless asks for a headless Service (a DNS-resolving client
// must see every pod).
func checkServiceAddress(r *report, from *object, objs []*object, ps []*pod, ns, host string, port uint32, what string, headless bool) {
	name, svcNS := host, ns
	if parts := strings.Split(strings.TrimSuffix(host, ".svc.cluster.local"), "."); len(parts) == 2 {
		name, svcNS = parts[0], parts[1]
	} else if len(parts) != 1 || net.ParseIP(host) != nil {
		r.add(from, "%s points at %q: want a Service name, <name> or <name>.<namespace>.svc.cluster.local", what, host)
		return
	}
	so := find(objs, "Service", svcNS, name)
	if so == nil {
		r.add(from, "%s points at %s:%d, but the overlay has no Service %q in namespace %q", what, host, port, name, svcNS)
		return
	}
	svc := as[*corev1.Service](so)
	if svc == nil {
		return
	}
	if headless && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		r.add(from, "%s resolves Service %s/%s by DNS, which gives its one virtual IP: kube-proxy then pins each of Envoy's few HTTP/2 connections to one pod. Use a headless Service (clusterIP: None)", what, svcNS, name)
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if uint32(svc.Spec.Ports[i].Port) == port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		r.add(from, "%s uses port %d, but Service %s/%s has no such port", what, port, svcNS, name)
		return
	}
	tp := sp.TargetPort
	if tp.Type == intstr.Int && tp.IntVal == 0 {
		tp = intstr.FromInt32(sp.Port)
	}
	for _, p := range selected(ps, svcNS, labels.SelectorFromSet(svc.Spec.Selector)) {
		c := p.container(corsprocContainer)
		if c == nil {
			r.add(from, "%s reaches Service %s/%s, which selects %s, where no corsproc runs", what, svcNS, name, p.owner)
			return
		}
		if cp := containerPort(c, tp); cp == nil || cp.Name != grpcPortName {
			r.add(from, "%s uses port %d of Service %s/%s, whose targetPort %s does not lead to corsproc's %q port in %s", what, port, svcNS, name, tp.String(), grpcPortName, p.owner)
			return
		}
	}
	if sp.AppProtocol == nil || *sp.AppProtocol != "grpc" {
		r.add(so, "port %d carries ext_proc (gRPC) for %s: set appProtocol: grpc", port, what)
	}
}

// flagValue returns the value of --name among a container's arguments.
func flagValue(c *corev1.Container, name string) string {
	args := slices.Concat(c.Command, c.Args)
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func clusterByName(bs *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// loadBootstrap parses an Envoy bootstrap strictly and validates it.
// envoyConfigPath returns the bootstrap file an Envoy container runs (its
// last -c or --config-path), or "".
func envoyConfigPath(c *corev1.Container) string {
	args := slices.Concat(c.Command, c.Args)
	cfgPath := ""
	for i, a := range args {
		if (a == "-c" || a == "--config-path") && i+1 < len(args) {
			cfgPath = args[i+1]
		}
	}
	return cfgPath
}

func loadBootstrap(data []byte) (*bootstrapv3.Bootstrap, error) {
	bs := new(bootstrapv3.Bootstrap)
	if err := configcheck.UnmarshalYAML(data, bs); err != nil {
		return nil, err
	}
	if _, err := configcheck.ValidateTree(bs); err != nil {
		return nil, err
	}
	return bs, nil
}

// checkHTTPFilter parses the value of an EnvoyFilter patch as an Envoy
// HttpFilter, strictly, validates it, and checks the ext_proc configuration
// corsproc needs. It returns the filter, or nil.
func checkHTTPFilter(r *report, o *object, where string, value []byte) *hcmv3.HttpFilter {
	f := new(hcmv3.HttpFilter)
	if err := (protojson.UnmarshalOptions{}).Unmarshal(value, f); err != nil {
		r.add(o, "%s: not a valid Envoy HttpFilter: %v", where, err)
		return nil
	}
	if _, err := configcheck.ValidateTree(f); err != nil {
		r.add(o, "%s: Envoy would refuse this HttpFilter: %v", where, err)
		return nil
	}
	if f.GetName() != extProcFilterName {
		r.add(o, "%s: filter name %q, want %q (the name per-route configs and the opt-out use)", where, f.GetName(), extProcFilterName)
	}
	ep := new(extprocfilterv3.ExternalProcessor)
	if err := f.GetTypedConfig().UnmarshalTo(ep); err != nil {
		r.add(o, "%s: typed_config is %s, want an ExternalProcessor", where, f.GetTypedConfig().GetTypeUrl())
		return nil
	}
	for _, e := range configcheck.ExternalProcessorErrors(ep) {
		r.add(o, "%s: %v", where, e)
	}
	return f
}

// parseIstioCluster splits an Istio cluster name
// outbound|<port>|<subset>|<host>.
func parseIstioCluster(name string) (port uint32, host string, err error) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || parts[0] != "outbound" {
		return 0, "", fmt.Errorf("%q is not an Istio outbound cluster name, outbound|<port>||<service>.<namespace>.svc.cluster.local", name)
	}
	n, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return 0, "", fmt.Errorf("%q: port %q: %v", name, parts[1], err)
	}
	if parts[2] != "" {
		return 0, "", fmt.Errorf("%q names the subset %q: corsproc has no DestinationRule subsets", name, parts[2])
	}
	if !strings.HasSuffix(parts[3], ".svc.cluster.local") {
		return 0, "", fmt.Errorf("%q: the host must be the Service's full name, <service>.<namespace>.svc.cluster.local", name)
	}
	return uint32(n), parts[3], nil
}

// extProcOf returns the ExternalProcessor in a typed_config, or nil.
func extProcOf(a *anypb.Any) *extprocfilterv3.ExternalProcessor {
	ep := new(extprocfilterv3.ExternalProcessor)
	if err := a.UnmarshalTo(ep); err != nil {
		return nil
	}
	return ep
}
