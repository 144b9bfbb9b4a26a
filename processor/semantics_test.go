package processor

// Behaviour tables: one row per rule of docs/semantics.md, §2 to §8, each
// run as a whole ext_proc stream (request_headers,
// then response_headers unless corsproc answered itself) and checked on the
// exact Envoy responses and on the decision metric.

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsproc/corsproc/internal/testutil"
	"github.com/corsproc/corsproc/policy"
)

// semanticsYAML holds one policy per behaviour, selected by host.
const semanticsYAML = `
policies:
  - name: web
    match:
      hosts: [api.example.com]
    allowed_origins:
      - https://app.example.com
      - https://*.example.com
      - http://localhost:*
    allowed_origin_regexes:
      - https://[a-z0-9-]+\.example\.org
    allow_methods: [GET, POST, PUT, DELETE]
    allow_headers: [content-type, x-requested-with]
    expose_headers: [x-request-id]
    preflight_max_age: 600
  - name: creds
    match: {hosts: [creds.example.com]}
    allowed_origins: [https://app.example.com]
    allow_credentials: true
    expose_headers: [x-total, x-page]
  - name: public
    match: {hosts: [public.example.com]}
    allow_all_origins: true
    expose_headers: [x-total]
  - name: star
    match: {hosts: [star.example.com]}
    allowed_origins: [https://app.example.com]
    allow_methods: ["*"]
    allow_headers: ["*"]
    preflight_max_age: 0
    preflight_status: 200
  - name: fwd
    match: {hosts: [fwd.example.com]}
    allowed_origins: [https://app.example.com]
    unmatched_preflight: forward
  - name: pna
    match: {hosts: [pna.example.com]}
    allowed_origins: [https://app.example.com]
    allow_private_network: true
  - name: shadow
    match: {hosts: [shadow.example.com]}
    allowed_origins: [https://app.example.com]
    mode: shadow
`

// selectionYAML exercises docs/semantics.md, §2.
const selectionYAML = `
default_policy: fallback
policies:
  - name: by-route
    match: {routes: [storefront]}
    allowed_origins: [https://route.example.net]
  - name: by-host
    match: {hosts: [api.example.com, "*.shop.example.com"]}
    allowed_origins: [https://host.example.net]
  - name: by-path
    match: {path_prefixes: [/api/]}
    allowed_origins: [https://path.example.net]
  - name: by-regex
    match: {urls_regex: '/v[0-9]+/items'}
    allowed_origins: [https://regex.example.net]
  - name: named-only
    allowed_origins: [https://named.example.net]
  - name: fallback
    allowed_origins: [https://fallback.example.net]
`

// noDefaultYAML has no default policy: unmatched requests are ungoverned.
const noDefaultYAML = `
policies:
  - name: web
    match: {hosts: [api.example.com]}
    allowed_origins: [https://app.example.com]
`

// DCH defaults as the policies without explicit lists answer them.
const (
	dchMethods = "DELETE, GET, OPTIONS, PATCH, POST, PUT"
	dchHeaders = "accept, authorization, content-type, user-agent, x-csrftoken, x-requested-with"
)

// mustParse compiles a policy file for a test.
var mustParse = testutil.MustParse

// get is a browser request to host with the given Origin ("" for none).
func get(host, origin string, extra ...[2]string) envoyRequest {
	r := envoyRequest{Method: "GET", Authority: host, Path: "/api/items?page=2"}
	if origin != "" {
		r.Headers = append(r.Headers, [2]string{"origin", origin})
	}
	r.Headers = append(r.Headers, extra...)
	return r
}

// preflight is a browser preflight to host.
func preflight(host, origin, acrm string, extra ...[2]string) envoyRequest {
	r := envoyRequest{Method: "OPTIONS", Authority: host, Path: "/api/items"}
	r.Headers = append(r.Headers,
		[2]string{"origin", origin},
		[2]string{"access-control-request-method", acrm},
		[2]string{"sec-fetch-mode", "cors"})
	r.Headers = append(r.Headers, extra...)
	return r
}

func acrhH(v string) [2]string  { return [2]string{"access-control-request-headers", v} }
func acrpnH(v string) [2]string { return [2]string{"access-control-request-private-network", v} }

type semCase struct {
	name string
	md   []string // x-corsproc-policy metadata values; nil sends none
	req  envoyRequest
	want []reply
	// The one decision the stream records.
	policy, outcome, reason string
	shadow                  bool
}

