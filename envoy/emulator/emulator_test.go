package emulator_test

// One test per Envoy behaviour the emulator reproduces (see
// docs/extproc-protocol.md), each against a scripted processor.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/corsproc/corsproc/envoy/emulator"
)

func wantStats(t *testing.T, p *emulator.Proxy, want emulator.Stats) {
	t.Helper()
	if got := p.Stats(); got != want {
		t.Errorf("Stats:\n got %+v\nwant %+v", got, want)
	}
}

func wantStatus(t *testing.T, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Errorf("status %d, want %d", resp.StatusCode, want)
	}
}

func wantLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// Two requests, two streams; each stream carries the request and the
// response headers of its request.
func TestOneStreamPerRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{}, answer(
		// A HeadersResponse without a CommonResponse continues too.
		&extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}},
		continueResponse(nil)))
	for range 2 {
		resp, body, e := h.get("/")
		wantStatus(t, resp, 200)
		if body != "upstream" || e.Details != "via_upstream" || e.Messages != 2 {
			t.Errorf("body %q, log %+v", body, e)
		}
	}
	for _, s := range h.streams(2) {
		if k := kinds(s.messages()); k != "request_headers,response_headers" {
			t.Errorf("stream messages %s, want request_headers,response_headers", k)
		}
	}
	h.noMoreStreams(2)
	wantStats(t, h.proxy, emulator.Stats{Requests: 2, Streams: 2, MessagesSent: 4, ResponsesReceived: 4, UpstreamRequests: 2})
}

// The stream is opened on the first message Envoy needs to send: with the
// request phase skipped, after the upstream answered; with both skipped,
// never.
func TestStreamOpenedOnFirstMessage(t *testing.T) {
	t.Parallel()
	var h *harness
	upstreamCalls := make(chan int, 1)
	h = newHarness(t, emulator.Config{ProcessingMode: emulator.ProcessingMode{RequestHeaderMode: emulator.HeaderModeSkip}},
		func(s *procStream) error {
			upstreamCalls <- len(h.up.requests())
			return answer(continueResponse(nil))(s)
		})
	resp, _, _ := h.get("/")
	wantStatus(t, resp, 200)
	if k := kinds(h.stream().messages()); k != "response_headers" {
		t.Errorf("messages %s, want response_headers only", k)
	}
	if n := <-upstreamCalls; n != 1 {
		t.Errorf("the stream opened when the upstream had seen %d requests, want 1: it opens on the first message", n)
	}
	wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, ResponsesReceived: 1, UpstreamRequests: 1})

	h2 := newHarness(t, emulator.Config{ProcessingMode: emulator.ProcessingMode{
		RequestHeaderMode: emulator.HeaderModeSkip, ResponseHeaderMode: emulator.HeaderModeSkip,
	}}, answer())
	resp, _, _ = h2.get("/")
	wantStatus(t, resp, 200)
	h2.noMoreStreams(0)
	wantStats(t, h2.proxy, emulator.Stats{Requests: 1, UpstreamRequests: 1})
}

// request_headers: pseudo-headers first, lower-cased keys, one entry per
// value, raw_value only, connection-specific headers removed,
// x-forwarded-proto and x-request-id added as the connection manager does.
func TestRequestHeadersMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{}, answer(continueRequest(nil), continueResponse(nil)))
	h.do(newRequest("GET", "/items?q=1&b=2", "",
		"Origin: https://app.example.com",
		"X-Multi: a", "X-Multi: b",
		"Connection: keep-alive", "Keep-Alive: timeout=5", "Upgrade: h2c", "Proxy-Connection: x",
		"TE: trailers",
		"User-Agent: test",
		"X-Request-Id: rid-1"))
	m := h.stream().messages()[0]
	hh := requestHeadersOf(t, m)
	wantLines(t, "request_headers", headerLines(t, hh), []string{
		":method: GET",
		":path: /items?q=1&b=2",
		":authority: api.example.com",
		":scheme: http",
		"origin: https://app.example.com",
		"te: trailers",
		"user-agent: test",
		"x-multi: a",
		"x-multi: b",
		"x-request-id: rid-1",
		"x-forwarded-proto: http",
	})
	if !hh.EndOfStream {
		t.Error("end_of_stream false for a request without a body")
	}
	// Filter::addDynamicMetadata always sets metadata_context, empty
	// without forwarding namespaces; Filter::encodeProtocolConfig puts an
	// all-default protocol_config on the first message (1.34+).
	if m.ObservabilityMode || m.MetadataContext == nil || !proto.Equal(m.MetadataContext, &corev3.Metadata{}) ||
		m.ProtocolConfig == nil || !proto.Equal(m.ProtocolConfig, &extprocv3.ProtocolConfiguration{}) {
		t.Errorf("fields of %v: want an empty metadata_context and protocol_config, nothing else", m)
	}
}

// protocol_config travels on the first message of a stream only, since
// 1.34; metadata_context on every message.
func TestProtocolConfigByRelease(t *testing.T) {
	t.Parallel()
	for _, rel := range emulator.Releases() {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, emulator.Config{Release: rel}, answer(continueRequest(nil), continueResponse(nil)))
			h.get("/")
			ms := h.stream().messages()
			if len(ms) != 2 {
				t.Fatalf("messages %s", kinds(ms))
			}
			if got := ms[0].ProtocolConfig != nil; got != rel.SendsProtocolConfig {
				t.Errorf("protocol_config on request_headers: %v, want %v", got, rel.SendsProtocolConfig)
			}
			if ms[1].ProtocolConfig != nil {
				t.Error("protocol_config on the second message")
			}
			for _, m := range ms {
				if m.MetadataContext == nil {
					t.Errorf("no metadata_context on %s", kinds([]*extprocv3.ProcessingRequest{m}))
				}
			}
		})
	}
}

// end_of_stream is true exactly when the request has no body.
func TestRequestHeadersEndOfStream(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{}, answer(continueRequest(nil), continueResponse(nil)))
	h.do(newRequest("POST", "/submit", "abc", "Content-Type: text/plain"))
	hh := requestHeadersOf(t, h.stream().messages()[0])
	if hh.EndOfStream {
		t.Error("end_of_stream true for a request with a body")
	}
	lines := headerLines(t, hh)
	if !slices.Contains(lines, "content-length: 3") {
		t.Errorf("no content-length in %q", lines)
	}
	if got := h.up.requests(); len(got) != 1 || got[0].Body != "abc" {
		t.Errorf("upstream got %+v, want the body abc", got)
	}

	h.do(newRequest("POST", "/submit", ""))
	if hh := requestHeadersOf(t, h.stream().messages()[0]); !hh.EndOfStream {
		t.Error("end_of_stream false for a POST without a body")
	}
}

// response_headers: :status first, then the upstream's headers, one entry
// per value; end_of_stream when the response has no body.
func TestResponseHeadersMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{}, answer(continueRequest(nil), continueResponse(nil)))
	h.up.setRespond(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		w.Header().Add("X-B", "1")
		w.Header().Add("X-A", "1")
		w.Header().Add("X-A", "2")
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/empty" {
			w.WriteHeader(204)
			return
		}
		w.WriteHeader(201)
		w.Write([]byte("hi"))
	})
	resp, body, _ := h.get("/")
	wantStatus(t, resp, 201)
	if body != "hi" {
		t.Errorf("body %q", body)
	}
	m := h.stream().messages()[1]
	hh := responseHeadersOf(t, m)
	wantLines(t, "response_headers", headerLines(t, hh), []string{
		":status: 201", "content-length: 2", "content-type: text/plain", "x-a: 1", "x-a: 2", "x-b: 1",
	})
	if hh.EndOfStream {
		t.Error("end_of_stream true for a response with a body")
	}
	if m.Attributes != nil {
		t.Errorf("attributes on a response message: %v", m.Attributes)
	}

	resp, _, _ = h.get("/empty")
	wantStatus(t, resp, 204)
	if hh := responseHeadersOf(t, h.stream().messages()[1]); !hh.EndOfStream {
		t.Error("end_of_stream false for a 204")
	}
}

