package processor

// The stream loop: message types, stream ends and errors, malformed input,
// metadata, policy swaps, metrics and logs.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var _ extprocv3.ExternalProcessor_ProcessServer = (*fakeStream)(nil)

// process runs one stream and returns the summarized responses.
func process(t *testing.T, srv *Server, md []string, msgs ...*extprocv3.ProcessingRequest) []reply {
	t.Helper()
	fs := newFakeStream(t, md, msgs...)
	if err := srv.Process(fs); err != nil {
		t.Fatalf("Process: %v", err)
	}
	var got []reply
	for _, r := range fs.responses() {
		got = append(got, summarize(r))
	}
	return got
}

func wantReplies(t *testing.T, got []reply, want ...reply) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("responses:\n got  %s\n want %s", fmtReplies(got), fmtReplies(want))
	}
}

func bodyMsg(response bool) *extprocv3.ProcessingRequest {
	b := &extprocv3.HttpBody{Body: []byte(`{"a":1}`), EndOfStream: true}
	if response {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: b}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: b}}
}

func trailersMsg(response bool) *extprocv3.ProcessingRequest {
	tr := &extprocv3.HttpTrailers{Trailers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "grpc-status", RawValue: []byte("0")}}}}
	if response {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: tr}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: tr}}
}

// A filter configured to send bodies and trailers gets one matching
// response for each, and the CORS headers still land on the response.
func TestProcessEveryMessageType(t *testing.T) {
	srv := New(mustParse(t, semanticsYAML), Options{})
	const o = "https://app.example.com"
	req := get("api.example.com", o)
	req.Body = true
	got := process(t, srv, nil,
		req.message(), bodyMsg(false), trailersMsg(false),
		defaultUpstream(), bodyMsg(true), trailersMsg(true))
	wantReplies(t, got,
		continueReq(),
		reply{Kind: "request_body"},
		reply{Kind: "request_trailers"},
		corsResp(acao(o), aceh("x-request-id"), varyOrigin()),
		reply{Kind: "response_body"},
		reply{Kind: "response_trailers"})
}

// Envoy older than 1.27 sends header values in value, not raw_value.
func TestProcessLegacyValue(t *testing.T) {
	srv := New(mustParse(t, semanticsYAML), Options{})
	const o = "https://app.example.com"
	pf := preflight("api.example.com", o, "PUT", acrhH("content-type"))
	pf.LegacyValue = true
	wantReplies(t, process(t, srv, nil, pf.message()),
		allowed(acao(o), acam("GET, POST, PUT, DELETE"), acah("content-type, x-requested-with"), acma("600"), varyPreflight()))

	act := get("api.example.com", o)
	act.LegacyValue = true
	wantReplies(t, process(t, srv, nil, act.message(), defaultUpstream()),
		continueReq(), corsResp(acao(o), aceh("x-request-id"), varyOrigin()))
}

// The route attribute arrives only on the first request-direction message;
// response-direction attributes are not the route.
func TestProcessRouteAttribute(t *testing.T) {
	srv := New(mustParse(t, selectionYAML), Options{})
	const o = "https://route.example.net"
	// Route on request_headers: by-route governs.
	r := get("other.example.com", o)
	r.Route = "storefront"
	wantReplies(t, process(t, srv, nil, r.message(), defaultUpstream()),
		continueReq(), corsResp(acao(o), varyOrigin()))

	// Attributes present but without xds.route_name, or with a non-string
	// value: no route.
	m := get("other.example.com", o).message()
	m.Attributes = routeAttributes("storefront")
	m.Attributes["envoy.filters.http.ext_proc"].Fields = nil
	wantReplies(t, process(t, srv, nil, m, defaultUpstream()), continueReq(), corsResp(varyOrigin()))

	// Route only on response_headers (response_attributes): ignored.
	resp := defaultUpstream()
	resp.Attributes = routeAttributes("storefront")
	wantReplies(t, process(t, srv, nil, get("other.example.com", o).message(), resp),
		continueReq(), corsResp(varyOrigin()))
}