// runSemCase runs c as one stream on a fresh server and checks it.
func runSemCase(t *testing.T, set *policy.Set, c semCase) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	srv := New(set, Options{Registerer: reg})
	recordStreamSeed(t, c.md, c.req.message(), defaultUpstream())
	fs := newFakeStream(t, c.md, c.req.message(), defaultUpstream())
	if err := srv.Process(fs); err != nil {
		t.Fatalf("Process: %v", err)
	}
	var got []reply
	for _, r := range fs.responses() {
		got = append(got, summarize(r))
	}
	if !reflect.DeepEqual(got, c.want) {
		t.Errorf("responses:\n got  %s\n want %s", fmtReplies(got), fmtReplies(c.want))
	}

	wantCounted(t, reg, c.policy, c.outcome, c.reason, c.shadow)
	// Every message answered was timed: the request_headers, and the
	// response_headers unless the request was answered immediately.
	for kind, n := range map[string]uint64{MessageRequestHeaders: 1, MessageResponseHeaders: uint64(len(got) - 1), MessageOther: 0} {
		if got := histogramCount(t, reg, kind); got != n {
			t.Errorf("%s{message=%q} count %d, want %d", MetricProcessing, kind, got, n)
		}
	}
}

// metricOutcomes maps the decision outcome (policy.Outcome names, as the
// cases spell them) to the outcome label of corsproc_requests_total: the
// same names, but for shadow mode.
var metricOutcomes = map[string]string{
	"preflight_allowed":   OutcomePreflightAllowed,
	"preflight_rejected":  OutcomePreflightRejected,
	"preflight_forwarded": OutcomePreflightForwarded,
	"allowed":             OutcomeAllowed,
	"disallowed_origin":   OutcomeDisallowedOrigin,
	"non_cors":            OutcomeNonCORS,
	"ungoverned":          OutcomeUngoverned,
	"unknown_policy":      OutcomeUnknownPolicy,
}

// refusals are the decision outcomes that refuse the request.
var refusals = map[string]bool{"preflight_rejected": true, "preflight_forwarded": true, "disallowed_origin": true}

// wantCounted checks that reg counted exactly one request, the decision
// (pol, outcome, reason, shadow), in corsproc_requests_total and, for a
// refusal, in corsproc_rejections_total.
func wantCounted(t *testing.T, reg *prometheus.Registry, pol, outcome, reason string, shadow bool) {
	t.Helper()
	label, ok := metricOutcomes[outcome]
	if !ok {
		t.Fatalf("unknown outcome %q", outcome)
	}
	mode := ModeEnforce
	if shadow {
		mode = ModeShadow
		label = OutcomeShadowWouldAllow
		if refusals[outcome] {
			label = OutcomeShadowWouldReject
		}
	}
	want := map[string]float64{pol + "/" + label: 1}
	if got := counterValues(t, reg, MetricRequests, "policy", "outcome"); !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", MetricRequests, got, want)
	}
	want = map[string]float64{}
	// An unknown policy refuses the CORS requests (those with a reason).
	if refusals[outcome] || outcome == "unknown_policy" && reason != "" {
		want[pol+"/"+cmp(reason, "none")+"/"+mode] = 1
	}
	if got := counterValues(t, reg, MetricRejections, "policy", "reason", "mode"); !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", MetricRejections, got, want)
	}
}

// counterValues gathers the counter name of reg as "label1/label2/..." →
// value, for every series counted at least once (the series of policy ""
// exist from the start at zero).
func counterValues(t *testing.T, reg *prometheus.Registry, name string, labels ...string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if len(l) != len(labels) {
				t.Errorf("%s has labels %v, want %v", name, l, labels)
			}
			var key []string
			for _, k := range labels {
				v, ok := l[k]
				if !ok {
					t.Errorf("%s has labels %v, want %v", name, l, labels)
				}
				key = append(key, v)
			}
			if v := m.GetCounter().GetValue(); v != 0 {
				out[strings.Join(key, "/")] = v
			}
		}
	}
	return out
}

// histogramCount returns the sample count of corsproc_processing_seconds
// for message kind.
func histogramCount(t *testing.T, reg *prometheus.Registry, kind string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != MetricProcessing {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == kind {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	t.Fatalf("no %s{message=%q}", MetricProcessing, kind)
	return 0
}

func fmtReplies(rs []reply) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, r.String())
	}
	return "[" + strings.Join(parts, "\n       ") + "]"
}

// gatherText renders reg's metrics for failure messages.
func gatherText(t *testing.T, reg *prometheus.Registry) string {
	mfs, err := reg.Gather()
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			fmt.Fprintf(&b, "  %s%v %v\n", mf.GetName(), m.GetLabel(), m.GetCounter().GetValue())
		}
	}
	return b.String()
}

func runSemCases(t *testing.T, yaml string, cases []semCase) {
	set := mustParse(t, yaml)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runSemCase(t, set, c) })
	}
}