// xds.route_name travels in attributes["envoy.filters.http.ext_proc"] on
// the first request-direction message only; it is omitted when not asked
// for or when the route has no name.
func TestRouteNameAttribute(t *testing.T) {
	t.Parallel()
	routes := []emulator.Route{{Name: "storefront", PathPrefix: "/shop/"}, {PathPrefix: "/anon/"}}
	h := newHarness(t, emulator.Config{Routes: routes, RequestAttributes: []string{"xds.route_name"}},
		answer(continueRequest(nil), continueResponse(nil)))
	h.get("/shop/cart")
	ms := h.stream().messages()
	want := map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{
		"xds.route_name": structpb.NewStringValue("storefront"),
	}}}
	got := ms[0].Attributes
	if len(got) != 1 || !proto.Equal(got["envoy.filters.http.ext_proc"], want["envoy.filters.http.ext_proc"]) {
		t.Errorf("request_headers attributes %v, want %v", got, want)
	}
	if ms[1].Attributes != nil {
		t.Errorf("response_headers carries attributes %v: Envoy sends them on the first request message only", ms[1].Attributes)
	}

	// A route without a name has the name "": the CEL value exists.
	h.get("/anon/x")
	want = map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{
		"xds.route_name": structpb.NewStringValue(""),
	}}}
	if a := h.stream().messages()[0].Attributes; len(a) != 1 || !proto.Equal(a["envoy.filters.http.ext_proc"], want["envoy.filters.http.ext_proc"]) {
		t.Errorf("a route without a name sent attributes %v, want %v", a, want)
	}

	// No route at all: xds.route_name has no value and is left out of the
	// Struct, which is still sent.
	h.get("/nowhere")
	want = map[string]*structpb.Struct{"envoy.filters.http.ext_proc": {}}
	if a := h.stream().messages()[0].Attributes; len(a) != 1 || !proto.Equal(a["envoy.filters.http.ext_proc"], want["envoy.filters.http.ext_proc"]) {
		t.Errorf("an unrouted request sent attributes %v, want an empty Struct", a)
	}

	h2 := newHarness(t, emulator.Config{Routes: routes}, answer(continueRequest(nil), continueResponse(nil)))
	h2.get("/shop/cart")
	if a := h2.stream().messages()[0].Attributes; a != nil {
		t.Errorf("attributes %v without request_attributes", a)
	}
}

// The route's grpc_initial_metadata is the stream's metadata.
func TestGRPCInitialMetadata(t *testing.T) {
	t.Parallel()
	routes := []emulator.Route{
		{Name: "partners", PathPrefix: "/partners/", GRPCInitialMetadata: []emulator.Metadata{
			{Key: "x-corsproc-policy", Value: "partners"}, {Key: "X-Extra", Value: "1"},
		}},
		{Name: "plain"},
	}
	h := newHarness(t, emulator.Config{Routes: routes}, answer(continueRequest(nil), continueResponse(nil)))
	h.get("/partners/x")
	md := h.stream().md
	if got := md.Get("x-corsproc-policy"); !slices.Equal(got, []string{"partners"}) {
		t.Errorf("x-corsproc-policy metadata %q, want [partners]", got)
	}
	if got := md.Get("x-extra"); !slices.Equal(got, []string{"1"}) {
		t.Errorf("x-extra metadata %q, want [1]", got)
	}
	h.get("/other")
	if got := h.stream().md.Get("x-corsproc-policy"); got != nil {
		t.Errorf("a route without metadata sent x-corsproc-policy %q", got)
	}
}

// recordingConn records how the emulator opens and ends its streams.
type recordingConn struct {
	grpc.ClientConnInterface
	mu       sync.Mutex
	events   []string
	canceled chan struct{}
}

func (c *recordingConn) record(e string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
}

func (c *recordingConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := c.ClientConnInterface.NewStream(ctx, desc, method, opts...)
	if err != nil {
		return nil, err
	}
	c.record("open " + method)
	go func() {
		<-ctx.Done()
		c.record("cancel")
		close(c.canceled)
	}()
	return &recordingStream{ClientStream: cs, c: c}, nil
}

type recordingStream struct {
	grpc.ClientStream
	c *recordingConn
}

func (s *recordingStream) CloseSend() error {
	s.c.record("CloseSend")
	return s.ClientStream.CloseSend()
}

// At the end of each request Envoy half-closes the stream, then resets it.
func TestStreamEndsWithHalfCloseThenReset(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{}, answer(continueRequest(nil), continueResponse(nil)))
	rc := &recordingConn{ClientConnInterface: h.conn, canceled: make(chan struct{})}
	p, err := emulator.New(emulator.Config{Upstream: h.up.srv.URL, Routes: []emulator.Route{{}}}, rc)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, newRequest("GET", "/", ""))
	wantStatus(t, rec.Result(), 200)
	select {
	case <-rc.canceled:
	case <-time.After(waitLimit):
		t.Fatal("the stream's context was never cancelled")
	}
	rc.mu.Lock()
	wantLines(t, "stream events", rc.events, []string{
		"open /envoy.service.ext_proc.v3.ExternalProcessor/Process", "CloseSend", "cancel",
	})
	rc.mu.Unlock()
	if err := h.stream().endErr(); !isStreamEnd(err) {
		t.Errorf("the processor saw the stream end with %v, want io.EOF or Canceled", err)
	}
}

// mode_override{response_header_mode: SKIP} on the request_headers answer
// saves the response phase, but only with allow_mode_override.
func TestModeOverride(t *testing.T) {
	t.Parallel()
	t.Run("allowed", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{AllowModeOverride: true}, answer(skipResponsePhase(continueRequest(nil))))
		resp, _, e := h.get("/")
		wantStatus(t, resp, 200)
		if k := kinds(h.stream().messages()); k != "request_headers" {
			t.Errorf("messages %s, want request_headers only", k)
		}
		if e.Messages != 1 {
			t.Errorf("log says %d messages, want 1", e.Messages)
		}
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, ResponsesReceived: 1, ModeOverrides: 1, UpstreamRequests: 1})
	})
	t.Run("not_allowed", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{}, answer(skipResponsePhase(continueRequest(nil)), continueResponse(nil)))
		h.get("/")
		if k := kinds(h.stream().messages()); k != "request_headers,response_headers" {
			t.Errorf("messages %s: the override must be ignored without allow_mode_override", k)
		}
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 2, ResponsesReceived: 2, UpstreamRequests: 1})
	})
	// An override whose header modes are left DEFAULT: before 1.34 it
	// replaced the whole mode and DEFAULT meant SEND, turning the response
	// phase on though the filter said SKIP; since 1.34 DEFAULT keeps the
	// configured mode (effectiveModeOverride, ext_proc.cc).
	for _, rel := range emulator.Releases() {
		t.Run("default/"+rel.Name, func(t *testing.T) {
			t.Parallel()
			r := continueRequest(nil)
			r.ModeOverride = &extprocfilterv3.ProcessingMode{}
			h := newHarness(t, emulator.Config{
				Release:           rel,
				AllowModeOverride: true,
				ProcessingMode:    emulator.ProcessingMode{ResponseHeaderMode: emulator.HeaderModeSkip},
			}, answer(r, continueResponse(nil)))
			h.get("/")
			want := "request_headers,response_headers"
			if rel.ModeOverrideKeepsDefault {
				want = "request_headers"
			}
			if k := kinds(h.stream().messages()); k != want {
				t.Errorf("messages %s, want %s", k, want)
			}
		})
	}
	// allowed_override_modes: an override whose resulting mode is not
	// listed is ignored. Since 1.34 request_header_mode is not compared.
	for _, rel := range emulator.Releases() {
		t.Run("allowed_override_modes/"+rel.Name, func(t *testing.T) {
			t.Parallel()
			cfg := emulator.Config{
				Release:           rel,
				AllowModeOverride: true,
				AllowedOverrideModes: []emulator.ProcessingMode{
					{RequestHeaderMode: emulator.HeaderModeSend, ResponseHeaderMode: emulator.HeaderModeSkip},
				},
			}
			// SKIP with request_header_mode left DEFAULT: the resulting
			// mode is {DEFAULT→configured DEFAULT, SKIP} since 1.34, which
			// matches ignoring request_header_mode; before, {DEFAULT,
			// SKIP}, which does not match {SEND, SKIP}.
			h := newHarness(t, cfg, answer(skipResponsePhase(continueRequest(nil)), continueResponse(nil)))
			h.get("/")
			want := "request_headers,response_headers"
			if rel.ModeOverrideKeepsDefault {
				want = "request_headers"
			}
			if k := kinds(h.stream().messages()); k != want {
				t.Errorf("messages %s, want %s", k, want)
			}
			// An override not in the list at all is ignored everywhere.
			cfg.AllowedOverrideModes = []emulator.ProcessingMode{{ResponseHeaderMode: emulator.HeaderModeSend}}
			h2 := newHarness(t, cfg, answer(skipResponsePhase(continueRequest(nil)), continueResponse(nil)))
			h2.get("/")
			if k := kinds(h2.stream().messages()); k != "request_headers,response_headers" {
				t.Errorf("messages %s: an override not allowed was honoured", k)
			}
		})
	}
	// A mode_override on the answer to response_headers has nothing left to
	// change, and one on an immediate response is not a headers answer.
	t.Run("on_response_headers", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{AllowModeOverride: true},
			answer(continueRequest(nil), skipResponsePhase(continueResponse(nil))))
		resp, _, _ := h.get("/")
		wantStatus(t, resp, 200)
		if k := kinds(h.stream().messages()); k != "request_headers,response_headers" {
			t.Errorf("messages %s", k)
		}
	})
}