// Malformed messages always get one well-formed response and a defined
// outcome: no panic, no stall.
func TestProcessMalformed(t *testing.T) {
	set := mustParse(t, semanticsYAML+`
default_policy: web
`)
	const o = "https://app.example.com"
	reqHeaders := func(hs ...*corev3.HeaderValue) *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: hs}, EndOfStream: true}}}
	}
	raw := func(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }
	huge := strings.Repeat("a", 1<<20)
	cases := []struct {
		name    string
		msgs    []*extprocv3.ProcessingRequest
		want    []reply
		outcome string
		reason  string
	}{
		{"request_headers_nil", []*extprocv3.ProcessingRequest{
			{Request: &extprocv3.ProcessingRequest_RequestHeaders{}}, defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, "non_cors", ""},
		{"header_map_nil", []*extprocv3.ProcessingRequest{
			{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{}}}, defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, "non_cors", ""},
		{"no_headers_at_all", []*extprocv3.ProcessingRequest{reqHeaders(), defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, "non_cors", ""},
		{"nil_header_entry", []*extprocv3.ProcessingRequest{reqHeaders(nil, raw("origin", o), nil), defaultUpstream()},
			[]reply{continueReq(), corsResp(acao(o), aceh("x-request-id"), varyOrigin())}, "allowed", ""},
		{"missing_method_with_origin_is_actual", []*extprocv3.ProcessingRequest{
			reqHeaders(raw(":authority", "api.example.com"), raw(":path", "/"), raw("origin", o), raw("access-control-request-method", "PUT")),
			defaultUpstream()},
			[]reply{continueReq(), corsResp(acao(o), aceh("x-request-id"), varyOrigin())}, "allowed", ""},
		{"several_origin_headers", []*extprocv3.ProcessingRequest{
			reqHeaders(raw(":method", "GET"), raw("origin", o), raw("origin", "https://evil.com")), defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, "disallowed_origin", "origin_malformed"},
		{"mixed_case_key_not_matched", []*extprocv3.ProcessingRequest{
			// Envoy lower-cases keys; anything else is not the Origin header.
			reqHeaders(raw(":method", "GET"), raw("Origin", o)), defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, "non_cors", ""},
		{"non_utf8_origin", []*extprocv3.ProcessingRequest{
			reqHeaders(raw(":method", "GET"), raw("origin", "https://\xff\xfe.example.com")), defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, "disallowed_origin", "origin_malformed"},
		{"non_utf8_preflight", []*extprocv3.ProcessingRequest{
			reqHeaders(raw(":method", "OPTIONS"), raw("origin", o), raw("access-control-request-method", "P\xffT"),
				raw("access-control-request-headers", "x-\xc3\x28"), raw(":path", "/\xff"), raw(":authority", "api.example.com\xff"))},
			[]reply{rejected()}, "preflight_rejected", "method_not_allowed"},
		{"non_utf8_acrh", []*extprocv3.ProcessingRequest{
			reqHeaders(raw(":method", "OPTIONS"), raw("origin", o), raw("access-control-request-method", "PUT"),
				raw("access-control-request-headers", "x-\xc3\x28"))},
			[]reply{rejected()}, "preflight_rejected", "headers_malformed"},
		{"huge_origin", []*extprocv3.ProcessingRequest{
			reqHeaders(raw(":method", "GET"), raw("origin", "https://"+huge+".example.com")), defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, "disallowed_origin", "origin_malformed"},
		{"huge_malformed_origin", []*extprocv3.ProcessingRequest{
			reqHeaders(raw(":method", "GET"), raw("origin", "https://app.example.com/"+huge)), defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, "disallowed_origin", "origin_malformed"},
		{"huge_acrh", []*extprocv3.ProcessingRequest{
			reqHeaders(raw(":method", "OPTIONS"), raw("origin", o), raw("access-control-request-method", "PUT"),
				raw("access-control-request-headers", huge))},
			[]reply{rejected()}, "preflight_rejected", "headers_malformed"},
		{"many_acrh_lines", []*extprocv3.ProcessingRequest{
			reqHeaders(append([]*corev3.HeaderValue{raw(":method", "OPTIONS"), raw("origin", o), raw("access-control-request-method", "PUT")},
				repeatHeader("access-control-request-headers", "content-type", 10000)...)...)},
			[]reply{rejected()}, "preflight_rejected", "headers_malformed"},
		{"huge_path_and_authority", []*extprocv3.ProcessingRequest{
			reqHeaders(raw(":method", "GET"), raw(":path", "/"+huge), raw(":authority", huge), raw("origin", o)), defaultUpstream()},
			[]reply{continueReq(), corsResp(acao(o), aceh("x-request-id"), varyOrigin())}, "allowed", ""},
		{"response_headers_without_request_headers", []*extprocv3.ProcessingRequest{defaultUpstream()},
			[]reply{continueResp()}, "", ""},
		{"response_headers_twice", []*extprocv3.ProcessingRequest{get("api.example.com", o).message(), defaultUpstream(), defaultUpstream()},
			[]reply{continueReq(), corsResp(acao(o), aceh("x-request-id"), varyOrigin()), corsResp(acao(o), aceh("x-request-id"), varyOrigin())},
			"allowed", ""},
		{"body_before_headers", []*extprocv3.ProcessingRequest{bodyMsg(false), bodyMsg(true)},
			[]reply{{Kind: "request_body"}, {Kind: "response_body"}}, "", ""},
		{"headers_empty_key_and_value", []*extprocv3.ProcessingRequest{reqHeaders(raw("", ""), raw("origin", "")), defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, "non_cors", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			// The header bounds lifted, so that the huge cases reach the
			// policy's own bounds (ACRH) and parsing; bounds_test.go tests
			// what the header bounds do to them.
			srv := New(set, Options{Registerer: reg, MaxRequestHeaders: math.MaxInt, MaxRequestHeaderBytes: math.MaxInt})
			wantReplies(t, process(t, srv, nil, c.msgs...), c.want...)
			if c.outcome != "" {
				wantCounted(t, reg, "web", c.outcome, c.reason, false)
			} else if got := counterValues(t, reg, MetricRequests, "policy", "outcome"); len(got) != 0 {
				t.Errorf("%s = %v, want no request counted", MetricRequests, got)
			}
			if v := testutil.ToFloat64(srv.m.errUnknownMessage) + testutil.ToFloat64(srv.m.errRecv) + testutil.ToFloat64(srv.m.errSend); v != 0 {
				t.Errorf("%v stream errors counted", v)
			}
		})
	}
}

func repeatHeader(k, v string, n int) []*corev3.HeaderValue {
	out := make([]*corev3.HeaderValue, n)
	for i := range out {
		out[i] = &corev3.HeaderValue{Key: k, RawValue: []byte(v)}
	}
	return out
}

// A ProcessingRequest with no known message ends the stream with
// INVALID_ARGUMENT: Envoy answers 500, or continues with failure_mode_allow.
func TestProcessUnknownMessage(t *testing.T) {
	for _, c := range []struct {
		name string
		msgs []*extprocv3.ProcessingRequest
		want []reply
	}{
		{"first", []*extprocv3.ProcessingRequest{{}}, nil},
		{"only_attributes", []*extprocv3.ProcessingRequest{{Attributes: routeAttributes("storefront")}}, nil},
		{"after_request_headers", []*extprocv3.ProcessingRequest{get("api.example.com", "").message(), {}}, []reply{continueReq()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			srv := New(mustParse(t, semanticsYAML), Options{Registerer: reg})
			fs := newFakeStream(t, nil, c.msgs...)
			err := srv.Process(fs)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Process = %v, want code InvalidArgument", err)
			}
			if !strings.Contains(status.Convert(err).Message(), "request_headers") {
				t.Errorf("message %q does not say what was expected", status.Convert(err).Message())
			}
			var got []reply
			for _, r := range fs.responses() {
				got = append(got, summarize(r))
			}
			wantReplies(t, got, c.want...)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP corsproc_stream_errors_total ext_proc streams ended with an error, by kind: unknown_message (a message with no known request type, answered INVALID_ARGUMENT), recv, send.
# TYPE corsproc_stream_errors_total counter
corsproc_stream_errors_total{kind="recv"} 0
corsproc_stream_errors_total{kind="send"} 0
corsproc_stream_errors_total{kind="unknown_message"} 1
# HELP corsproc_streams_total ext_proc streams opened by Envoy (one per HTTP request per filter).
# TYPE corsproc_streams_total counter
corsproc_streams_total 1
`), MetricStreamErrors, MetricStreams); err != nil {
				t.Error(err)
			}
		})
	}
}

// Envoy ends streams with a half-close then a reset: io.EOF and Canceled
// end Process quietly. Other receive errors are returned and counted.
func TestProcessStreamEnd(t *testing.T) {
	for _, c := range []struct {
		name    string
		end     error
		wantErr bool
	}{
		{"eof", io.EOF, false},
		{"grpc_canceled", status.Error(codes.Canceled, "context canceled"), false},
		{"context_canceled", context.Canceled, false},
		{"wrapped_context_canceled", errors.Join(errors.New("stream"), context.Canceled), false},
		{"unavailable", status.Error(codes.Unavailable, "transport closing"), true},
		{"deadline", status.Error(codes.DeadlineExceeded, "deadline"), true},
		{"other", errors.New("boom"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			srv := New(mustParse(t, semanticsYAML), Options{Registerer: reg})
			fs := newFakeStream(t, nil, get("api.example.com", "https://app.example.com").message())
			fs.End = c.end
			err := srv.Process(fs)
			if c.wantErr != (err != nil) {
				t.Fatalf("Process = %v, want error %v", err, c.wantErr)
			}
			if c.wantErr && !errors.Is(err, c.end) {
				t.Errorf("Process = %v, want %v", err, c.end)
			}
			wantRecv := 0.0
			if c.wantErr {
				wantRecv = 1
			}
			if v := testutil.ToFloat64(srv.m.errRecv); v != wantRecv {
				t.Errorf("recv errors %v, want %v", v, wantRecv)
			}
			if len(fs.responses()) != 1 {
				t.Errorf("%d responses, want 1", len(fs.responses()))
			}
		})
	}
}

func TestProcessSendError(t *testing.T) {
	for _, c := range []struct {
		name      string
		err       error
		wantErr   bool
		wantCount float64
	}{
		{"unavailable", status.Error(codes.Unavailable, "transport is closing"), true, 1},
		{"eof", io.EOF, false, 0},
		{"canceled", status.Error(codes.Canceled, "context canceled"), false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := New(mustParse(t, semanticsYAML), Options{})
			fs := newFakeStream(t, nil, get("api.example.com", "").message())
			fs.SendErr = c.err
			fs.Lax = true
			err := srv.Process(fs)
			if (err != nil) != c.wantErr {
				t.Fatalf("Process = %v, want error %v", err, c.wantErr)
			}
			if v := testutil.ToFloat64(srv.m.errSend); v != c.wantCount {
				t.Errorf("send errors %v, want %v", v, c.wantCount)
			}
		})
	}
}

// In observability mode Envoy ignores responses and the proto asks the
// server to send none; the decision is still recorded.
func TestProcessObservabilityMode(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	srv := New(mustParse(t, semanticsYAML), Options{Registerer: reg})
	req := preflight("api.example.com", "https://app.example.com", "PUT").message()
	req.ObservabilityMode = true
	resp := defaultUpstream()
	resp.ObservabilityMode = true
	wantReplies(t, process(t, srv, nil, req, resp))
	wantCounted(t, reg, "web", "preflight_allowed", "", false)
	// Both messages are timed although no response is sent.
	if n := histogramCount(t, reg, MessageRequestHeaders) + histogramCount(t, reg, MessageResponseHeaders); n != 2 {
		t.Errorf("%d messages timed, want 2", n)
	}
}

// A server without a policy set governs nothing.
func TestProcessNilSet(t *testing.T) {
	srv := New(nil, Options{})
	wantReplies(t, process(t, srv, []string{"web"}, preflight("api.example.com", "https://app.example.com", "PUT").message(), defaultUpstream()),
		continueSkip(), continueResp())
	if srv.Policy() != nil {
		t.Error("Policy() != nil")
	}
}

// A stream finishes with the policy set it started with.
func TestProcessSwapDuringStream(t *testing.T) {
	const o = "https://app.example.com"
	setA := mustParse(t, `
policies:
  - name: a
    match: {hosts: [api.example.com]}
    allowed_origins: [https://app.example.com]
    allow_credentials: true
`)
	setB := mustParse(t, `
policies:
  - name: b
    match: {hosts: [api.example.com]}
    allowed_origins: [https://other.example.com]
`)
	reg := prometheus.NewPedanticRegistry()
	srv := New(setA, Options{Registerer: reg})
	fs := newFakeStream(t, nil, get("api.example.com", o).message(), defaultUpstream())
	fs.BeforeRecv = func(i int) {
		if i == 1 { // after request_headers was answered under A
			srv.Swap(setB)
		}
	}
	if err := srv.Process(fs); err != nil {
		t.Fatal(err)
	}
	var got []reply
	for _, r := range fs.responses() {
		got = append(got, summarize(r))
	}
	wantReplies(t, got, continueReq(), corsResp(acao(o), acac(), varyOrigin()))
	if srv.Policy() != setB {
		t.Error("Policy() is not the swapped-in set")
	}

	// Swapped before the stream's first message: the stream started
	// before, so A still governs it.
	fs = newFakeStream(t, nil, get("api.example.com", o).message(), defaultUpstream())
	fs.BeforeRecv = func(i int) {
		if i == 0 {
			srv.Swap(setB)
		}
	}
	srv.Swap(setA)
	if err := srv.Process(fs); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, r := range fs.responses() {
		got = append(got, summarize(r))
	}
	wantReplies(t, got, continueReq(), corsResp(acao(o), acac(), varyOrigin()))

	// The next stream uses B.
	wantReplies(t, process(t, srv, nil, get("api.example.com", o).message(), defaultUpstream()),
		continueReq(), corsResp(varyOrigin()))
	want := map[string]float64{"a/allowed": 2, "b/disallowed_origin": 1}
	if got := counterValues(t, reg, MetricRequests, "policy", "outcome"); !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", MetricRequests, got, want)
	}
	want = map[string]float64{"b/origin_not_allowed/enforce": 1}
	if got := counterValues(t, reg, MetricRejections, "policy", "reason", "mode"); !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", MetricRejections, got, want)
	}
}

// Streams run concurrently with swaps and share the metric cache (run with
// -race).
func TestProcessConcurrent(t *testing.T) {
	setA := mustParse(t, semanticsYAML)
	setB := mustParse(t, selectionYAML)
	reg := prometheus.NewPedanticRegistry()
	srv := New(setA, Options{Registerer: reg})
	const workers, streams = 4, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range streams {
				if w == 0 && i%10 == 0 {
					if i%20 == 0 {
						srv.Swap(setB)
					} else {
						srv.Swap(setA)
					}
				}
				fs := newFakeStream(t, nil, get("api.example.com", "https://app.example.com").message(), defaultUpstream())
				if err := srv.Process(fs); err != nil {
					t.Error(err)
					return
				}
				if len(fs.responses()) != 2 {
					t.Errorf("%d responses", len(fs.responses()))
				}
			}
		})
	}
	wg.Wait()
	if v := testutil.ToFloat64(srv.m.streams); v != workers*streams {
		t.Errorf("streams %v, want %d", v, workers*streams)
	}
	total := 0.0
	for _, v := range counterValues(t, reg, MetricRequests, "policy", "outcome") {
		total += v
	}
	if total != workers*streams {
		t.Errorf("decisions %v, want %d", total, workers*streams)
	}
}

// Metrics: names, types, labels from fixed sets, never the origin nor an
// unknown policy name; one request of every outcome.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	srv := New(mustParse(t, semanticsYAML), Options{Registerer: reg})
	const o, evil = "https://app.example.com", "https://evil-origin.example.net"
	process(t, srv, nil, get("api.example.com", o).message(), defaultUpstream())
	process(t, srv, nil, get("api.example.com", o).message(), defaultUpstream())
	process(t, srv, nil, get("api.example.com", evil).message(), defaultUpstream())
	process(t, srv, nil, get("api.example.com", "").message(), defaultUpstream())
	process(t, srv, nil, preflight("api.example.com", o, "PUT").message())
	process(t, srv, nil, preflight("api.example.com", evil, "PUT").message())
	process(t, srv, nil, preflight("api.example.com", o, "PURGE").message())
	process(t, srv, nil, preflight("fwd.example.com", evil, "PUT").message(), defaultUpstream())
	process(t, srv, nil, get("shadow.example.com", o).message(), defaultUpstream())
	process(t, srv, nil, preflight("shadow.example.com", evil, "PUT").message(), defaultUpstream())
	process(t, srv, nil, get("shadow.example.com", evil).message(), defaultUpstream())
	process(t, srv, []string{"no-such-policy-secret"}, get("api.example.com", o).message(), defaultUpstream())
	process(t, srv, nil, get("nowhere.example.com", o).message(), defaultUpstream())
	// A body message, timed as other (sent only when the filter's
	// processing_mode asks for bodies).
	process(t, srv, nil, get("api.example.com", o).message(), bodyMsg(false), defaultUpstream())

	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP corsproc_rejections_total Requests refused (preflight rejected or forwarded, origin not allowed, unknown policy), by policy ("" for an unknown policy), reason and mode (enforce, or shadow: recorded only).
# TYPE corsproc_rejections_total counter
corsproc_rejections_total{mode="enforce",policy="",reason="unknown_policy"} 1
corsproc_rejections_total{mode="enforce",policy="fwd",reason="origin_not_allowed"} 1
corsproc_rejections_total{mode="enforce",policy="web",reason="method_not_allowed"} 1
corsproc_rejections_total{mode="enforce",policy="web",reason="origin_not_allowed"} 2
corsproc_rejections_total{mode="shadow",policy="shadow",reason="origin_not_allowed"} 2
# HELP corsproc_requests_total Requests decided, by governing policy ("" for ungoverned and unknown_policy) and outcome: preflight_allowed, preflight_rejected, preflight_forwarded, allowed, disallowed_origin, non_cors, ungoverned, unknown_policy, and for shadow-mode policies shadow_would_allow or shadow_would_reject.
# TYPE corsproc_requests_total counter
corsproc_requests_total{outcome="allowed",policy="web"} 3
corsproc_requests_total{outcome="disallowed_origin",policy="web"} 1
corsproc_requests_total{outcome="non_cors",policy="web"} 1
corsproc_requests_total{outcome="preflight_allowed",policy="web"} 1
corsproc_requests_total{outcome="preflight_forwarded",policy="fwd"} 1
corsproc_requests_total{outcome="preflight_rejected",policy="web"} 2
corsproc_requests_total{outcome="shadow_would_allow",policy="shadow"} 1
corsproc_requests_total{outcome="shadow_would_reject",policy="shadow"} 2
corsproc_requests_total{outcome="ungoverned",policy=""} 1
corsproc_requests_total{outcome="unknown_policy",policy=""} 1
# HELP corsproc_stream_errors_total ext_proc streams ended with an error, by kind: unknown_message (a message with no known request type, answered INVALID_ARGUMENT), recv, send.
# TYPE corsproc_stream_errors_total counter
corsproc_stream_errors_total{kind="recv"} 0
corsproc_stream_errors_total{kind="send"} 0
corsproc_stream_errors_total{kind="unknown_message"} 0
# HELP corsproc_streams_total ext_proc streams opened by Envoy (one per HTTP request per filter).
# TYPE corsproc_streams_total counter
corsproc_streams_total 14
# HELP corsproc_unknown_policy_total Requests whose x-corsproc-policy stream metadata named no policy of the active set (or several); corsproc governs them and allows nothing: preflights get 403, other responses lose the upstream's CORS headers.
# TYPE corsproc_unknown_policy_total counter
corsproc_unknown_policy_total 1
`), MetricRejections, MetricRequests, MetricStreamErrors, MetricStreams, MetricUnknownPolicy); err != nil {
		t.Error(err)
	}
	// Every outcome label value was seen, and none other.
	seen := map[string]bool{}
	for k := range counterValues(t, reg, MetricRequests, "policy", "outcome") {
		seen[k[strings.Index(k, "/")+1:]] = true
	}
	for _, o := range RequestOutcomes() {
		if !seen[o] {
			t.Errorf("outcome %q not counted", o)
		}
		delete(seen, o)
	}
	if len(seen) > 0 {
		t.Errorf("outcomes outside the fixed set: %v", seen)
	}

	// The histogram: one series per message kind, buckets from 10µs, one
	// sample per message. 14 request_headers; 11 response_headers (the three
	// preflights answered with an immediate response get none); one body.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != MetricProcessing {
			continue
		}
		if typ := mf.GetType().String(); typ != "HISTOGRAM" {
			t.Fatalf("%s is a %s, want a histogram", MetricProcessing, typ)
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "message" {
				t.Errorf("%s labels %v, want message only", MetricProcessing, m.GetLabel())
				continue
			}
			h := m.GetHistogram()
			counts[m.GetLabel()[0].GetValue()] = h.GetSampleCount()
			if b := h.GetBucket(); len(b) == 0 || b[0].GetUpperBound() != 10e-6 {
				t.Errorf("%s first bucket %v, want 10µs", MetricProcessing, b)
			}
			if h.GetSampleCount() > 0 && h.GetSampleSum() <= 0 {
				t.Errorf("%s{message=%q} sum %v", MetricProcessing, m.GetLabel()[0].GetValue(), h.GetSampleSum())
			}
		}
	}
	if want := map[string]uint64{MessageRequestHeaders: 14, MessageResponseHeaders: 11, MessageOther: 1}; !reflect.DeepEqual(counts, want) {
		t.Errorf("%s counts %v, want %v", MetricProcessing, counts, want)
	}

	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	// Label values never carry request input.
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "example") || strings.Contains(l.GetValue(), "secret") {
					t.Errorf("%s label %s=%q carries request input", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// Two servers on one registry share the collectors instead of panicking.
func TestMetricsTwoServersOneRegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	set := mustParse(t, semanticsYAML)
	a := New(set, Options{Registerer: reg})
	b := New(set, Options{Registerer: reg})
	process(t, a, nil, get("api.example.com", "").message(), defaultUpstream())
	process(t, b, nil, get("api.example.com", "").message(), defaultUpstream())
	if n := testutil.CollectAndCount(reg, MetricStreams); n != 1 {
		t.Fatalf("%d stream series", n)
	}
	if v := testutil.ToFloat64(a.m.streams); v != 2 {
		t.Errorf("streams %v, want 2", v)
	}
}

// Shadow decisions and every other decision are logged at debug; unknown
// policies at warn.
func TestLogging(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := New(mustParse(t, semanticsYAML), Options{Logger: log})
	process(t, srv, nil, preflight("shadow.example.com", "https://evil.com", "PUT").message(), defaultUpstream())
	for _, want := range []string{"level=DEBUG", "policy=shadow", "outcome=preflight_rejected", "reason=origin_not_allowed", "mode=shadow"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q lacks %q", buf.String(), want)
		}
	}
	// The origin is the client's: only the line of a refusal names it
	// (TestRefusalLog), so that a person can see what was refused.
	for _, line := range logLines(buf.String(), "cors decision") {
		if strings.Contains(line, "evil.com") {
			t.Errorf("the decision line carries the origin: %q", line)
		}
	}

	buf.Reset()
	process(t, srv, []string{"typo"}, get("api.example.com", "https://app.example.com").message(), defaultUpstream())
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "name=typo") {
		t.Errorf("unknown policy not logged at warn with its name: %q", buf.String())
	}

	// Info level: no per-decision line.
	buf.Reset()
	srv = New(mustParse(t, semanticsYAML), Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	process(t, srv, nil, get("api.example.com", "https://app.example.com").message(), defaultUpstream())
	if buf.Len() != 0 {
		t.Errorf("logged at info: %q", buf.String())
	}
}