// §2: which policy governs a request.
func TestSemanticsSelection(t *testing.T) {
	// Each policy allows only its own origin, so the answer shows which one
	// governed.
	allowedBy := func(origin string) []reply {
		return []reply{continueReq(), corsResp(acao(origin), varyOrigin())}
	}
	deniedBy := func() []reply { return []reply{continueReq(), corsResp(varyOrigin())} }
	const o = "https://named.example.net"
	viaRoute := func(route, host, path, origin string) envoyRequest {
		r := get(host, origin)
		r.Route, r.Path = route, path
		return r
	}
	runSemCases(t, selectionYAML, []semCase{
		{name: "metadata/wins_over_route_host_path", md: []string{"named-only"},
			req:    viaRoute("storefront", "api.example.com", "/api/x", o),
			want:   allowedBy(o),
			policy: "named-only", outcome: "allowed"},
		// An unknown name governs and refuses: the route's own policy is
		// not used, the upstream's CORS headers are removed, preflights
		// get 403 (they used to pass to the upstream untouched).
		{name: "metadata/unknown_name/denied", md: []string{"nope"},
			req:    viaRoute("storefront", "api.example.com", "/api/x", "https://route.example.net"),
			want:   deniedBy(),
			policy: "", outcome: "unknown_policy", reason: "unknown_policy"},
		{name: "metadata/unknown_name/preflight_rejected", md: []string{"nope"},
			req:    preflight("api.example.com", o, "PUT"),
			want:   []reply{rejected()},
			policy: "", outcome: "unknown_policy", reason: "unknown_policy"},
		{name: "metadata/unknown_name/no_origin", md: []string{"nope"},
			req:    get("api.example.com", ""),
			want:   deniedBy(),
			policy: "", outcome: "unknown_policy"},
		{name: "metadata/several_values/unknown", md: []string{"named-only", "fallback"},
			req:    get("api.example.com", o),
			want:   deniedBy(),
			policy: "", outcome: "unknown_policy", reason: "unknown_policy"},
		{name: "metadata/case_sensitive", md: []string{"Named-Only"},
			req:    get("api.example.com", o),
			want:   deniedBy(),
			policy: "", outcome: "unknown_policy", reason: "unknown_policy"},
		{name: "route/wins_over_host", req: viaRoute("storefront", "api.example.com", "/api/x", "https://route.example.net"),
			want:   allowedBy("https://route.example.net"),
			policy: "by-route", outcome: "allowed"},
		{name: "route/unknown_route_falls_to_host", req: viaRoute("checkout", "api.example.com", "/", "https://host.example.net"),
			want:   allowedBy("https://host.example.net"),
			policy: "by-host", outcome: "allowed"},
		{name: "route/route_policy_not_selected_without_route", req: viaRoute("", "other.example.com", "/web", "https://route.example.net"),
			want:   deniedBy(),
			policy: "fallback", outcome: "disallowed_origin", reason: "origin_not_allowed"},
		{name: "host/exact", req: get("api.example.com", "https://host.example.net"),
			want:   allowedBy("https://host.example.net"),
			policy: "by-host", outcome: "allowed"},
		{name: "host/port_ignored_case_insensitive", req: get("API.Example.COM:8443", "https://host.example.net"),
			want:   allowedBy("https://host.example.net"),
			policy: "by-host", outcome: "allowed"},
		{name: "host/wildcard", req: get("eu.shop.example.com", "https://host.example.net"),
			want:   allowedBy("https://host.example.net"),
			policy: "by-host", outcome: "allowed"},
		{name: "host/wildcard_not_apex", req: viaRoute("", "shop.example.com", "/web", "https://host.example.net"),
			want:   deniedBy(),
			policy: "fallback", outcome: "disallowed_origin", reason: "origin_not_allowed"},
		{name: "file_order/host_before_path", req: viaRoute("", "api.example.com", "/api/x", "https://host.example.net"),
			want:   allowedBy("https://host.example.net"),
			policy: "by-host", outcome: "allowed"},
		{name: "path/prefix", req: viaRoute("", "other.example.com", "/api/x?q=1", "https://path.example.net"),
			want:   allowedBy("https://path.example.net"),
			policy: "by-path", outcome: "allowed"},
		{name: "path/regex_full_match", req: viaRoute("", "other.example.com", "/v2/items?x=1", "https://regex.example.net"),
			want:   allowedBy("https://regex.example.net"),
			policy: "by-regex", outcome: "allowed"},
		{name: "path/regex_not_partial", req: viaRoute("", "other.example.com", "/v2/items/7", "https://regex.example.net"),
			want:   deniedBy(),
			policy: "fallback", outcome: "disallowed_origin", reason: "origin_not_allowed"},
		{name: "default", req: viaRoute("", "other.example.com", "/web", "https://fallback.example.net"),
			want:   allowedBy("https://fallback.example.net"),
			policy: "fallback", outcome: "allowed"},
	})
	runSemCases(t, noDefaultYAML, []semCase{
		{name: "none/ungoverned", req: get("other.example.com", "https://app.example.com"),
			want:   []reply{continueSkip(), continueResp()},
			policy: "", outcome: "ungoverned"},
		{name: "none/ungoverned_preflight_forwarded", req: preflight("other.example.com", "https://app.example.com", "PUT"),
			want:   []reply{continueSkip(), continueResp()},
			policy: "", outcome: "ungoverned"},
		{name: "none/governed_by_host", req: get("api.example.com", "https://app.example.com"),
			want:   []reply{continueReq(), corsResp(acao("https://app.example.com"), varyOrigin())},
			policy: "web", outcome: "allowed"},
	})
}