// remove_headers is applied before set_headers.
func TestMutationRemoveThenSet(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{}, answer(
		continueRequest(mutation([]string{"x-a"}, set("x-a", "new"))),
		continueResponse(mutation([]string{"x-b"}, set("x-b", "new")))))
	h.up.setRespond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("X-B", "old1")
		w.Header().Add("X-B", "old2")
	})
	resp, _, _ := h.do(newRequest("GET", "/", "", "X-A: old1", "X-A: old2"))
	if got := h.up.requests()[0].Header.Values("X-A"); !slices.Equal(got, []string{"new"}) {
		t.Errorf("upstream X-A %q, want [new]", got)
	}
	if got := resp.Header.Values("X-B"); !slices.Equal(got, []string{"new"}) {
		t.Errorf("response X-B %q, want [new]", got)
	}
}

// Only the deprecated append BoolValue counts: unset or false replaces every
// value, true adds one; append_action is ignored. Envoy's
// MutationUtils::applyHeaderMutations (source/extensions/filters/http/
// ext_proc/mutation_utils.cc) reads PROTOBUF_GET_WRAPPED_OR_DEFAULT(sh,
// append, false) and never append_action, in every release corsproc
// supports. corsproc relies on it (processor/render.go). Appending to a
// header Envoy keeps inline (Vary) joins the values with "," on one line.
func TestMutationAppendField(t *testing.T) {
	t.Parallel()
	appendFalse := set("x-s", "two")
	appendFalse.Append = wrapperspb.Bool(false)
	addWithOverwriteAction := add("x-t", "two")
	addWithOverwriteAction.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	replaceWithAddIfAbsent := set("x-w", "two")
	replaceWithAddIfAbsent.AppendAction = corev3.HeaderValueOption_ADD_IF_ABSENT
	newWithAddIfAbsent := set("x-u", "new")
	newWithAddIfAbsent.AppendAction = corev3.HeaderValueOption_ADD_IF_ABSENT

	h := newHarness(t, emulator.Config{}, answer(continueRequest(nil), continueResponse(mutation(nil,
		set("x-r", "only"), appendFalse, add("vary", "Origin"), addWithOverwriteAction, replaceWithAddIfAbsent, newWithAddIfAbsent))))
	h.up.setRespond(func(w http.ResponseWriter, r *http.Request) {
		for _, kv := range [][2]string{{"X-R", "1"}, {"X-R", "2"}, {"X-S", "1"}, {"X-T", "1"}, {"X-W", "1"}, {"Vary", "Accept-Encoding"}} {
			w.Header().Add(kv[0], kv[1])
		}
	})
	resp, _, _ := h.get("/")
	for k, want := range map[string][]string{
		"X-R":  {"only"},
		"X-S":  {"two"},
		"Vary": {"Accept-Encoding,Origin"},
		"X-T":  {"1", "two"},
		"X-W":  {"two"},
		"X-U":  {"new"},
	} {
		if got := resp.Header.Values(k); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// The default mutation rules silently ignore changes to host, :authority,
// :method, :scheme and x-envoy-*, and removal of any ':' header or host;
// :path may change.
func TestMutationRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{}, answer(
		continueRequest(mutation(
			[]string{":path", "host", ":authority", "x-envoy-keep"},
			set("host", "evil.example"), set(":authority", "evil.example"), set(":method", "DELETE"),
			set(":scheme", "https"), set("x-envoy-foo", "1"), add("x-envoy-keep", "2"),
			set(":path", "/rewritten?x=1"), set("x-ok", "1"))),
		continueResponse(mutation([]string{":status", "x-envoy-upstream"}, set(":status", "299"), set("x-envoy-bar", "1"))),
	))
	h.up.setRespond(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Envoy-Upstream", "kept") })
	resp, _, _ := h.do(newRequest("GET", "/orig", "", "X-Envoy-Keep: 1"))
	up := h.up.requests()[0]
	if up.Method != "GET" || up.RequestURI != "/rewritten?x=1" || up.Host != "api.example.com" {
		t.Errorf("upstream saw %s %s host %s, want GET /rewritten?x=1 host api.example.com", up.Method, up.RequestURI, up.Host)
	}
	if got := up.Header.Values("X-Envoy-Keep"); !slices.Equal(got, []string{"1"}) {
		t.Errorf("upstream X-Envoy-Keep %q, want [1]", got)
	}
	if up.Header.Get("X-Envoy-Foo") != "" || up.Header.Get("X-Ok") != "1" {
		t.Errorf("upstream headers %v", up.Header)
	}
	wantStatus(t, resp, 299)
	if resp.Header.Get("X-Envoy-Upstream") != "kept" || resp.Header.Get("X-Envoy-Bar") != "" {
		t.Errorf("response headers %v", resp.Header)
	}
	// Request: 4 removals and 6 sets refused; response: 2 removals, 1 set.
	if got := h.proxy.Stats().RejectedMutations; got != 13 {
		t.Errorf("RejectedMutations = %d, want 13", got)
	}
}

// A set header carrying only value, not raw_value, gets an empty value:
// Envoy reads raw_value only.
func TestMutationValueOnly(t *testing.T) {
	t.Parallel()
	valueOnly := func(k string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: "ignored"}}
	}
	h := newHarness(t, emulator.Config{}, answer(
		continueRequest(mutation(nil, valueOnly("x-req"))),
		continueResponse(mutation(nil, valueOnly("x-resp")))))
	resp, _, _ := h.get("/")
	if got, ok := h.up.requests()[0].Header["X-Req"]; !ok || !slices.Equal(got, []string{""}) {
		t.Errorf("upstream X-Req %q (present %v), want one empty value", got, ok)
	}
	if got, ok := resp.Header["X-Resp"]; !ok || !slices.Equal(got, []string{""}) {
		t.Errorf("response X-Resp %q (present %v), want one empty value", got, ok)
	}
	wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 2, ResponsesReceived: 2, UpstreamRequests: 1})
}

// A HeaderValue with both value and raw_value is refused: the request fails
// with 500, with or without failure_mode_allow (a bad answer is not an
// unavailable processor).
func TestMutationBothValueAndRawValue(t *testing.T) {
	t.Parallel()
	both := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-both", Value: "a", RawValue: []byte("a")}}
	for _, fma := range []bool{false, true} {
		t.Run("request/failure_mode_allow="+strconv.FormatBool(fma), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, emulator.Config{FailureModeAllow: fma}, answer(continueRequest(mutation(nil, set("x-first", "1"), both))))
			resp, _, e := h.get("/")
			wantStatus(t, resp, 500)
			if !strings.HasPrefix(e.Details, "ext_proc_error_invalid_header_mutation") || strings.ContainsAny(e.Details, " \t") {
				t.Errorf("details %q", e.Details)
			}
			if n := len(h.up.requests()); n != 0 {
				t.Errorf("upstream saw %d requests", n)
			}
			if k := kinds(h.stream().messages()); k != "request_headers" {
				t.Errorf("messages %s", k)
			}
			// Envoy counts the refused entry in rejected_header_mutations
			// too.
			wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, ResponsesReceived: 1, InvalidMutations: 1, RejectedMutations: 1})
		})
	}
	t.Run("response", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{FailureModeAllow: true}, answer(continueRequest(nil), continueResponse(mutation(nil, both))))
		resp, body, _ := h.get("/")
		wantStatus(t, resp, 500)
		if body == "upstream" {
			t.Error("the upstream body went downstream")
		}
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 2, ResponsesReceived: 2, InvalidMutations: 1, RejectedMutations: 1, UpstreamRequests: 1})
	})
	t.Run("immediate_response", func(t *testing.T) {
		t.Parallel()
		// In an immediate response Envoy only logs the refusal: the reply
		// goes out with the changes made before the bad entry.
		h := newHarness(t, emulator.Config{}, answer(immediate(403, mutation(nil, set("x-first", "1"), both, set("x-after", "1")), "", "denied")))
		resp, _, _ := h.get("/")
		wantStatus(t, resp, 403)
		if resp.Header.Get("X-First") != "1" || resp.Header.Get("X-After") != "" || resp.Header.Get("X-Both") != "" {
			t.Errorf("headers %v, want X-First only", resp.Header)
		}
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, ResponsesReceived: 1, ImmediateResponses: 1, InvalidMutations: 1, RejectedMutations: 1})
	})
}

