package envoy_test

// The Envoy bootstrap configs in this directory are documentation users copy
// into production, and no Envoy binary runs in CI. This test stands in for
// `envoy --mode validate`: it parses every *.yaml here strictly against
// Envoy's v3 API as published in go-control-plane, runs the protoc-gen-validate
// rules on the bootstrap and on the content of every typed_config, refuses
// deprecated fields, and then checks the promises the configs and docs make
// about corsproc's wiring. It also parses the Envoy snippets of README.md and
// docs/envoy.md and docs/security.md that are marked with an envoy-type
// comment.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matchingv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	skipv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/matcher/action/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/corsproc/corsproc/envoy/configcheck"
	"github.com/corsproc/corsproc/envoy/emulator"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"

	// Types that appear only inside typed_config and are not imported above
	// for assertions must still be linked in, or their "@type" cannot be
	// resolved. Add the package of every new extension type here.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Names the configs must use. The policy metadata key is
// configcheck.MetadataPolicy and the route attribute
// configcheck.AttributeRoute, which configcheck.ExternalProcessorErrors
// requires.
const (
	extProcFilterName = "envoy.filters.http.ext_proc"
	routerFilterName  = "envoy.filters.http.router"
	// headerMutationFilterName writes corsproc's headers from the dynamic
	// metadata in single-message mode.
	headerMutationFilterName = "envoy.filters.http.header_mutation"
	http2OptionsKey          = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// Limits of corsproc's gRPC server (processor/grpcoptions.go) the corsproc
// cluster must respect.
const (
	// corsprocPingMinTime: grpc-go closes a connection whose client pings
	// more often than this (GOAWAY too_many_pings).
	corsprocPingMinTime = 10 * time.Second
	// corsprocMaxStreams: streams corsproc accepts on one connection.
	corsprocMaxStreams = 1000
)

// configs lists the configs this directory must hold and what each promises.
// Any other *.yaml gets the common checks, and the origin-only checks if its
// ext_proc filter is wrapped in a matcher.
var configs = map[string]struct{ originOnly, singleMessage bool }{
	"envoy.yaml":                {originOnly: false},
	"envoy-origin-only.yaml":    {originOnly: true},
	"envoy-single-message.yaml": {originOnly: true, singleMessage: true},
}

func TestConfigs(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no *.yaml in envoy/: the example configs are missing")
	}
	for name := range configs {
		if !slices.Contains(files, name) {
			t.Errorf("%s is missing", name)
		}
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			bs, err := loadBootstrap(file)
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := configcheck.ValidateTree(bs)
			if err != nil {
				t.Fatal(err)
			}
			checkAdmin(t, bs)
			checkPolicyNames(t, nodes)
			hcms := collect[*hcmv3.HttpConnectionManager](nodes)
			if len(hcms) == 0 {
				t.Fatal("no HttpConnectionManager")
			}
			for _, hcm := range hcms {
				wrapped := checkHTTPConnectionManager(t, bs, hcm)
				want, known := configs[file]
				if known && want.originOnly != wrapped {
					t.Errorf("ext_proc wrapped in ExtensionWithMatcher = %v, want %v", wrapped, want.originOnly)
				}
				single := checkSingleMessage(t, hcm)
				if known && want.singleMessage != single {
					t.Errorf("single-message mode = %v, want %v", single, want.singleMessage)
				}
				if wrapped {
					checkOriginOnlyRoutes(t, hcm)
				}
			}
		})
	}
}

// shippedPolicies are the policy files deployed with these configs.
var shippedPolicies = []string{"../k8s/base/policy.yaml", "../k8s/prod/policy.yaml"}