// §3: origins, on actual requests to the web policy.
func TestSemanticsOrigins(t *testing.T) {
	const host = "api.example.com"
	allow := func(origin string) semCase {
		return semCase{req: get(host, origin),
			want:   []reply{continueReq(), corsResp(acao(origin), aceh("x-request-id"), varyOrigin())},
			policy: "web", outcome: "allowed"}
	}
	deny := func(origin, reason string) semCase {
		return semCase{req: get(host, origin),
			want:   []reply{continueReq(), corsResp(varyOrigin())},
			policy: "web", outcome: "disallowed_origin", reason: reason}
	}
	named := func(name string, c semCase) semCase { c.name = name; return c }
	cases := []semCase{
		named("exact", allow("https://app.example.com")),
		named("exact/scheme_differs", deny("http://app.example.com", "origin_not_allowed")),
		named("exact/other_site", deny("https://evil.com", "origin_not_allowed")),
		named("wildcard/one_label", allow("https://foo.example.com")),
		named("wildcard/two_labels", allow("https://a.b.example.com")),
		named("wildcard/not_apex", deny("https://example.com", "origin_not_allowed")),
		named("wildcard/not_suffix_lookalike", deny("https://evilexample.com", "origin_not_allowed")),
		named("wildcard/not_with_port", deny("https://foo.example.com:8443", "origin_not_allowed")),
		named("wildcard/not_as_prefix", deny("https://foo.example.com.evil.com", "origin_not_allowed")),
		named("localhost/port", allow("http://localhost:3000")),
		named("localhost/other_port", allow("http://localhost:8080")),
		named("localhost/no_port", allow("http://localhost")),
		named("localhost/https_not_listed", deny("https://localhost:3000", "origin_not_allowed")),
		named("localhost/not_prefix", deny("http://localhost.evil.com", "origin_not_allowed")),
		named("regex/full_match", allow("https://shop-1.example.org")),
		named("regex/not_partial_suffix", deny("https://shop.example.org.evil.com", "origin_not_allowed")),
		named("regex/not_partial_prefix", deny("https://x.shop.example.org", "origin_not_allowed")),
		named("null_not_listed", deny("null", "origin_not_allowed")),
		named("malformed/upper_case_host", deny("https://APP.example.com", "origin_malformed")),
		named("malformed/upper_case_scheme", deny("HTTPS://app.example.com", "origin_malformed")),
		named("malformed/path", deny("https://app.example.com/path", "origin_malformed")),
		named("malformed/trailing_slash", deny("https://app.example.com/", "origin_malformed")),
		named("malformed/userinfo", deny("https://user@app.example.com", "origin_malformed")),
		named("malformed/default_port", deny("https://app.example.com:443", "origin_malformed")),
		named("malformed/default_port_http", deny("http://localhost:80", "origin_malformed")),
		named("malformed/several_values", deny("https://app.example.com https://foo.example.com", "origin_malformed")),
		named("malformed/comma_list", deny("https://app.example.com, https://foo.example.com", "origin_malformed")),
		named("malformed/query", deny("https://app.example.com?x", "origin_malformed")),
		{name: "malformed/two_origin_headers",
			req:    get(host, "https://app.example.com", [2]string{"origin", "https://app.example.com"}),
			want:   []reply{continueReq(), corsResp(varyOrigin())},
			policy: "web", outcome: "disallowed_origin", reason: "origin_malformed"},
		{name: "allow_all/star_no_vary", req: get("public.example.com", "https://anything.example.net"),
			want:   []reply{continueReq(), corsResp(acao("*"), aceh("x-total"))},
			policy: "public", outcome: "allowed"},
		{name: "allow_all/malformed_origin_still_star", req: get("public.example.com", "https://Anything.example.net/"),
			want:   []reply{continueReq(), corsResp(acao("*"), aceh("x-total"))},
			policy: "public", outcome: "allowed"},
	}
	runSemCases(t, semanticsYAML, cases)
}