// An immediate response ends processing: a local reply with its status,
// headers, body and details; the upstream never sees the request and no
// response_headers message follows.
func TestImmediateResponse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{}, answer(immediate(403,
		mutation(nil, set("x-i", "1"), set("content-type", "application/problem+json")), `{"denied":true}`, "cors preflight\trejected")))
	resp, body, e := h.get("/")
	wantStatus(t, resp, 403)
	if body != `{"denied":true}` || resp.Header.Get("X-I") != "1" || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("reply %v %q", resp.Header, body)
	}
	if e.Details != "cors_preflight_rejected" || e.Upstream {
		t.Errorf("log %+v: want details with whitespace replaced, no upstream", e)
	}
	if k := kinds(h.stream().messages()); k != "request_headers" {
		t.Errorf("messages %s, want request_headers only", k)
	}
	if n := len(h.up.requests()); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}
	wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, ResponsesReceived: 1, ImmediateResponses: 1})
}

// Without headers, the body is text/plain; a status below 200 (or none)
// becomes 200.
func TestImmediateResponseStatusAndDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code, want int
	}{{-1, 200}, {0, 200}, {100, 200}, {199, 200}, {200, 200}, {204, 204}, {418, 418}, {503, 503}} {
		h := newHarness(t, emulator.Config{}, answer(immediate(tc.code, nil, "text", "")))
		resp, body, _ := h.get("/")
		if resp.StatusCode != tc.want {
			t.Errorf("immediate status %d: sent %d, want %d", tc.code, resp.StatusCode, tc.want)
		}
		if tc.want != 204 && (body != "text" || resp.Header.Get("Content-Type") != "text/plain") {
			t.Errorf("immediate status %d: body %q content-type %q", tc.code, body, resp.Header.Get("Content-Type"))
		}
	}
}

// An immediate response to response_headers replaces the upstream response.
func TestImmediateResponseInResponsePhase(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{}, answer(continueRequest(nil), immediate(502, nil, "", "replaced")))
	resp, body, e := h.get("/")
	wantStatus(t, resp, 502)
	if body != "" || e.Details != "replaced" {
		t.Errorf("body %q details %q", body, e.Details)
	}
	wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 2, ResponsesReceived: 2, ImmediateResponses: 1, UpstreamRequests: 1})
}

// A response of the wrong type is spurious: 500, or continue untouched with
// failure_mode_allow.
func TestSpuriousResponse(t *testing.T) {
	t.Parallel()
	t.Run("request_phase", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{}, answer(continueResponse(mutation(nil, set("x-a", "1")))))
		resp, _, e := h.get("/")
		wantStatus(t, resp, 500)
		if !strings.Contains(e.Details, "spurious") {
			t.Errorf("details %q", e.Details)
		}
		if n := len(h.up.requests()); n != 0 {
			t.Errorf("upstream saw %d requests", n)
		}
		h.stream()
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, SpuriousResponses: 1})
	})
	t.Run("request_phase/failure_mode_allow", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{FailureModeAllow: true}, answer(continueResponse(mutation(nil, set("x-a", "1")))))
		resp, body, _ := h.get("/")
		wantStatus(t, resp, 200)
		if body != "upstream" || resp.Header.Get("X-A") != "" {
			t.Errorf("reply %v %q, want the upstream's, untouched", resp.Header, body)
		}
		// Envoy ignores the processor for the rest of the request: no
		// response_headers message.
		if k := kinds(h.stream().messages()); k != "request_headers" {
			t.Errorf("messages %s", k)
		}
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, SpuriousResponses: 1, FailOpen: 1, UpstreamRequests: 1})
	})
	t.Run("response_phase", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{}, answer(continueRequest(nil), continueRequest(nil)))
		resp, body, _ := h.get("/")
		wantStatus(t, resp, 500)
		if body == "upstream" {
			t.Error("the upstream body went downstream")
		}
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 2, ResponsesReceived: 1, SpuriousResponses: 1, UpstreamRequests: 1})
	})
	t.Run("no_response_case", func(t *testing.T) {
		t.Parallel()
		// A standalone mode_override: its only use in Envoy is switching
		// bodies to FULL_DUPLEX_STREAMED, which the emulator does not do.
		// Envoy applies the override (before it looks at the response
		// case), then finds no response case: spurious.
		h := newHarness(t, emulator.Config{AllowModeOverride: true}, answer(&extprocv3.ProcessingResponse{
			ModeOverride: &extprocfilterv3.ProcessingMode{ResponseHeaderMode: extprocfilterv3.ProcessingMode_SKIP},
		}))
		resp, _, _ := h.get("/")
		wantStatus(t, resp, 500)
		if got := h.proxy.Stats(); got.SpuriousResponses != 1 || got.ModeOverrides != 1 {
			t.Errorf("stats %+v", got)
		}
	})
	// Before 1.35 (ext_proc_fail_close_spurious_resp) a spurious response
	// made Envoy ignore the processor for the rest of the request and go
	// on, whatever failure_mode_allow said.
	for _, rel := range emulator.Releases() {
		t.Run("release/"+rel.Name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, emulator.Config{Release: rel}, answer(continueResponse(mutation(nil, set("x-a", "1")))))
			resp, body, _ := h.get("/")
			if rel.SpuriousFailsClosed {
				wantStatus(t, resp, 500)
			} else if resp.StatusCode != 200 || body != "upstream" {
				t.Errorf("%d %q, want the upstream's answer", resp.StatusCode, body)
			}
			if k := kinds(h.stream().messages()); k != "request_headers" {
				t.Errorf("messages %s", k)
			}
		})
	}
}

// No answer within message_timeout: 504, or continue with
// failure_mode_allow.
func TestMessageTimeout(t *testing.T) {
	t.Parallel()
	stall := func(s *procStream) error {
		s.Recv()
		s.Stall()
		return nil
	}
	// The timer covers opening the stream and sending the message too: long
	// enough for both on a loaded machine under the race detector, so that
	// only the stalled answer can run it out.
	cfg := emulator.Config{MessageTimeout: 500 * time.Millisecond}
	t.Run("request_phase", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, cfg, stall)
		resp, _, e := h.get("/")
		wantStatus(t, resp, 504)
		if e.Details != "ext_proc_error_per-message_timeout_exceeded" {
			t.Errorf("details %q", e.Details)
		}
		if n := len(h.up.requests()); n != 0 {
			t.Errorf("upstream saw %d requests", n)
		}
		// Envoy resets the stream when it gives up: the stalled processor
		// is released by the reset, not by the end of the test.
		h.stream()
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, Timeouts: 1})
	})
	t.Run("request_phase/failure_mode_allow", func(t *testing.T) {
		t.Parallel()
		cfg := cfg
		cfg.FailureModeAllow = true
		h := newHarness(t, cfg, stall)
		resp, body, _ := h.get("/")
		wantStatus(t, resp, 200)
		if body != "upstream" {
			t.Errorf("body %q", body)
		}
		h.stream()
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, Timeouts: 1, FailOpen: 1, UpstreamRequests: 1})
	})
	t.Run("response_phase", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, cfg, func(s *procStream) error {
			s.Recv()
			s.Send(continueRequest(nil))
			return stall(s)
		})
		resp, body, _ := h.get("/")
		wantStatus(t, resp, 504)
		if body == "upstream" {
			t.Error("the upstream body went downstream")
		}
		h.stream()
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 2, ResponsesReceived: 1, Timeouts: 1, UpstreamRequests: 1})
	})
}

// MessageTimeout 0 is Envoy's default, 200ms.
func TestMessageTimeoutDefault(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{MessageTimeout: time.Millisecond}, func(s *procStream) error {
		s.Recv()
		s.Stall()
		return nil
	})
	p, err := emulator.New(emulator.Config{Upstream: h.up.srv.URL, Routes: []emulator.Route{{}}}, h.conn)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, newRequest("GET", "/", ""))
	wantStatus(t, rec.Result(), 504)
	// A timer never fires early, so this holds on any machine.
	if d := time.Since(start); d < emulator.DefaultMessageTimeout {
		t.Errorf("504 after %v, before the default message_timeout %v", d, emulator.DefaultMessageTimeout)
	}
	h.stream()
}