// checkPolicyNames checks that every x-corsproc-policy the config sends
// names a policy of each shipped policy file: another name is an unknown
// policy, on whose route corsproc refuses all CORS.
func checkPolicyNames(t *testing.T, nodes []configcheck.Node) {
	t.Helper()
	bindings := configcheck.PolicyBindings(nodes)
	for _, file := range shippedPolicies {
		set, err := policyfile.Load(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, err := range configcheck.UnknownPolicyErrors(bindings, set.Names()) {
			t.Errorf("%s: %v", file, err)
		}
	}
}

// loadBootstrap reads a YAML bootstrap the way Envoy does (YAML to JSON, then
// the proto3 JSON mapping), but strictly: an unknown field or an "@type" that
// names no linked message is an error.
func loadBootstrap(file string) (*bootstrapv3.Bootstrap, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	bs := new(bootstrapv3.Bootstrap)
	if err := configcheck.UnmarshalYAML(data, bs); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return bs, nil
}

// collect returns the messages of type T among nodes.
func collect[T proto.Message](nodes []configcheck.Node) []T {
	var out []T
	for _, n := range nodes {
		if m, ok := n.Msg.(T); ok {
			out = append(out, m)
		}
	}
	return out
}

func checkAdmin(t *testing.T, bs *bootstrapv3.Bootstrap) {
	t.Helper()
	if bs.GetAdmin() == nil {
		return
	}
	sa := bs.GetAdmin().GetAddress().GetSocketAddress()
	if sa == nil {
		return // a pipe: local by construction
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if sa.GetAddress() != "localhost" && (err != nil || !ip.IsLoopback()) {
		t.Errorf("admin listens on %q: Envoy's admin interface can drain and quit Envoy; bind it to a loopback address", sa.GetAddress())
	}
}

// checkHTTPConnectionManager checks the filter chain, the corsproc cluster
// and the routes of one HTTP connection manager. It reports whether the
// ext_proc filter is wrapped in an ExtensionWithMatcher.
func checkHTTPConnectionManager(t *testing.T, bs *bootstrapv3.Bootstrap, hcm *hcmv3.HttpConnectionManager) (wrapped bool) {
	t.Helper()
	filters := hcm.GetHttpFilters()
	if len(filters) < 2 {
		t.Fatalf("http_filters has %d filters, want ext_proc first and the router last", len(filters))
	}
	first, last := filters[0], filters[len(filters)-1]
	if first.GetName() != extProcFilterName {
		t.Errorf("first HTTP filter is %q, want %q: corsproc must answer preflights before auth filters reject them", first.GetName(), extProcFilterName)
	}
	if last.GetName() != routerFilterName || !isType[*routerv3.Router](t, last.GetTypedConfig()) {
		t.Errorf("last HTTP filter is %q, want the router", last.GetName())
	}
	for _, f := range filters[1:] {
		if f.GetName() == headerMutationFilterName && f != filters[1] {
			t.Errorf("%s is not directly after ext_proc: an authentication filter between them would see the response after it", headerMutationFilterName)
		}
		if f.GetName() == extProcFilterName {
			t.Errorf("a second HTTP filter is named %q: per-route configs would be ambiguous", extProcFilterName)
		}
	}

	var ep *extprocfilterv3.ExternalProcessor
	cfg := unpack(t, first.GetTypedConfig())
	switch c := cfg.(type) {
	case *extprocfilterv3.ExternalProcessor:
		ep = c
	case *matchingv3.ExtensionWithMatcher:
		wrapped = true
		checkOriginMatcher(t, c)
		inner, ok := unpack(t, c.GetExtensionConfig().GetTypedConfig()).(*extprocfilterv3.ExternalProcessor)
		if !ok {
			t.Fatalf("ExtensionWithMatcher wraps %s, want an ExternalProcessor", c.GetExtensionConfig().GetTypedConfig().GetTypeUrl())
		}
		ep = inner
	default:
		t.Fatalf("first HTTP filter is a %T, want an ExternalProcessor (or one wrapped in ExtensionWithMatcher)", cfg)
	}

	checkExternalProcessor(t, ep)
	checkCorsprocCluster(t, bs, ep.GetGrpcService().GetEnvoyGrpc().GetClusterName())
	checkRoutes(t, bs, hcm, first.GetName())
	return wrapped
}

func checkExternalProcessor(t *testing.T, ep *extprocfilterv3.ExternalProcessor) {
	t.Helper()
	for _, err := range configcheck.ExternalProcessorErrors(ep) {
		t.Error(err)
	}
}

func checkCorsprocCluster(t *testing.T, bs *bootstrapv3.Bootstrap, name string) {
	t.Helper()
	c := findCluster(bs, name)
	if c == nil {
		t.Errorf("ext_proc names cluster %q, which static_resources does not define", name)
		return
	}
	if c.GetConnectTimeout() == nil {
		t.Errorf("cluster %q: set connect_timeout", name)
	}
	opts := c.GetTypedExtensionProtocolOptions()[http2OptionsKey]
	if opts == nil {
		t.Errorf("cluster %q: typed_extension_protocol_options[%q] must select HTTP/2: ext_proc is gRPC", name, http2OptionsKey)
		return
	}
	hpo, ok := unpack(t, opts).(*upstreamhttpv3.HttpProtocolOptions)
	if !ok {
		t.Errorf("cluster %q: typed_extension_protocol_options[%q] is a %s", name, http2OptionsKey, opts.GetTypeUrl())
		return
	}
	h2 := hpo.GetExplicitHttpConfig().GetHttp2ProtocolOptions()
	if h2 == nil {
		t.Errorf("cluster %q: want explicit_http_config.http2_protocol_options", name)
		return
	}
	ka := h2.GetConnectionKeepalive()
	switch {
	case ka.GetInterval() == nil || ka.GetTimeout() == nil:
		t.Errorf("cluster %q: http2_protocol_options.connection_keepalive needs interval and timeout, so a dead corsproc is found before requests stall on it", name)
	case ka.GetInterval().AsDuration() < corsprocPingMinTime:
		t.Errorf("cluster %q: keepalive interval %v is below corsproc's minimum of %v; grpc-go would close the connection (too_many_pings)", name, ka.GetInterval().AsDuration(), corsprocPingMinTime)
	}
	if idle := ka.GetConnectionIdleInterval(); idle != nil && idle.AsDuration() < corsprocPingMinTime {
		t.Errorf("cluster %q: keepalive connection_idle_interval %v is below corsproc's ping minimum of %v", name, idle.AsDuration(), corsprocPingMinTime)
	}
	if n := h2.GetMaxConcurrentStreams(); n != nil && n.GetValue() > corsprocMaxStreams {
		t.Errorf("cluster %q: max_concurrent_streams %d exceeds the %d corsproc accepts per connection", name, n.GetValue(), corsprocMaxStreams)
	}
}

func findCluster(bs *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// checkRoutes checks the promises about route names and per-route bindings.
func checkRoutes(t *testing.T, bs *bootstrapv3.Bootstrap, hcm *hcmv3.HttpConnectionManager, filterName string) {
	t.Helper()
	rc := hcm.GetRouteConfig()
	if rc == nil {
		t.Fatal("the example configs use a static route_config")
	}
	names := map[string]bool{}
	bound := 0
	for _, vh := range rc.GetVirtualHosts() {
		if policy := checkPerFilterConfig(t, "virtual host "+vh.GetName(), vh.GetTypedPerFilterConfig(), filterName); policy != "" {
			bound++
		}
		for i, r := range vh.GetRoutes() {
			where := fmt.Sprintf("virtual host %s, route %d %q", vh.GetName(), i, r.GetName())
			if r.GetName() != "" {
				if names[r.GetName()] {
					t.Errorf("%s: duplicate route name: xds.route_name would not tell the routes apart", where)
				}
				names[r.GetName()] = true
			}
			if c := r.GetRoute().GetCluster(); c != "" && findCluster(bs, c) == nil {
				t.Errorf("%s: cluster %q is not defined", where, c)
			}
			if policy := checkPerFilterConfig(t, where, r.GetTypedPerFilterConfig(), filterName); policy != "" {
				bound++
			}
		}
	}
	if len(names) < 2 {
		t.Errorf("%d named routes, want at least 2: the configs show policies selected by route name", len(names))
	}
	if bound == 0 {
		t.Errorf("no route binds a policy with ExtProcPerRoute grpc_initial_metadata %s", configcheck.MetadataPolicy)
	}
}

// checkPerFilterConfig checks a typed_per_filter_config map: an
// ExtProcPerRoute must be keyed by the ext_proc filter's name in
// http_filters, or Envoy never applies it. It returns the policy the entry
// binds with x-corsproc-policy, if any.
func checkPerFilterConfig(t *testing.T, where string, m map[string]*anypb.Any, filterName string) (policy string) {
	t.Helper()
	for key, a := range m {
		per, ok := unpack(t, a).(*extprocfilterv3.ExtProcPerRoute)
		if !ok {
			continue
		}
		if key != filterName {
			t.Errorf("%s: ExtProcPerRoute keyed %q, but the ext_proc filter is named %q", where, key, filterName)
		}
		for _, md := range per.GetOverrides().GetGrpcInitialMetadata() {
			if md.GetKey() != configcheck.MetadataPolicy {
				continue
			}
			if md.GetValue() == "" {
				t.Errorf("%s: %s with an empty value", where, configcheck.MetadataPolicy)
			}
			if policy != "" {
				t.Errorf("%s: %s given twice; corsproc treats several values as an unknown policy", where, configcheck.MetadataPolicy)
			}
			policy = md.GetValue()
		}
	}
	return policy
}

// externalProcessor returns the HCM's ext_proc filter config, unwrapped
// from its ExtensionWithMatcher.
func externalProcessor(t *testing.T, hcm *hcmv3.HttpConnectionManager) *extprocfilterv3.ExternalProcessor {
	t.Helper()
	switch c := unpack(t, hcm.GetHttpFilters()[0].GetTypedConfig()).(type) {
	case *extprocfilterv3.ExternalProcessor:
		return c
	case *matchingv3.ExtensionWithMatcher:
		if ep, ok := unpack(t, c.GetExtensionConfig().GetTypedConfig()).(*extprocfilterv3.ExternalProcessor); ok {
			return ep
		}
	}
	t.Fatal("no ExternalProcessor first in http_filters")
	return nil
}

// headerMutation returns the header_mutation filter directly after ext_proc,
// or nil.
func headerMutation(t *testing.T, hcm *hcmv3.HttpConnectionManager) *headermutationv3.HeaderMutation {
	t.Helper()
	fs := hcm.GetHttpFilters()
	if len(fs) < 2 || fs[1].GetName() != headerMutationFilterName {
		return nil
	}
	hm, ok := unpack(t, fs[1].GetTypedConfig()).(*headermutationv3.HeaderMutation)
	if !ok {
		t.Fatalf("%s is a %s", headerMutationFilterName, fs[1].GetTypedConfig().GetTypeUrl())
	}
	return hm
}

// checkSingleMessage reports whether the HCM runs corsproc in single-message
// mode, and checks the mode's wiring when it declares the mode or has the
// header_mutation filter, either of which without the other loses every
// CORS header (docs/envoy.md, "Single-message mode").
func checkSingleMessage(t *testing.T, hcm *hcmv3.HttpConnectionManager) bool {
	t.Helper()
	ep := externalProcessor(t, hcm)
	hm := headerMutation(t, hcm)
	declared := configcheck.DeclaredResponseMode(ep)
	if len(declared) == 0 && hm == nil {
		return false
	}
	for _, err := range configcheck.SingleMessageErrors(ep, hm) {
		t.Error(err)
	}
	return true
}

// checkOriginOnlyRoutes checks that every route's responses get
// `Vary: Origin` from Envoy, appended to the upstream's Vary, since corsproc
// does not see the requests without Origin.
func checkOriginOnlyRoutes(t *testing.T, hcm *hcmv3.HttpConnectionManager) {
	t.Helper()
	rc := hcm.GetRouteConfig()
	for _, vh := range rc.GetVirtualHosts() {
		for i, r := range vh.GetRoutes() {
			var opts []*corev3.HeaderValueOption
			opts = append(opts, r.GetResponseHeadersToAdd()...)
			opts = append(opts, vh.GetResponseHeadersToAdd()...)
			opts = append(opts, rc.GetResponseHeadersToAdd()...)
			if !addsVaryOrigin(opts) {
				t.Errorf("virtual host %s, route %d %q: responses do not get Vary: Origin with append_action APPEND_IF_EXISTS_OR_ADD (on the route, its virtual host or the route configuration); requests without Origin skip corsproc, so Envoy must add it",
					vh.GetName(), i, r.GetName())
			}
		}
	}
}

func addsVaryOrigin(opts []*corev3.HeaderValueOption) bool {
	for _, o := range opts {
		if !strings.EqualFold(o.GetHeader().GetKey(), "vary") ||
			o.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
			continue
		}
		for name := range strings.SplitSeq(o.GetHeader().GetValue(), ",") {
			if strings.EqualFold(strings.TrimSpace(name), "origin") {
				return true
			}
		}
	}
	return false
}

// checkOriginMatcher checks that the matcher wrapping ext_proc skips the
// filter exactly for requests without an Origin header.
func checkOriginMatcher(t *testing.T, ewm *matchingv3.ExtensionWithMatcher) {
	t.Helper()
	if ewm.GetExtensionConfig().GetName() != extProcFilterName {
		t.Errorf("ExtensionWithMatcher extension_config.name = %q, want %q", ewm.GetExtensionConfig().GetName(), extProcFilterName)
	}
	m := ewm.GetXdsMatcher()
	if m == nil {
		t.Fatal("ExtensionWithMatcher needs xds_matcher (matcher is deprecated)")
	}
	cases := []struct {
		name    string
		headers map[string][]string
		skip    bool
	}{
		{"no headers", nil, true},
		{"no origin", map[string][]string{"referer": {"https://app.example.com/"}, ":method": {"GET"}}, true},
		{"origin", map[string][]string{"origin": {"https://app.example.com"}}, false},
		{"preflight", map[string][]string{"origin": {"http://localhost:3000"}, ":method": {"OPTIONS"}, "access-control-request-method": {"PUT"}}, false},
		{"opaque origin", map[string][]string{"origin": {"null"}}, false},
		{"empty origin", map[string][]string{"origin": {""}}, false},
		{"two origins", map[string][]string{"origin": {"https://a.example", "https://b.example"}}, false},
	}
	for _, c := range cases {
		action, err := evalMatcher(m, c.headers)
		if err != nil {
			t.Fatalf("xds_matcher: %v", err)
		}
		skip := false
		if action != nil {
			a, err := action.GetTypedConfig().UnmarshalNew()
			if err != nil {
				t.Fatalf("xds_matcher action %q: %v", action.GetName(), err)
			}
			if _, ok := a.(*skipv3.SkipFilter); !ok {
				t.Fatalf("xds_matcher action %q is a %T; ExtensionWithMatcher only knows SkipFilter", action.GetName(), a)
			}
			skip = true
		}
		if skip != c.skip {
			t.Errorf("xds_matcher on a request with %s (%v): skip = %v, want %v", c.name, c.headers, skip, c.skip)
		}
	}
}

// evalMatcher evaluates an xDS matcher on request headers the way Envoy's
// unified matcher does, for the subset these configs use: matcher_list with
// single, not, and, or predicates on HttpRequestHeaderMatchInput, and string
// value matchers. Anything else is an error, so a config using it has to
// extend this evaluator (and its author has to learn Envoy's semantics of it)
// before the test passes. It returns the action selected, or nil.
func evalMatcher(m *xdsmatcherv3.Matcher, headers map[string][]string) (*xdscorev3.TypedExtensionConfig, error) {
	list := m.GetMatcherList()
	if list == nil {
		return nil, errors.New("only matcher_list is supported by this test")
	}
	for i, fm := range list.GetMatchers() {
		ok, err := evalPredicate(fm.GetPredicate(), headers)
		if err != nil {
			return nil, fmt.Errorf("matchers[%d]: %w", i, err)
		}
		if !ok {
			continue
		}
		if fm.GetOnMatch().GetKeepMatching() {
			return nil, fmt.Errorf("matchers[%d]: keep_matching is not supported by this test", i)
		}
		a, err := evalOnMatch(fm.GetOnMatch(), headers)
		if err != nil || a != nil {
			return a, err
		}
	}
	if m.GetOnNoMatch() != nil {
		return evalOnMatch(m.GetOnNoMatch(), headers)
	}
	return nil, nil
}

func evalOnMatch(om *xdsmatcherv3.Matcher_OnMatch, headers map[string][]string) (*xdscorev3.TypedExtensionConfig, error) {
	if a := om.GetAction(); a != nil {
		return a, nil
	}
	return evalMatcher(om.GetMatcher(), headers)
}

func evalPredicate(p *xdsmatcherv3.Matcher_MatcherList_Predicate, headers map[string][]string) (bool, error) {
	switch {
	case p.GetSinglePredicate() != nil:
		return evalSingle(p.GetSinglePredicate(), headers)
	case p.GetNotMatcher() != nil:
		ok, err := evalPredicate(p.GetNotMatcher(), headers)
		return !ok, err
	case p.GetAndMatcher() != nil:
		for _, q := range p.GetAndMatcher().GetPredicate() {
			if ok, err := evalPredicate(q, headers); err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case p.GetOrMatcher() != nil:
		for _, q := range p.GetOrMatcher().GetPredicate() {
			if ok, err := evalPredicate(q, headers); err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	}
	return false, errors.New("empty predicate")
}

func evalSingle(sp *xdsmatcherv3.Matcher_MatcherList_Predicate_SinglePredicate, headers map[string][]string) (bool, error) {
	in, err := sp.GetInput().GetTypedConfig().UnmarshalNew()
	if err != nil {
		return false, err
	}
	hin, ok := in.(*matcherv3.HttpRequestHeaderMatchInput)
	if !ok {
		return false, fmt.Errorf("input %T is not supported by this test", in)
	}
	// Envoy joins the values of a repeated header with commas; an absent
	// header gives no value at all, which no value matcher matches.
	values, present := headers[strings.ToLower(hin.GetHeaderName())]
	if !present {
		return false, nil
	}
	value := strings.Join(values, ",")
	sm := sp.GetValueMatch()
	if sm == nil {
		return false, errors.New("custom_match is not supported by this test")
	}
	return matchString(sm, value)
}

func matchString(sm *xdsmatcherv3.StringMatcher, s string) (bool, error) {
	fold := func(x string) string {
		if sm.GetIgnoreCase() {
			return strings.ToLower(x)
		}
		return x
	}
	switch p := sm.GetMatchPattern().(type) {
	case *xdsmatcherv3.StringMatcher_Exact:
		return fold(s) == fold(p.Exact), nil
	case *xdsmatcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(fold(s), fold(p.Prefix)), nil
	case *xdsmatcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(fold(s), fold(p.Suffix)), nil
	case *xdsmatcherv3.StringMatcher_Contains:
		return strings.Contains(fold(s), fold(p.Contains)), nil
	case *xdsmatcherv3.StringMatcher_SafeRegex:
		// Envoy's safe_regex must match the whole value (RE2 FullMatch);
		// Go's regexp is RE2 syntax.
		re, err := regexp.Compile(`^(?:` + p.SafeRegex.GetRegex() + `)$`)
		if err != nil {
			return false, err
		}
		return re.MatchString(s), nil
	}
	return false, fmt.Errorf("string matcher %T is not supported by this test", sm.GetMatchPattern())
}

// unpack returns the message in a, failing the test if its type is unknown.
func unpack(t *testing.T, a *anypb.Any) proto.Message {
	t.Helper()
	if a == nil {
		t.Fatal("typed_config missing")
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		t.Fatalf("%s: %v", a.GetTypeUrl(), err)
	}
	return m
}

func isType[T proto.Message](t *testing.T, a *anypb.Any) bool {
	t.Helper()
	_, ok := unpack(t, a).(T)
	return ok
}

// snippetMarker precedes a YAML code block in the docs that is a fragment of
// an Envoy config, naming the proto message the fragment belongs to:
//
//	<!-- envoy-type: envoy.config.route.v3.Route -->
//	```yaml
//	...
//	```
var snippetMarker = regexp.MustCompile("(?m)^<!-- envoy-type: ([A-Za-z0-9_.]+) -->\\s*\\n```ya?ml\\n((?s:.*?))^```")

// TestDocSnippets parses the marked Envoy snippets of the README,
// docs/envoy.md and docs/security.md strictly, validates every typed_config in them and refuses
// deprecated fields. The fragments themselves are not run through the
// validation rules of their message (a fragment leaves out required fields).
func TestDocSnippets(t *testing.T) {
	for _, doc := range []string{"../README.md", "../docs/envoy.md", "../docs/security.md"} {
		t.Run(filepath.Base(doc), func(t *testing.T) {
			data, err := os.ReadFile(doc)
			if err != nil {
				t.Fatal(err)
			}
			matches := snippetMarker.FindAllSubmatchIndex(data, -1)
			if len(matches) == 0 {
				t.Fatalf("%s: no Envoy snippet marked <!-- envoy-type: … --> before a yaml code block", doc)
			}
			for _, mi := range matches {
				typeName := string(data[mi[2]:mi[3]])
				body := data[mi[4]:mi[5]]
				line := 1 + strings.Count(string(data[:mi[0]]), "\n")
				mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typeName))
				if err != nil {
					t.Errorf("%s:%d: envoy-type %s: %v (link its package into this test)", doc, line, typeName, err)
					continue
				}
				m := mt.New().Interface()
				if err := configcheck.UnmarshalYAML(body, m); err != nil {
					t.Errorf("%s:%d: %s: %v", doc, line, typeName, err)
					continue
				}
				if _, err := configcheck.ValidateNested(m); err != nil {
					t.Errorf("%s:%d: %s: %v", doc, line, typeName, err)
				}
			}
		})
	}
}

// TestDocLocalReplyConfigAgreesWithPolicy checks the local_reply_config
// docs/envoy.md recommends for Envoy 1.33.1 to 1.36, where Envoy's own
// replies never reach corsproc: on every route of envoy.yaml, for hosts the
// README's example policy tells apart, a mapper that applies to an actual
// request must add exactly the CORS headers corsproc itself gives that
// request's origin there (run through the emulated Envoy with the policy),
// and no mapper may apply to a preflight, whose answer is corsproc's.
func TestDocLocalReplyConfigAgreesWithPolicy(t *testing.T) {
	mappers := docLocalReplyMappers(t)
	set, err := policyfile.Parse("README.md", readmePolicy(t))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := loadBootstrap("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := configcheck.ValidateTree(bs)
	if err != nil {
		t.Fatal(err)
	}
	hcms := collect[*hcmv3.HttpConnectionManager](nodes)
	if len(hcms) != 1 {
		t.Fatalf("%d HttpConnectionManagers in envoy.yaml, want 1", len(hcms))
	}
	routes, samples := emulatorRoutes(t, hcms[0])
	proxy := newPolicyProxy(t, set, routes)

	checked := 0
	for i, m := range mappers {
		origin := exactOrigin(t, m.GetFilter())
		for _, path := range samples {
			for _, host := range []string{"www.example.com", "api.example.com"} {
				where := fmt.Sprintf("mapper %d, %s%s, Origin %s", i, host, path, origin)
				req := map[string][]string{":path": {path}, ":method": {"GET"}, "origin": {origin}}
				applies, err := evalAccessLogFilter(m.GetFilter(), req)
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				preflight := map[string][]string{":path": {path}, ":method": {"OPTIONS"}, "origin": {origin},
					"access-control-request-method": {"PUT"}}
				if p, err := evalAccessLogFilter(m.GetFilter(), preflight); err != nil || p {
					t.Errorf("%s: the mapper applies to a preflight (%v): it would overwrite corsproc's answer", where, err)
				}
				if !applies {
					continue
				}
				checked++
				got := map[string]string{}
				for _, h := range m.GetHeadersToAdd() {
					got[strings.ToLower(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
				}
				want := corsprocHeaders(t, proxy, host, path, origin)
				for _, k := range []string{"access-control-allow-origin", "access-control-allow-credentials", "access-control-expose-headers"} {
					if got[k] != want.Get(k) {
						t.Errorf("%s: the mapper adds %s %q, corsproc gives %q", where, k, got[k], want.Get(k))
					}
				}
				if !strings.Contains(got["vary"], "Origin") || !strings.Contains(want.Get("vary"), "Origin") {
					t.Errorf("%s: Vary %q from the mapper, %q from corsproc: both must vary on Origin", where, got["vary"], want.Get("vary"))
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no mapper applies to a request on any route of envoy.yaml: nothing was compared")
	}
}

// docLocalReplyMappers returns the mappers of the local_reply_config snippet
// of docs/envoy.md.
func docLocalReplyMappers(t *testing.T) []*hcmv3.ResponseMapper {
	t.Helper()
	data, err := os.ReadFile("../docs/envoy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range snippetMarker.FindAllSubmatch(data, -1) {
		if string(m[1]) != "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" ||
			!strings.Contains(string(m[2]), "local_reply_config:") {
			continue
		}
		var hcm hcmv3.HttpConnectionManager
		if err := configcheck.UnmarshalYAML(m[2], &hcm); err != nil {
			t.Fatal(err)
		}
		if len(hcm.GetLocalReplyConfig().GetMappers()) == 0 {
			t.Fatal("docs/envoy.md: the local_reply_config snippet has no mapper")
		}
		return hcm.GetLocalReplyConfig().GetMappers()
	}
	t.Fatal("docs/envoy.md: no local_reply_config snippet")
	return nil
}

// readmePolicy returns the example policy file of the README: the first
// yaml block under "## A policy".
func readmePolicy(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "\n## A policy\n")
	if !ok {
		t.Fatal("README.md: no section \"A policy\"")
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README.md: no yaml block under \"A policy\"")
	}
	return []byte(block)
}

// emulatorRoutes turns the routes of the HCM's one virtual host into the
// emulator's, and returns a path each route matches (and no route before
// it does).
func emulatorRoutes(t *testing.T, hcm *hcmv3.HttpConnectionManager) ([]emulator.Route, []string) {
	t.Helper()
	vhs := hcm.GetRouteConfig().GetVirtualHosts()
	if len(vhs) != 1 {
		t.Fatalf("%d virtual hosts, want 1", len(vhs))
	}
	var routes []emulator.Route
	var samples []string
	for _, r := range vhs[0].GetRoutes() {
		er := emulator.Route{Name: r.GetName(), PathPrefix: r.GetMatch().GetPrefix(), Path: r.GetMatch().GetPath()}
		sample := er.Path
		if sample == "" {
			sample = er.PathPrefix + "sample"
		}
		if a, ok := r.GetTypedPerFilterConfig()[extProcFilterName]; ok {
			pr, ok := unpack(t, a).(*extprocfilterv3.ExtProcPerRoute)
			if !ok {
				t.Fatalf("route %s: %s is not an ExtProcPerRoute", r.GetName(), extProcFilterName)
			}
			er.ExtProcDisabled = pr.GetDisabled()
			for _, md := range pr.GetOverrides().GetGrpcInitialMetadata() {
				er.GRPCInitialMetadata = append(er.GRPCInitialMetadata, emulator.Metadata{Key: md.GetKey(), Value: md.GetValue()})
			}
		}
		routes = append(routes, er)
		samples = append(samples, sample)
	}
	return routes, samples
}

// newPolicyProxy is an emulated Envoy with envoy.yaml's filter settings and
// routes in front of corsproc enforcing set, and an upstream answering 200.
func newPolicyProxy(t *testing.T, set *policy.Set, routes []emulator.Route) *emulator.Proxy {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(up.Close)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, processor.New(set, processor.Options{}))
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p, err := emulator.New(emulator.Config{
		Upstream:          up.URL,
		Routes:            routes,
		AllowModeOverride: true,
		RequestAttributes: []string{emulator.AttributeRouteName},
		MessageTimeout:    10 * time.Second,
		FailureModeAllow:  false, // a corsproc failure must not pass for an answer
	}, conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

// corsprocHeaders returns the response headers corsproc gives a GET from
// origin to host and path.
func corsprocHeaders(t *testing.T, p *emulator.Proxy, host, path, origin string) http.Header {
	t.Helper()
	req := httptest.NewRequest("GET", "http://"+host+path, nil)
	req.Header.Set("Origin", origin)
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("GET %s%s: status %d", host, path, rec.Code)
	}
	return rec.Result().Header
}

// exactOrigin returns the origin a mapper's filter matches exactly.
func exactOrigin(t *testing.T, f *accesslogv3.AccessLogFilter) string {
	t.Helper()
	var hf []*accesslogv3.AccessLogFilter
	if af := f.GetAndFilter(); af != nil {
		hf = af.GetFilters()
	} else {
		hf = []*accesslogv3.AccessLogFilter{f}
	}
	for _, f := range hf {
		h := f.GetHeaderFilter().GetHeader()
		if h.GetName() == "origin" && !h.GetInvertMatch() && h.GetStringMatch().GetExact() != "" {
			return h.GetStringMatch().GetExact()
		}
	}
	t.Fatal("a local_reply_config mapper does not match one origin exactly: it would answer any origin")
	return ""
}

// evalAccessLogFilter evaluates the part of AccessLogFilter the documented
// mappers use (and_filter, header_filter with an exact or prefix
// string_match or present_match, invert_match) against request headers
// (lower-case keys, pseudo-headers included); anything else is an error.
func evalAccessLogFilter(f *accesslogv3.AccessLogFilter, req map[string][]string) (bool, error) {
	switch {
	case f.GetAndFilter() != nil:
		for _, sub := range f.GetAndFilter().GetFilters() {
			ok, err := evalAccessLogFilter(sub, req)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case f.GetHeaderFilter() != nil:
		h := f.GetHeaderFilter().GetHeader()
		vals, present := req[strings.ToLower(h.GetName())]
		var match bool
		switch {
		case h.GetPresentMatch():
			match = present
		case h.GetStringMatch().GetExact() != "":
			match = present && vals[0] == h.GetStringMatch().GetExact()
		case h.GetStringMatch().GetPrefix() != "":
			match = present && strings.HasPrefix(vals[0], h.GetStringMatch().GetPrefix())
		default:
			return false, fmt.Errorf("header_filter on %s: only exact, prefix and present_match are evaluated here", h.GetName())
		}
		return match != h.GetInvertMatch(), nil
	}
	return false, fmt.Errorf("filter %v: only and_filter and header_filter are evaluated here", f)
}