// §4: classifying a request.
func TestSemanticsClassification(t *testing.T) {
	const host, o = "api.example.com", "https://app.example.com"
	actualAllowed := []reply{continueReq(), corsResp(acao(o), aceh("x-request-id"), varyOrigin())}
	options := func(extra ...[2]string) envoyRequest {
		r := get(host, o, extra...)
		r.Method = "OPTIONS"
		return r
	}
	runSemCases(t, semanticsYAML, []semCase{
		{name: "no_origin/not_cors_vary", req: get(host, ""),
			want:   []reply{continueReq(), corsResp(varyOrigin())},
			policy: "web", outcome: "non_cors"},
		{name: "no_origin/allow_all_star", req: get("public.example.com", ""),
			want:   []reply{continueReq(), corsResp(acao("*"), aceh("x-total"))},
			policy: "public", outcome: "non_cors"},
		{name: "no_origin/options_with_acrm_not_preflight",
			req:    envoyRequest{Method: "OPTIONS", Authority: host, Headers: [][2]string{{"access-control-request-method", "PUT"}}},
			want:   []reply{continueReq(), corsResp(varyOrigin())},
			policy: "web", outcome: "non_cors"},
		{name: "options_without_acrm_is_actual", req: options(),
			want: actualAllowed, policy: "web", outcome: "allowed"},
		{name: "options_with_empty_acrm_is_actual", req: options([2]string{"access-control-request-method", ""}),
			want: actualAllowed, policy: "web", outcome: "allowed"},
		{name: "post_with_acrm_is_actual", req: func() envoyRequest {
			r := get(host, o, [2]string{"access-control-request-method", "PUT"})
			r.Method, r.Body = "POST", true
			return r
		}(),
			want: actualAllowed, policy: "web", outcome: "allowed"},
		{name: "lower_case_options_is_actual", req: func() envoyRequest {
			r := preflight(host, o, "PUT")
			r.Method = "options"
			return r
		}(),
			want: actualAllowed, policy: "web", outcome: "allowed"},
		{name: "preflight", req: preflight(host, o, "PUT"),
			want: []reply{allowed(acao(o), acam("GET, POST, PUT, DELETE"), acah("content-type, x-requested-with"),
				acma("600"), varyPreflight())},
			policy: "web", outcome: "preflight_allowed"},
	})
}