// A gRPC error status from the processor: 500, or continue with
// failure_mode_allow.
func TestProcessorErrorStatus(t *testing.T) {
	t.Parallel()
	fail := func(s *procStream) error {
		s.Recv()
		return status.Error(codes.PermissionDenied, "no way")
	}
	t.Run("request_phase", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{}, fail)
		resp, _, e := h.get("/")
		wantStatus(t, resp, 500)
		if e.Details != "ext_proc_error_gRPC_error_7{no_way}" {
			t.Errorf("details %q", e.Details)
		}
		if n := len(h.up.requests()); n != 0 {
			t.Errorf("upstream saw %d requests", n)
		}
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, ProcessorErrors: 1})
	})
	t.Run("request_phase/failure_mode_allow", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{FailureModeAllow: true}, fail)
		resp, body, _ := h.get("/")
		wantStatus(t, resp, 200)
		if body != "upstream" {
			t.Errorf("body %q", body)
		}
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, ProcessorErrors: 1, FailOpen: 1, UpstreamRequests: 1})
	})
	t.Run("response_phase", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{}, func(s *procStream) error {
			s.Recv()
			s.Send(continueRequest(nil))
			return fail(s)
		})
		resp, _, _ := h.get("/")
		wantStatus(t, resp, 500)
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 2, ResponsesReceived: 1, ProcessorErrors: 1, UpstreamRequests: 1})
	})
}

// A processor Envoy cannot reach: 500, or continue with failure_mode_allow.
func TestProcessorUnreachable(t *testing.T) {
	t.Parallel()
	for _, fma := range []bool{false, true} {
		t.Run("failure_mode_allow="+strconv.FormatBool(fma), func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t)
			conn, err := grpc.NewClient("passthrough:///unreachable",
				grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
					return nil, errors.New("connection refused")
				}),
				grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// A generous timeout: the failure must come from the
			// connection, not from message_timeout.
			p, err := emulator.New(emulator.Config{
				Upstream: up.srv.URL, Routes: []emulator.Route{{}}, FailureModeAllow: fma, MessageTimeout: waitLimit,
			}, conn)
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, newRequest("GET", "/", ""))
			st := p.Stats()
			if fma {
				wantStatus(t, rec.Result(), 200)
				if len(up.requests()) != 1 || st.FailOpen != 1 {
					t.Errorf("upstream saw %d requests, stats %+v", len(up.requests()), st)
				}
			} else {
				wantStatus(t, rec.Result(), 500)
				if len(up.requests()) != 0 {
					t.Errorf("upstream saw %d requests", len(up.requests()))
				}
			}
			if st.ProcessorErrors != 1 || st.MessagesSent != 0 || st.Timeouts != 0 {
				t.Errorf("stats %+v, want one processor error and no message sent", st)
			}
		})
	}
}

// The processor closing its stream cleanly, at any point, lets the request
// continue without applying anything, and ends ext_proc for the request.
func TestProcessorClosesCleanly(t *testing.T) {
	t.Parallel()
	t.Run("before_answering_request_headers", func(t *testing.T) {
		t.Parallel()
		// Even with failure_mode_allow false: a clean close is no failure.
		h := newHarness(t, emulator.Config{}, func(s *procStream) error {
			s.Recv()
			return nil
		})
		resp, body, e := h.get("/")
		wantStatus(t, resp, 200)
		if body != "upstream" || e.Messages != 1 {
			t.Errorf("body %q, log %+v", body, e)
		}
		h.stream()
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 1, ClosedByProcessor: 1, UpstreamRequests: 1})
	})
	t.Run("before_answering_response_headers", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{}, func(s *procStream) error {
			s.Recv()
			s.Send(continueRequest(mutation(nil, set("x-req", "1"))))
			s.Recv()
			return nil
		})
		h.up.setRespond(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Up", "1"); w.WriteHeader(201) })
		resp, _, _ := h.get("/")
		wantStatus(t, resp, 201)
		if resp.Header.Get("X-Up") != "1" || h.up.requests()[0].Header.Get("X-Req") != "1" {
			t.Errorf("response %v; the request mutation answered before the close must stay applied", resp.Header)
		}
		h.stream()
		wantStats(t, h.proxy, emulator.Stats{Requests: 1, Streams: 1, MessagesSent: 2, ResponsesReceived: 1, ClosedByProcessor: 1, UpstreamRequests: 1})
	})
}

// The first matching route wins; a path route matches the path without
// the query exactly. A request no route matches still goes through
// ext_proc's request phase (the filter runs before the router, which then
// answers 404), without a route name attribute.
func TestRouting(t *testing.T) {
	t.Parallel()
	routes := []emulator.Route{{Name: "a", PathPrefix: "/api/"}, {Name: "b", PathPrefix: "/api/v2/"},
		{Name: "h", Path: "/healthz"}, {Name: "c", PathPrefix: "/web"}}
	h := newHarness(t, emulator.Config{Routes: routes, RequestAttributes: []string{"xds.route_name"}, Release: emulator.Envoy1_35},
		answer(continueRequest(nil), continueResponse(nil)))
	for path, want := range map[string]string{"/api/v2/items": "a", "/web?x=1": "c", "/webshop": "c", "/healthz?full=1": "h"} {
		_, _, e := h.get(path)
		if e.Route != want {
			t.Errorf("%s routed to %q, want %q", path, e.Route, want)
		}
		if got := h.stream().messages()[0].Attributes["envoy.filters.http.ext_proc"].GetFields()["xds.route_name"].GetStringValue(); got != want {
			t.Errorf("%s: route name attribute %q, want %q", path, got, want)
		}
	}

	h2 := newHarness(t, emulator.Config{Routes: routes, RequestAttributes: []string{"xds.route_name"}, Release: emulator.Envoy1_35},
		answer(continueRequest(mutation(nil, set("x-seen", "1")))))
	for _, path := range []string{"/other", "/healthz/x"} {
		resp, body, e := h2.get(path)
		wantStatus(t, resp, 404)
		if body != "" || e.Details != "route_not_found" || e.Route != "" || e.Messages != 1 || e.Upstream {
			t.Errorf("%s: body %q, log %+v", path, body, e)
		}
		m := h2.stream().messages()
		if k := kinds(m); k != "request_headers" {
			t.Errorf("%s: messages %s", path, k)
		}
		if _, ok := m[0].Attributes["envoy.filters.http.ext_proc"].GetFields()["xds.route_name"]; ok {
			t.Errorf("%s: a route name attribute without a route", path)
		}
	}
	if n := len(h2.up.requests()); n != 0 {
		t.Errorf("upstream saw %d requests", n)
	}
	wantStats(t, h2.proxy, emulator.Stats{Requests: 2, NoRoute: 2, Streams: 2, MessagesSent: 2, ResponsesReceived: 2, LocalReplies: 2})
}

// A route's and its virtual host's response_headers_to_add/_remove are
// applied before ext_proc's response phase sees the response (the router's
// Filter::onUpstreamHeaders calls finalizeResponseHeaders before
// encodeHeaders), the route's first, each level removing then adding; so the
// processor sees them and its mutation wins. Local replies (an immediate
// response, the router's own) get them too.
func TestRouteResponseHeaders(t *testing.T) {
	t.Parallel()
	cfg := emulator.Config{
		VirtualHost: emulator.VirtualHost{
			ResponseHeadersToAdd:    []emulator.HeaderValueOption{{Key: "x-vhost", Value: "v"}, {Key: "x-level", Value: "vhost"}},
			ResponseHeadersToRemove: []string{"x-vhost-removes"},
		},
		Routes: []emulator.Route{{Name: "r", ResponseHeadersToAdd: []emulator.HeaderValueOption{
			{Key: "x-route", Value: "r"},
			{Key: "X-Proc", Value: "route"},
			{Key: "x-level", Value: "route"},
			{Key: "vary", Value: "X-Route", Append: true},
		}, ResponseHeadersToRemove: []string{"x-upstream-secret", "x-vhost"}}},
	}
	h := newHarness(t, cfg, answer(continueRequest(nil), continueResponse(mutation(nil, set("x-proc", "proc"), add("vary", "Origin")))))
	h.up.setRespond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream-Secret", "s")
		w.Header().Set("X-Vhost-Removes", "s")
		w.Header().Set("Vary", "Accept-Encoding")
	})
	resp, _, _ := h.get("/")
	for k, want := range map[string][]string{
		"X-Proc":            {"proc"}, // the processor's mutation wins
		"Vary":              {"Accept-Encoding,X-Route,Origin"},
		"X-Route":           {"r"},
		"X-Vhost":           {"v"}, // the route removes before the vhost adds
		"X-Level":           {"vhost"},
		"X-Upstream-Secret": nil,
		"X-Vhost-Removes":   nil,
	} {
		if got := resp.Header.Values(k); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	lines := headerLines(t, responseHeadersOf(t, h.stream().messages()[1]))
	for _, want := range []string{"x-route: r", "x-proc: route", "vary: Accept-Encoding,X-Route", "x-vhost: v"} {
		if !slices.Contains(lines, want) {
			t.Errorf("ext_proc did not see %q: %q", want, lines)
		}
	}
	if slices.Contains(lines, "x-upstream-secret: s") {
		t.Errorf("ext_proc saw a header the route removes: %q", lines)
	}

	// An immediate response gets the route's headers first, then the
	// processor's mutation.
	h2 := newHarness(t, cfg, answer(immediate(204, mutation(nil, set("x-level", "proc")), "", "preflight")))
	resp, _, _ = h2.get("/")
	wantStatus(t, resp, 204)
	if resp.Header.Get("X-Route") != "r" || resp.Header.Get("X-Level") != "proc" {
		t.Errorf("immediate response headers %v", resp.Header)
	}
}