// §5: preflights.
func TestSemanticsPreflight(t *testing.T) {
	const host, o = "api.example.com", "https://app.example.com"
	webOK := []reply{allowed(acao(o), acam("GET, POST, PUT, DELETE"), acah("content-type, x-requested-with"),
		acma("600"), varyPreflight())}
	starOK := func(method string, hs ...hdr) []reply {
		hs = append(hs, acao(o), acam(method), varyPreflight())
		return []reply{immediate(200, "cors_preflight_allowed", hs...)}
	}
	rej := []reply{rejected()}
	names := func(n int) string {
		var parts []string
		for i := range n {
			parts = append(parts, fmt.Sprintf("x-h%d", i))
		}
		return strings.Join(parts, ",")
	}
	runSemCases(t, semanticsYAML, []semCase{
		// 1. origin
		{name: "origin/allowed", req: preflight(host, o, "PUT"), want: webOK, policy: "web", outcome: "preflight_allowed"},
		{name: "origin/not_allowed", req: preflight(host, "https://evil.com", "PUT"), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "origin_not_allowed"},
		{name: "origin/malformed", req: preflight(host, "https://app.example.com/", "PUT"), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "origin_malformed"},
		{name: "origin/two_headers", req: preflight(host, o, "PUT", [2]string{"origin", o}), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "origin_malformed"},
		{name: "order/origin_before_method", req: preflight(host, "https://evil.com", "PATCH", acrhH("x-nope"), acrpnH("true")), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "origin_not_allowed"},
		// 2. method
		{name: "method/listed", req: preflight(host, o, "DELETE"), want: webOK, policy: "web", outcome: "preflight_allowed"},
		{name: "method/not_listed", req: preflight(host, o, "PATCH"), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "method_not_allowed"},
		{name: "method/case_sensitive", req: preflight(host, o, "put"), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "method_not_allowed"},
		{name: "method/head_always", req: preflight(host, o, "HEAD"), want: webOK, policy: "web", outcome: "preflight_allowed"},
		{name: "method/get_always", req: preflight(host, o, "GET"), want: webOK, policy: "web", outcome: "preflight_allowed"},
		{name: "method/duplicate_acrm", req: preflight(host, o, "PUT", [2]string{"access-control-request-method", "PUT"}), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "method_not_allowed"},
		{name: "order/method_before_headers", req: preflight(host, o, "PATCH", acrhH("x-nope")), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "method_not_allowed"},
		{name: "method/star_echoes_acrm", req: preflight("star.example.com", o, "PATCH"), want: starOK("PATCH"),
			policy: "star", outcome: "preflight_allowed"},
		{name: "method/star_echoes_case", req: preflight("star.example.com", o, "purge"), want: starOK("purge"),
			policy: "star", outcome: "preflight_allowed"},
		// * never allows what a policy may not list (it echoed them).
		{name: "method/star_refuses_connect", req: preflight("star.example.com", o, "CONNECT"), want: rej,
			policy: "star", outcome: "preflight_rejected", reason: "method_not_allowed"},
		{name: "method/star_refuses_trace_any_case", req: preflight("star.example.com", o, "trace"), want: rej,
			policy: "star", outcome: "preflight_rejected", reason: "method_not_allowed"},
		// 3. headers
		{name: "headers/listed", req: preflight(host, o, "PUT", acrhH("content-type")), want: webOK,
			policy: "web", outcome: "preflight_allowed"},
		{name: "headers/case_insensitive", req: preflight(host, o, "PUT", acrhH("Content-Type,X-Requested-With")), want: webOK,
			policy: "web", outcome: "preflight_allowed"},
		{name: "headers/trim_spaces_tabs", req: preflight(host, o, "PUT", acrhH(" content-type ,\tx-requested-with\t")), want: webOK,
			policy: "web", outcome: "preflight_allowed"},
		{name: "headers/empty_elements", req: preflight(host, o, "PUT", acrhH(",content-type,, ,x-requested-with,")), want: webOK,
			policy: "web", outcome: "preflight_allowed"},
		{name: "headers/across_lines", req: preflight(host, o, "PUT", acrhH("content-type"), acrhH("x-requested-with")), want: webOK,
			policy: "web", outcome: "preflight_allowed"},
		{name: "headers/empty_line", req: preflight(host, o, "PUT", acrhH("")), want: webOK,
			policy: "web", outcome: "preflight_allowed"},
		{name: "headers/not_listed", req: preflight(host, o, "PUT", acrhH("content-type, x-custom")), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "header_not_allowed"},
		{name: "headers/not_listed_second_line", req: preflight(host, o, "PUT", acrhH("content-type"), acrhH("authorization")), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "header_not_allowed"},
		{name: "headers/not_a_token", req: preflight(host, o, "PUT", acrhH("content type")), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "headers_malformed"},
		{name: "headers/star_echoes_names", req: preflight("star.example.com", o, "PUT", acrhH("X-Custom, authorization"), acrhH("content-type")),
			want:   starOK("PUT", acah("x-custom, authorization, content-type")),
			policy: "star", outcome: "preflight_allowed"},
		{name: "headers/star_refuses_cookie", req: preflight("star.example.com", o, "PUT", acrhH("x-custom, Cookie")), want: rej,
			policy: "star", outcome: "preflight_rejected", reason: "header_not_allowed"},
		{name: "headers/star_refuses_sec_prefix", req: preflight("star.example.com", o, "PUT", acrhH("sec-fetch-site")), want: rej,
			policy: "star", outcome: "preflight_rejected", reason: "header_not_allowed"},
		{name: "headers/star_refuses_cors_response_header", req: preflight("star.example.com", o, "PUT", acrhH("access-control-allow-origin")), want: rej,
			policy: "star", outcome: "preflight_rejected", reason: "header_not_allowed"},
		{name: "headers/star_none_requested_omitted", req: preflight("star.example.com", o, "PUT"),
			want:   starOK("PUT"),
			policy: "star", outcome: "preflight_allowed"},
		{name: "headers/bound_64_names_ok", req: preflight("star.example.com", o, "PUT", acrhH(names(64))),
			want:   starOK("PUT", acah(strings.ReplaceAll(names(64), ",", ", "))),
			policy: "star", outcome: "preflight_allowed"},
		{name: "headers/bound_65_names", req: preflight("star.example.com", o, "PUT", acrhH(names(65))), want: rej,
			policy: "star", outcome: "preflight_rejected", reason: "headers_malformed"},
		{name: "headers/bound_65_names_across_lines", req: preflight("star.example.com", o, "PUT", acrhH(names(40)), acrhH(names(25))), want: rej,
			policy: "star", outcome: "preflight_rejected", reason: "headers_malformed"},
		{name: "headers/bound_1024_bytes_ok", req: preflight("star.example.com", o, "PUT", acrhH("x-"+strings.Repeat("a", 1022))),
			want:   starOK("PUT", acah("x-"+strings.Repeat("a", 1022))),
			policy: "star", outcome: "preflight_allowed"},
		{name: "headers/bound_1025_bytes", req: preflight("star.example.com", o, "PUT", acrhH("x-"+strings.Repeat("a", 1023))), want: rej,
			policy: "star", outcome: "preflight_rejected", reason: "headers_malformed"},
		{name: "headers/bound_bytes_across_lines", req: preflight("star.example.com", o, "PUT",
			acrhH("x-"+strings.Repeat("a", 600)), acrhH("x-"+strings.Repeat("b", 600))), want: rej,
			policy: "star", outcome: "preflight_rejected", reason: "headers_malformed"},
		{name: "order/headers_before_private_network", req: preflight(host, o, "PUT", acrhH("x-nope"), acrpnH("true")), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "header_not_allowed"},
		// 4. private network
		{name: "private_network/not_allowed", req: preflight(host, o, "PUT", acrpnH("true")), want: rej,
			policy: "web", outcome: "preflight_rejected", reason: "private_network_not_allowed"},
		{name: "private_network/allowed", req: preflight("pna.example.com", o, "PUT", acrpnH("true")),
			want:   []reply{allowed(acao(o), acam(dchMethods), acah(dchHeaders), acma("86400"), acapn(), varyPreflight())},
			policy: "pna", outcome: "preflight_allowed"},
		{name: "private_network/not_exactly_true", req: preflight(host, o, "PUT", acrpnH("TRUE")), want: webOK,
			policy: "web", outcome: "preflight_allowed"},
		{name: "private_network/not_requested_no_header", req: preflight("pna.example.com", o, "PUT"),
			want:   []reply{allowed(acao(o), acam(dchMethods), acah(dchHeaders), acma("86400"), varyPreflight())},
			policy: "pna", outcome: "preflight_allowed"},
		// success headers
		{name: "success/credentials", req: preflight("creds.example.com", o, "PUT"),
			want:   []reply{allowed(acao(o), acac(), acam(dchMethods), acah(dchHeaders), acma("86400"), varyPreflight())},
			policy: "creds", outcome: "preflight_allowed"},
		{name: "success/allow_all_star", req: preflight("public.example.com", "https://any.example.net", "PUT"),
			want:   []reply{allowed(acao("*"), acam(dchMethods), acah(dchHeaders), acma("86400"), varyPreflight())},
			policy: "public", outcome: "preflight_allowed"},
		{name: "success/status_200_no_max_age", req: preflight("star.example.com", o, "PUT"), want: starOK("PUT"),
			policy: "star", outcome: "preflight_allowed"},
		// unmatched_preflight: forward
		// A failing preflight goes to the upstream, whose response
		// loses every CORS header: the upstream never allows what
		// corsproc refused (the response phase used to be skipped).
		{name: "forward/failing_goes_upstream_stripped", req: preflight("fwd.example.com", "https://evil.com", "PUT"),
			want:   []reply{continueReq(), corsResp(varyOrigin())},
			policy: "fwd", outcome: "preflight_forwarded", reason: "origin_not_allowed"},
		{name: "forward/failing_method", req: preflight("fwd.example.com", o, "PURGE"),
			want:   []reply{continueReq(), corsResp(varyOrigin())},
			policy: "fwd", outcome: "preflight_forwarded", reason: "method_not_allowed"},
		{name: "forward/passing_answered", req: preflight("fwd.example.com", o, "PUT"),
			want:   []reply{allowed(acao(o), acam(dchMethods), acah(dchHeaders), acma("86400"), varyPreflight())},
			policy: "fwd", outcome: "preflight_allowed"},
	})
}

// §6 and §7: actual CORS requests, response phase.
func TestSemanticsActual(t *testing.T) {
	const o = "https://app.example.com"
	runSemCases(t, semanticsYAML, []semCase{
		{name: "allowed", req: get("api.example.com", o),
			want:   []reply{continueReq(), corsResp(acao(o), aceh("x-request-id"), varyOrigin())},
			policy: "web", outcome: "allowed"},
		{name: "allowed/credentials", req: get("creds.example.com", o),
			want:   []reply{continueReq(), corsResp(acao(o), acac(), aceh("x-total, x-page"), varyOrigin())},
			policy: "creds", outcome: "allowed"},
		{name: "allowed/no_expose", req: get("pna.example.com", o),
			want:   []reply{continueReq(), corsResp(acao(o), varyOrigin())},
			policy: "pna", outcome: "allowed"},
		{name: "allowed/allow_all", req: get("public.example.com", o),
			want:   []reply{continueReq(), corsResp(acao("*"), aceh("x-total"))},
			policy: "public", outcome: "allowed"},
		{name: "denied/only_vary", req: get("creds.example.com", "https://evil.com"),
			want:   []reply{continueReq(), corsResp(varyOrigin())},
			policy: "creds", outcome: "disallowed_origin", reason: "origin_not_allowed"},
	})
}