// An upstream Envoy cannot reach gets the router's 503, an upstream slower
// than the route's timeout its 504. These local replies go through
// ext_proc's response phase in the releases that send local replies to the
// processor (up to 1.33.0, and 1.37 on), where the processor's mutation
// reaches the client; in 1.33.1 to 1.36 they do not.
func TestRouterLocalRepliesByRelease(t *testing.T) {
	t.Parallel()
	dead := deadUpstream(t)
	for _, rel := range emulator.Releases() {
		for _, sc := range []struct {
			name, path, details, body string
			status                    int
		}{
			{"upstream_down", "/down", "upstream_reset_before_response_started", "upstream connect error", 503},
			{"upstream_timeout", "/slow", "upstream_response_timeout", "upstream request timeout", 504},
			{"no_route", "/nowhere", "route_not_found", "", 404},
		} {
			t.Run(rel.Name+"/"+sc.name, func(t *testing.T) {
				t.Parallel()
				release := make(chan struct{})
				defer close(release)
				cfg := emulator.Config{Release: rel, Routes: []emulator.Route{
					{Name: "slow", PathPrefix: "/slow", Timeout: time.Millisecond},
					{Name: "down", PathPrefix: "/down"},
				}}
				if sc.name == "upstream_down" {
					cfg.Upstream = dead
				}
				h := newHarness(t, cfg, answer(continueRequest(nil), continueResponse(mutation(nil, set("x-cors", "yes")))))
				h.up.setRespond(func(w http.ResponseWriter, r *http.Request) {
					select { // never answers within the timeout
					case <-release:
					case <-r.Context().Done():
					}
				})
				resp, body, e := h.get(sc.path)
				wantStatus(t, resp, sc.status)
				if !strings.HasPrefix(body, sc.body) || !strings.HasPrefix(e.Details, sc.details) {
					t.Errorf("body %q details %q", body, e.Details)
				}
				want, cors := "request_headers", ""
				if rel.LocalRepliesToProcessor {
					want, cors = "request_headers,response_headers", "yes"
				}
				ms := h.stream().messages()
				if k := kinds(ms); k != want {
					t.Errorf("messages %s, want %s", k, want)
				}
				if got := resp.Header.Get("X-Cors"); got != cors {
					t.Errorf("X-Cors %q, want %q", got, cors)
				}
				if rel.LocalRepliesToProcessor {
					lines := headerLines(t, responseHeadersOf(t, ms[1]))
					if lines[0] != ":status: "+strconv.Itoa(sc.status) {
						t.Errorf("response_headers %q", lines)
					}
				}
				st := h.proxy.Stats()
				if st.LocalReplies != 1 || (st.LocalRepliesProcessed == 1) != rel.LocalRepliesToProcessor {
					t.Errorf("stats %+v", st)
				}
			})
		}
	}
}

// A filter after ext_proc that refuses the request (jwt_authn's 401) sends
// a local reply the processor sees, or not, as the router's.
func TestLaterFilterReplyByRelease(t *testing.T) {
	t.Parallel()
	for _, rel := range emulator.Releases() {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			var seen http.Header
			cfg := emulator.Config{Release: rel, LaterFilter: func(method, path string, h http.Header) *emulator.LocalReply {
				seen = h
				if h.Get("Authorization") != "" {
					return nil
				}
				return &emulator.LocalReply{Status: 401, Body: "Jwt is missing", Details: "jwt_authn_access_denied{Jwt_is_missing}",
					Headers: []emulator.HeaderValueOption{{Key: "www-authenticate", Value: "Bearer realm=\"x\""}}}
			}}
			h := newHarness(t, cfg, answer(continueRequest(mutation(nil, set("x-from-proc", "1"))), continueResponse(mutation(nil, set("x-cors", "yes")))))
			resp, body, e := h.get("/")
			wantStatus(t, resp, 401)
			if body != "Jwt is missing" || e.Upstream || resp.Header.Get("Www-Authenticate") == "" {
				t.Errorf("reply %q %v, log %+v", body, resp.Header, e)
			}
			if seen.Get("X-From-Proc") != "1" {
				t.Errorf("the later filter saw %v, not the request as ext_proc left it", seen)
			}
			want, cors := "request_headers", ""
			if rel.LocalRepliesToProcessor {
				want, cors = "request_headers,response_headers", "yes"
			}
			if k := kinds(h.stream().messages()); k != want {
				t.Errorf("messages %s, want %s", k, want)
			}
			if got := resp.Header.Get("X-Cors"); got != cors {
				t.Errorf("X-Cors %q, want %q", got, cors)
			}
		})
	}
}

// A later filter's reply gets the route's response headers first and its
// own after them, so its header replaces the route's of the same name: the
// filter manager's wrapper of the reply's modify_headers calls
// finalizeResponseHeaders, then the filter's modify_headers
// (DownstreamFilterManager::sendLocalReplyViaFilterChain).
func TestLaterFilterReplyHeadersAfterRoute(t *testing.T) {
	t.Parallel()
	cfg := emulator.Config{
		Routes: []emulator.Route{{Name: "r", ResponseHeadersToAdd: []emulator.HeaderValueOption{{Key: "x-who", Value: "route"}}}},
		LaterFilter: func(method, path string, h http.Header) *emulator.LocalReply {
			return &emulator.LocalReply{Status: 401, Details: "denied",
				Headers: []emulator.HeaderValueOption{{Key: "x-who", Value: "filter"}}}
		},
	}
	h := newHarness(t, cfg, answer(continueRequest(nil), continueResponse(nil)))
	resp, _, _ := h.get("/")
	wantStatus(t, resp, 401)
	if got := resp.Header.Values("X-Who"); !slices.Equal(got, []string{"filter"}) {
		t.Errorf("X-Who %q, want the filter's value alone", got)
	}
}

// Even where local replies go to the processor, one is not sent when
// processing is complete or the response phase is off: after the
// processor's own immediate response (it never comes back through
// ext_proc), after a failure with failure_mode_allow, after a
// mode_override that skips the response phase, and on a route where the
// filter is disabled.
func TestLocalReplyNotSentWhenProcessingIsOver(t *testing.T) {
	t.Parallel()
	downstream := emulator.Config{Routes: []emulator.Route{
		{Name: "off", PathPrefix: "/off", ExtProcDisabled: true},
		{Name: "r", PathPrefix: "/"},
	}, AllowModeOverride: true, FailureModeAllow: true, LaterFilter: func(method, path string, h http.Header) *emulator.LocalReply {
		return &emulator.LocalReply{Status: 401, Details: "denied"}
	}}
	t.Run("immediate_response", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, downstream, answer(immediate(403, nil, "", "refused")))
		resp, _, _ := h.get("/")
		wantStatus(t, resp, 403)
		if k := kinds(h.stream().messages()); k != "request_headers" {
			t.Errorf("messages %s", k)
		}
	})
	t.Run("mode_override_skip", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, downstream, answer(skipResponsePhase(continueRequest(nil))))
		resp, _, _ := h.get("/")
		wantStatus(t, resp, 401)
		if k := kinds(h.stream().messages()); k != "request_headers" {
			t.Errorf("messages %s", k)
		}
	})
	t.Run("fail_open", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, downstream, func(s *procStream) error {
			s.Recv()
			return status.Error(codes.Internal, "boom")
		})
		resp, _, _ := h.get("/")
		wantStatus(t, resp, 401)
		if k := kinds(h.stream().messages()); k != "request_headers" {
			t.Errorf("messages %s", k)
		}
	})
	t.Run("disabled_route", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, downstream, answer())
		resp, _, e := h.get("/off")
		wantStatus(t, resp, 401)
		if e.Messages != 0 {
			t.Errorf("%d messages on a route where ext_proc is disabled", e.Messages)
		}
		h.noMoreStreams(0)
	})
}