// §6 as the browser sees it: the mutation applied to upstream
// responses as Envoy applies it, whatever the upstream status and CORS
// headers.
func TestSemanticsActualAppliedToUpstream(t *testing.T) {
	set := mustParse(t, semanticsYAML)
	const o = "https://app.example.com"
	upstreamCORS := [][2]string{
		{"access-control-allow-origin", "*"},
		{"access-control-allow-origin", "https://evil.com"},
		{"access-control-allow-credentials", "true"},
		{"access-control-expose-headers", "x-secret"},
		{"access-control-allow-methods", "GET"},
		{"access-control-allow-headers", "x-foo"},
		{"access-control-max-age", "5"},
		{"access-control-allow-private-network", "true"},
	}
	base := [][2]string{{"content-type", "application/json"}, {"vary", "Accept-Encoding"}}
	cases := []struct {
		name     string
		md       []string
		req      envoyRequest
		status   int
		upstream [][2]string
		want     [][2]string
	}{
		{"allowed/upstream_200_with_cors", nil, get("creds.example.com", o), 200, upstreamCORS, [][2]string{
			{"access-control-allow-origin", o}, {"access-control-allow-credentials", "true"},
			{"access-control-expose-headers", "x-total, x-page"}, {"vary", "Origin"}}},
		{"allowed/upstream_401_kept", nil, get("creds.example.com", o), 401, nil, [][2]string{
			{"access-control-allow-origin", o}, {"access-control-allow-credentials", "true"},
			{"access-control-expose-headers", "x-total, x-page"}, {"vary", "Origin"}}},
		{"allowed/upstream_500_kept", nil, get("creds.example.com", o), 500, upstreamCORS, [][2]string{
			{"access-control-allow-origin", o}, {"access-control-allow-credentials", "true"},
			{"access-control-expose-headers", "x-total, x-page"}, {"vary", "Origin"}}},
		{"allow_all/star_no_vary", nil, get("public.example.com", o), 200, upstreamCORS, [][2]string{
			{"access-control-allow-origin", "*"}, {"access-control-expose-headers", "x-total"}}},
		{"denied/upstream_cors_removed", nil, get("creds.example.com", "https://evil.com"), 200, upstreamCORS, [][2]string{
			{"vary", "Origin"}}},
		{"not_cors/upstream_cors_removed", nil, get("creds.example.com", ""), 403, upstreamCORS, [][2]string{
			{"vary", "Origin"}}},
		// A preflight forwarded by unmatched_preflight: forward, and any
		// request under an unknown policy: the upstream's answer never
		// reaches the browser's CORS check.
		{"forward/preflight_upstream_cors_removed", nil, preflight("fwd.example.com", "https://evil.com", "PUT"), 200, upstreamCORS, [][2]string{
			{"vary", "Origin"}}},
		{"unknown_policy/upstream_cors_removed", []string{"gone"}, get("creds.example.com", o), 200, upstreamCORS, [][2]string{
			{"vary", "Origin"}}},
		{"unknown_policy/not_cors_upstream_cors_removed", []string{"gone"}, get("public.example.com", ""), 200, upstreamCORS, [][2]string{
			{"vary", "Origin"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := New(set, Options{})
			upstream := append(append([][2]string{{":status", fmt.Sprint(c.status)}}, base...), c.upstream...)
			fs := newFakeStream(t, c.md, c.req.message(), envoyResponse(c.status, upstream[1:]...))
			if err := srv.Process(fs); err != nil {
				t.Fatal(err)
			}
			out := fs.responses()
			if len(out) != 2 {
				t.Fatalf("%d responses, want 2", len(out))
			}
			mu := out[1].GetResponseHeaders().GetResponse().GetHeaderMutation()
			final := applyMutation(upstream, mu)
			// What the browser reads: the status, the untouched headers and
			// the CORS ones.
			want := append(append([][2]string{{":status", fmt.Sprint(c.status)}}, base...), c.want...)
			if !sameHeaders(final, want) {
				t.Errorf("final headers:\n got  %v\n want %v", final, want)
			}
		})
	}
}

// sameHeaders compares header lists by name, keeping the order of values
// of one name (Vary: Accept-Encoding then Origin).
func sameHeaders(a, b [][2]string) bool {
	group := func(hs [][2]string) map[string][]string {
		m := map[string][]string{}
		for _, h := range hs {
			m[h[0]] = append(m[h[0]], h[1])
		}
		return m
	}
	return reflect.DeepEqual(group(a), group(b))
}

// §8: shadow mode changes nothing and records.
func TestSemanticsShadow(t *testing.T) {
	const host, o = "shadow.example.com", "https://app.example.com"
	untouched := []reply{continueSkip(), continueResp()}
	runSemCases(t, semanticsYAML, []semCase{
		{name: "preflight_allowed_not_answered", req: preflight(host, o, "PUT"), want: untouched,
			policy: "shadow", outcome: "preflight_allowed", shadow: true},
		{name: "preflight_rejected_not_answered", req: preflight(host, "https://evil.com", "PUT"), want: untouched,
			policy: "shadow", outcome: "preflight_rejected", reason: "origin_not_allowed", shadow: true},
		{name: "actual_allowed_no_headers", req: get(host, o), want: untouched,
			policy: "shadow", outcome: "allowed", shadow: true},
		{name: "actual_denied_no_headers", req: get(host, "https://evil.com"), want: untouched,
			policy: "shadow", outcome: "disallowed_origin", reason: "origin_not_allowed", shadow: true},
		{name: "not_cors_no_headers", req: get(host, ""), want: untouched,
			policy: "shadow", outcome: "non_cors", shadow: true},
	})
}