// local_reply_config applies to every local reply, the processor's own
// immediate responses included, after their headers (so it can override
// them) and before ext_proc's response phase sees a router reply (so the
// processor's mutation wins there, where it runs).
func TestLocalReplyConfig(t *testing.T) {
	t.Parallel()
	mapper := emulator.LocalReplyMapper{
		Filter: func(status int, req http.Header) bool {
			return req.Get("Origin") == "https://app.example.com" && req.Get("Access-Control-Request-Method") == ""
		},
		HeadersToAdd: []emulator.HeaderValueOption{{Key: "access-control-allow-origin", Value: "https://app.example.com"}},
	}
	for _, rel := range []emulator.Release{emulator.Envoy1_35, emulator.Envoy1_37} {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			cfg := emulator.Config{Release: rel, LocalReplyMappers: []emulator.LocalReplyMapper{mapper}}
			h := newHarness(t, cfg, answer(continueRequest(nil), continueResponse(mutation([]string{"access-control-allow-origin"}, set("x-cors", "proc")))))
			h.up.setRespond(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
			resp, _, _ := h.get("/", "Origin: https://app.example.com")
			wantStatus(t, resp, 503)
			want := "https://app.example.com"
			if rel.LocalRepliesToProcessor {
				want = "" // the processor removed it
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
				t.Errorf("ACAO %q, want %q", got, want)
			}

			h2 := newHarness(t, cfg, answer(immediate(403, mutation(nil, set("access-control-allow-origin", "https://other.example")), "", "refused")))
			resp, _, _ = h2.get("/", "Origin: https://app.example.com")
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
				t.Errorf("immediate response ACAO %q: local_reply_config applies after its mutation", got)
			}
		})
	}
}

// SkipWithoutOrigin: no Origin, no ext_proc at all.
func TestSkipWithoutOrigin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{SkipWithoutOrigin: true}, answer(continueRequest(nil), continueResponse(nil)))
	resp, _, e := h.get("/")
	wantStatus(t, resp, 200)
	if e.Messages != 0 {
		t.Errorf("%d messages for a request without Origin", e.Messages)
	}
	h.noMoreStreams(0)
	wantStats(t, h.proxy, emulator.Stats{Requests: 1, FilterSkipped: 1, UpstreamRequests: 1})

	h.get("/", "Origin: https://app.example.com")
	h.stream()
	wantStats(t, h.proxy, emulator.Stats{Requests: 2, FilterSkipped: 1, Streams: 1, MessagesSent: 2, ResponsesReceived: 2, UpstreamRequests: 2})
}

// The upstream gets the method, path with query, Host, headers without the
// connection-specific ones, and the body; the client gets the upstream's
// status, headers and body.
func TestUpstreamProxying(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{}, answer(continueRequest(nil), continueResponse(nil)))
	h.up.setRespond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Up", "1")
		w.Header().Set("Server", "gunicorn")
		w.WriteHeader(201)
		w.Write([]byte("created"))
	})
	resp, body, e := h.do(newRequest("POST", "/submit?x=1&y=2", "payload",
		"Content-Type: application/json", "Connection: keep-alive", "Keep-Alive: timeout=5", "Accept-Encoding: gzip"))
	wantStatus(t, resp, 201)
	if body != "created" || resp.Header.Get("X-Up") != "1" || resp.Header.Get("Server") != "envoy" || !e.Upstream {
		t.Errorf("reply %v %q, log %+v", resp.Header, body, e)
	}
	up := h.up.requests()[0]
	if up.Method != "POST" || up.RequestURI != "/submit?x=1&y=2" || up.Host != "api.example.com" || up.Body != "payload" || up.ContentLength != 7 {
		t.Errorf("upstream saw %+v", up)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json", "Accept-Encoding": "gzip", "X-Forwarded-Proto": "http",
		"Keep-Alive": "", "User-Agent": "",
	} {
		if got := up.Header.Get(k); got != want {
			t.Errorf("upstream %s = %q, want %q", k, got, want)
		}
	}
	if up.Header.Get("X-Request-Id") == "" {
		t.Error("no x-request-id")
	}
}

// New checks the configuration and reports every problem at once.
func TestNewValidates(t *testing.T) {
	t.Parallel()
	conn, err := grpc.NewClient("passthrough:///x", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = emulator.New(emulator.Config{
		Upstream:          "ftp://example.com/base",
		Routes:            []emulator.Route{{PathPrefix: "api"}, {GRPCInitialMetadata: []emulator.Metadata{{Key: ""}}}},
		RequestAttributes: []string{"xds.route_name", "request.path"},
		MessageTimeout:    -time.Second,
		ProcessingMode:    emulator.ProcessingMode{ResponseHeaderMode: 7},
	}, conn)
	if err == nil {
		t.Fatal("New accepted an invalid config")
	}
	for _, want := range []string{"Upstream", "Routes[0].PathPrefix", "Routes[1].GRPCInitialMetadata[0]", `RequestAttributes[1] "request.path"`, "MessageTimeout", "ResponseHeaderMode"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	for _, u := range []string{"", "127.0.0.1:8000", "http://", "http://h/path", "http://h?q=1", "http://u@h"} {
		if _, err := emulator.New(emulator.Config{Upstream: u}, conn); err == nil {
			t.Errorf("Upstream %q accepted", u)
		}
	}
	if _, err := emulator.New(emulator.Config{Upstream: "http://127.0.0.1:8000"}, nil); err == nil {
		t.Error("a nil connection accepted")
	}
	if _, err := emulator.New(emulator.Config{Upstream: "https://127.0.0.1:8000/", RequestAttributes: []string{"xds.route_name"}}, conn); err != nil {
		t.Errorf("a valid config refused: %v", err)
	}
}

// A set_headers value with a control character other than tab (or DEL), or
// an invalid name in set_headers or remove_headers, fails the request with
// 500 whatever failure_mode_allow says (applyHeaderMutations:
// headerNameIsValid, headerValueIsValid). A tab is a valid value character.
func TestMutationInvalidCharacters(t *testing.T) {
	t.Parallel()
	for name, mu := range map[string]*extprocv3.HeaderMutation{
		"value_ctl":    mutation(nil, set("x-a", "a\x01b")),
		"value_del":    mutation(nil, set("x-a", "a\x7fb")),
		"value_lf":     mutation(nil, set("x-a", "a\nb")),
		"name_space":   mutation(nil, set("x a", "1")),
		"name_empty":   mutation(nil, set("", "1")),
		"remove_name":  mutation([]string{"bad name"}),
		"remove_empty": mutation([]string{""}),
		"pseudo_upper": mutation(nil, set(":Path", "/x")),
	} {
		for _, fma := range []bool{false, true} {
			t.Run(name+"/failure_mode_allow="+strconv.FormatBool(fma), func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, emulator.Config{FailureModeAllow: fma}, answer(continueRequest(nil), continueResponse(mu)))
				resp, _, e := h.get("/")
				wantStatus(t, resp, 500)
				if !strings.HasPrefix(e.Details, "ext_proc_error_invalid_header_mutation") {
					t.Errorf("details %q", e.Details)
				}
			})
		}
	}
	t.Run("tab", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{}, answer(continueRequest(nil), continueResponse(mutation([]string{"X-Upper-Ok"}, set("x-a", "a\tb"), set("X-Mixed", "1")))))
		resp, _, _ := h.get("/")
		wantStatus(t, resp, 200)
		if resp.Header.Get("X-A") != "a\tb" || resp.Header.Get("X-Mixed") != "1" {
			t.Errorf("headers %v", resp.Header)
		}
	})
}

// The header map limits (common_http_protocol_options.max_headers_count,
// 100 by default, and the size limit, 60 KiB): a mutation with more
// entries than the count limit, or one that takes the map past a limit,
// fails the request with 500 (responseHeaderSizeCheck,
// headerMutationResultCheck). An upstream response already past the
// limits is refused by the codec: the router answers 502.
func TestHeaderMapLimits(t *testing.T) {
	t.Parallel()
	respondWith := func(n int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Date"] = nil
			w.Header()["Content-Type"] = nil
			for i := range n {
				w.Header().Set(fmt.Sprintf("X-H%03d", i), "v")
			}
			w.WriteHeader(204) // no content-length either
		}
	}
	// 98 headers and :status: 99 entries. One more fits, two do not.
	for _, tc := range []struct {
		name   string
		mu     *extprocv3.HeaderMutation
		status int
	}{
		{"one_more_fits", mutation(nil, set("x-new1", "1")), 204},
		{"two_more_exceed", mutation(nil, set("x-new1", "1"), set("x-new2", "1")), 500},
		{"replace_fits", mutation([]string{"x-h000"}, set("x-new1", "1"), set("x-new2", "1")), 204},
		{"vary_merges", mutation(nil, set("vary", "Origin"), add("vary", "Accept")), 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, emulator.Config{FailureModeAllow: true}, answer(continueRequest(nil), continueResponse(tc.mu)))
			h.up.setRespond(respondWith(98))
			resp, _, e := h.get("/")
			wantStatus(t, resp, tc.status)
			if tc.status == 500 && !strings.Contains(e.Details, "exceeds_the_limit") {
				t.Errorf("details %q", e.Details)
			}
		})
	}
	t.Run("too_many_set_headers", func(t *testing.T) {
		t.Parallel()
		var sets []*corev3.HeaderValueOption
		for i := range 101 {
			sets = append(sets, set("x-s", strconv.Itoa(i)))
		}
		h := newHarness(t, emulator.Config{}, answer(continueRequest(mutation(nil, sets...))))
		resp, _, _ := h.get("/")
		wantStatus(t, resp, 500)
	})
	t.Run("size", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{MaxHeadersKB: 1}, answer(continueRequest(nil), continueResponse(mutation(nil, set("x-big", strings.Repeat("b", 1024))))))
		resp, _, _ := h.get("/")
		wantStatus(t, resp, 500)
	})
	t.Run("upstream_past_the_limit", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, emulator.Config{}, answer(continueRequest(nil), continueResponse(nil)))
		h.up.setRespond(respondWith(101))
		resp, _, e := h.get("/")
		wantStatus(t, resp, 502)
		if !strings.Contains(e.Details, "protocol_error") {
			t.Errorf("details %q", e.Details)
		}
	})
}

// Envoy keeps the CORS request headers inline: repeated lines reach the
// processor as one entry joined with ",".
func TestInlineRequestHeadersMerged(t *testing.T) {
	t.Parallel()
	h := newHarness(t, emulator.Config{}, answer(continueRequest(nil), continueResponse(nil)))
	h.do(newRequest("OPTIONS", "/", "", "Origin: https://a.example", "Origin: https://b.example",
		"Access-Control-Request-Headers: x-a", "Access-Control-Request-Headers: x-b", "X-Other: 1", "X-Other: 2"))
	lines := headerLines(t, requestHeadersOf(t, h.stream().messages()[0]))
	for _, want := range []string{"origin: https://a.example,https://b.example", "access-control-request-headers: x-a,x-b", "x-other: 1", "x-other: 2"} {
		if !slices.Contains(lines, want) {
			t.Errorf("no %q in %q", want, lines)
		}
	}
}

// normalize_path and merge_slashes rewrite :path before routing and before
// ext_proc sees it; the query is left alone.
func TestNormalizePath(t *testing.T) {
	t.Parallel()
	routes := []emulator.Route{{Name: "shop", PathPrefix: "/shop/"}, {Name: "api", PathPrefix: "/api/"}}
	h := newHarness(t, emulator.Config{Routes: routes, NormalizePath: true, MergeSlashes: true, RequestAttributes: []string{"xds.route_name"}},
		answer(continueRequest(nil), continueResponse(nil)))
	for path, want := range map[string]string{
		"/shop/../api/orders?x=/../": "/api/orders?x=/../",
		"/shop//./cart":              "/shop/cart",
		"/shop/%2e%2e/api/x":         "/api/x",
		"//api///v1/":                "/api/v1/",
	} {
		_, _, e := h.get(path)
		lines := headerLines(t, requestHeadersOf(t, h.stream().messages()[0]))
		if lines[1] != ":path: "+want {
			t.Errorf("%s: ext_proc saw %q, want %q", path, lines[1], want)
		}
		if got := h.up.requests(); got[len(got)-1].RequestURI != want {
			t.Errorf("%s: upstream got %q", path, got[len(got)-1].RequestURI)
		}
		if wantRoute := strings.Split(want, "/")[1]; e.Route != wantRoute {
			t.Errorf("%s: route %q, want %q", path, e.Route, wantRoute)
		}
	}
}

// The stream's gRPC initial metadata merges the virtual host's entries with
// the route's, the route's winning per key; a request without a route has
// none.
func TestGRPCInitialMetadataMerge(t *testing.T) {
	t.Parallel()
	cfg := emulator.Config{
		VirtualHost: emulator.VirtualHost{GRPCInitialMetadata: []emulator.Metadata{
			{Key: "x-corsproc-policy", Value: "vhost"}, {Key: "x-vhost", Value: "1"},
		}},
		Routes: []emulator.Route{
			{Name: "admin", PathPrefix: "/admin/", GRPCInitialMetadata: []emulator.Metadata{{Key: "x-corsproc-policy", Value: "admin"}}},
			{Name: "plain", PathPrefix: "/plain/"},
		},
	}
	h := newHarness(t, cfg, answer(continueRequest(nil), continueResponse(nil)))
	for path, want := range map[string]map[string]string{
		"/admin/x": {"x-corsproc-policy": "admin", "x-vhost": "1"},
		"/plain/x": {"x-corsproc-policy": "vhost", "x-vhost": "1"},
		"/none":    {},
	} {
		h.get(path)
		md := h.stream().md
		for k, v := range want {
			if got := md.Get(k); !slices.Equal(got, []string{v}) {
				t.Errorf("%s: %s = %q, want [%s]", path, k, got, v)
			}
		}
		if len(want) == 0 && (len(md.Get("x-corsproc-policy")) != 0 || len(md.Get("x-vhost")) != 0) {
			t.Errorf("%s: metadata %v without a route", path, md)
		}
	}
}

// Since 1.37 Envoy closes the stream as soon as no further message is
// needed: right after the request_headers answer that skips the response
// phase, before the upstream is even asked. Before, the stream stayed open
// until the request ended.
func TestStreamClosedWhenDone(t *testing.T) {
	t.Parallel()
	for _, rel := range emulator.Releases() {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			ended := make(chan struct{})
			h := newHarness(t, emulator.Config{Release: rel, AllowModeOverride: true}, func(s *procStream) error {
				s.Recv()
				s.Send(skipResponsePhase(continueRequest(nil)))
				s.WaitEnd()
				close(ended)
				return nil
			})
			var endedFirst bool
			h.up.setRespond(func(w http.ResponseWriter, r *http.Request) {
				if rel.ClosesStreamWhenDone {
					select {
					case <-ended:
						endedFirst = true
					case <-time.After(waitLimit):
					}
					return
				}
				select {
				case <-ended:
					endedFirst = true
				default:
				}
			})
			resp, _, _ := h.get("/")
			wantStatus(t, resp, 200)
			h.stream()
			if endedFirst != rel.ClosesStreamWhenDone {
				t.Errorf("stream ended before the upstream answered: %v, want %v", endedFirst, rel.ClosesStreamWhenDone)
			}
		})
	}
}

// A filter after ext_proc that adds response headers runs before ext_proc
// on the way back: the processor sees its headers on upstream responses
// and can override them; on the processor's own immediate response it runs
// after the immediate response's mutation, and wins.
func TestLaterEncoderFilter(t *testing.T) {
	t.Parallel()
	cfg := emulator.Config{LaterEncoderHeaders: []emulator.HeaderValueOption{{Key: "x-later", Value: "later"}}}
	h := newHarness(t, cfg, answer(continueRequest(nil), continueResponse(mutation(nil, set("x-later", "proc")))))
	resp, _, _ := h.get("/")
	if got := resp.Header.Get("X-Later"); got != "proc" {
		t.Errorf("X-Later %q on an upstream response, want the processor's", got)
	}
	if lines := headerLines(t, responseHeadersOf(t, h.stream().messages()[1])); !slices.Contains(lines, "x-later: later") {
		t.Errorf("ext_proc did not see the later filter's header: %q", lines)
	}

	h2 := newHarness(t, cfg, answer(immediate(204, mutation(nil, set("x-later", "proc")), "", "preflight")))
	resp, _, _ = h2.get("/")
	if got := resp.Header.Get("X-Later"); got != "later" {
		t.Errorf("X-Later %q on an immediate response, want the later filter's", got)
	}
}
