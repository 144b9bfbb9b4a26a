package processor

// The per-request and per-stream bounds: what happens past each.

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

func pad(n int) [][2]string {
	hs := make([][2]string, n)
	for i := range hs {
		hs[i] = [2]string{"x-pad", "p"}
	}
	return hs
}

// Past the header count or byte bound a request's CORS is refused, never
// allowed: a preflight is rejected (or forwarded, or left alone in shadow
// mode, as its policy says for a failed preflight), an actual request gets
// no ACAO, only allow_all_origins still answers its origin-independent "*".
// One well-formed response per message all the same.
func TestRequestHeaderBounds(t *testing.T) {
	set := mustParse(t, semanticsYAML)
	const o = "https://app.example.com"
	// An Envoy-shaped preflight has 9 entries: 6 base ones, origin, ACRM,
	// sec-fetch-mode; with ACRH, 10.
	const maxEntries, maxBytes = 12, 1024
	cookie := [2]string{"cookie", strings.Repeat("c", maxBytes)}
	cases := []struct {
		name  string
		msgs  []*extprocv3.ProcessingRequest
		want  []reply
		limit string // "" when within the bounds
		// decision counted
		policy, outcome, reason string
		shadow                  bool
	}{
		{"preflight_within", []*extprocv3.ProcessingRequest{preflight("api.example.com", o, "PUT", acrhH("content-type")).message()},
			[]reply{allowed(acao(o), acam("GET, POST, PUT, DELETE"), acah("content-type, x-requested-with"), acma("600"), varyPreflight())},
			"", "web", "preflight_allowed", "", false},
		{"preflight_at_count", []*extprocv3.ProcessingRequest{preflight("api.example.com", o, "PUT", append(pad(2), acrhH("content-type"))...).message()},
			[]reply{allowed(acao(o), acam("GET, POST, PUT, DELETE"), acah("content-type, x-requested-with"), acma("600"), varyPreflight())},
			"", "web", "preflight_allowed", "", false},
		{"preflight_past_count", []*extprocv3.ProcessingRequest{preflight("api.example.com", o, "PUT", append(pad(3), acrhH("content-type"))...).message()},
			[]reply{rejected()}, LimitRequestHeaders, "web", "preflight_rejected", "origin_malformed", false},
		{"preflight_past_bytes", []*extprocv3.ProcessingRequest{preflight("api.example.com", o, "PUT", cookie).message()},
			[]reply{rejected()}, LimitRequestHeaderBytes, "web", "preflight_rejected", "origin_malformed", false},
		{"allow_all_preflight_past_count", []*extprocv3.ProcessingRequest{preflight("public.example.com", o, "PUT", pad(10)...).message()},
			[]reply{rejected()}, LimitRequestHeaders, "public", "preflight_rejected", "method_not_allowed", false},
		// The ACRM sits beyond the bound: still a failed preflight, not an
		// actual OPTIONS request passed to the upstream with CORS headers.
		{"preflight_acrm_past_bound", []*extprocv3.ProcessingRequest{(envoyRequest{Method: "OPTIONS", Authority: "api.example.com",
			Headers: append(append([][2]string{{"origin", o}}, pad(10)...), [2]string{"access-control-request-method", "PUT"})}).message()},
			[]reply{rejected()}, LimitRequestHeaders, "web", "preflight_rejected", "origin_malformed", false},
		{"forward_preflight_past_count", []*extprocv3.ProcessingRequest{preflight("fwd.example.com", o, "PUT", pad(10)...).message()},
			[]reply{continueReq()}, LimitRequestHeaders, "fwd", "preflight_forwarded", "origin_malformed", false},
		{"actual_within", []*extprocv3.ProcessingRequest{get("api.example.com", o).message(), defaultUpstream()},
			[]reply{continueReq(), corsResp(acao(o), aceh("x-request-id"), varyOrigin())}, "", "web", "allowed", "", false},
		{"actual_past_count", []*extprocv3.ProcessingRequest{get("api.example.com", o, pad(10)...).message(), defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, LimitRequestHeaders, "web", "disallowed_origin", "origin_malformed", false},
		{"actual_past_bytes", []*extprocv3.ProcessingRequest{get("creds.example.com", o, cookie).message(), defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, LimitRequestHeaderBytes, "creds", "disallowed_origin", "origin_malformed", false},
		{"allow_all_actual_past_count", []*extprocv3.ProcessingRequest{get("public.example.com", o, pad(10)...).message(), defaultUpstream()},
			[]reply{continueReq(), corsResp(acao("*"), aceh("x-total"))}, LimitRequestHeaders, "public", "allowed", "", false},
		// Without an Origin, past the bound: refused as well (the Origin
		// could have been beyond it).
		{"no_origin_past_count", []*extprocv3.ProcessingRequest{get("api.example.com", "", pad(10)...).message(), defaultUpstream()},
			[]reply{continueReq(), corsResp(varyOrigin())}, LimitRequestHeaders, "web", "disallowed_origin", "origin_malformed", false},
		{"shadow_past_count", []*extprocv3.ProcessingRequest{preflight("shadow.example.com", o, "PUT", pad(10)...).message()},
			[]reply{continueSkip()}, LimitRequestHeaders, "shadow", "preflight_rejected", "origin_malformed", true},
		// :authority beyond the bound: no policy selected by host.
		{"authority_past_bound", []*extprocv3.ProcessingRequest{{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: append(repeatHeader("x-pad", "p", 20), &corev3.HeaderValue{Key: ":authority", RawValue: []byte("api.example.com")},
				&corev3.HeaderValue{Key: "origin", RawValue: []byte(o)})}}}}, defaultUpstream()},
			[]reply{continueSkip(), continueResp()}, LimitRequestHeaders, "", "ungoverned", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			srv := New(set, Options{Registerer: reg, MaxRequestHeaders: maxEntries, MaxRequestHeaderBytes: maxBytes})
			wantReplies(t, process(t, srv, nil, c.msgs...), c.want...)
			if c.outcome == "ungoverned" {
				if got := counterValues(t, reg, MetricRequests, "policy", "outcome"); got["/ungoverned"] != 1 {
					t.Errorf("%s = %v, want one ungoverned", MetricRequests, got)
				}
			} else {
				wantCounted(t, reg, c.policy, c.outcome, c.reason, c.shadow)
			}
			for _, l := range []string{LimitRequestHeaders, LimitRequestHeaderBytes} {
				want := 0.0
				if l == c.limit {
					want = 1
				}
				if got := limitCount(t, reg, l); got != want {
					t.Errorf("%s{limit=%q} = %v, want %v", MetricLimitsExceeded, l, got, want)
				}
			}
		})
	}
}

// The defaults apply when Options leave the bounds zero.
func TestRequestHeaderBoundsDefault(t *testing.T) {
	srv := New(mustParse(t, semanticsYAML), Options{})
	const o = "https://app.example.com"
	within := preflight("api.example.com", o, "PUT", pad(DefaultMaxRequestHeaders-9)...)
	wantReplies(t, process(t, srv, nil, within.message()),
		allowed(acao(o), acam("GET, POST, PUT, DELETE"), acah("content-type, x-requested-with"), acma("600"), varyPreflight()))
	past := preflight("api.example.com", o, "PUT", pad(DefaultMaxRequestHeaders-8)...)
	wantReplies(t, process(t, srv, nil, past.message()), rejected())
	big := preflight("api.example.com", o, "PUT", [2]string{"cookie", strings.Repeat("c", DefaultMaxRequestHeaderBytes)})
	wantReplies(t, process(t, srv, nil, big.message()), rejected())
}

func limitCount(t *testing.T, reg *prometheus.Registry, limit string) float64 {
	t.Helper()
	return counterValues(t, reg, MetricLimitsExceeded, "limit")[limit]
}

// idleEnv is a Server with an idle timeout behind a real gRPC server that
// runs its TapHandle, with the health service beside it.
func newIdleEnv(t *testing.T, timeout time.Duration) (*Server, *prometheus.Registry, *grpc.ClientConn) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	srv := New(mustParse(t, semanticsYAML), Options{Registerer: reg, IdleTimeout: timeout})
	conn, _ := newBufconn(t, func(s *grpc.Server) {
		extprocv3.RegisterExternalProcessorServer(s, srv)
		healthpb.RegisterHealthServer(s, health.NewServer())
	}, grpc.InTapHandle(srv.TapHandle))
	return srv, reg, conn
}

// A stream on which nothing arrives for IdleTimeout is closed with
// DEADLINE_EXCEEDED, whether it never sent anything or stopped after its
// request headers; a stream whose messages keep coming lives on, however
// long; other services (health Watch) are not affected.
func TestStreamIdleTimeout(t *testing.T) {
	const timeout = time.Second
	_, reg, conn := newIdleEnv(t, timeout)
	client := extprocv3.NewExternalProcessorClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}

	wantIdleEnd := func(name string, st extprocv3.ExternalProcessor_ProcessClient, since time.Time) {
		t.Helper()
		_, err := st.Recv()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("%s: Recv = %v, want DEADLINE_EXCEEDED", name, err)
		}
		if d := time.Since(since); d < timeout {
			t.Errorf("%s: closed after %v, before the %v idle timeout", name, d, timeout)
		}
	}

	// Opened and silent.
	start := time.Now()
	silent, err := client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Request headers answered, then nothing (a client that never sends
	// the response headers).
	stalled, err := client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stalled.Send(get("api.example.com", "https://app.example.com").message()); err != nil {
		t.Fatal(err)
	}
	if _, err := stalled.Recv(); err != nil {
		t.Fatal(err)
	}
	stalledSince := time.Now()

	// Busy: a message every timeout/10, for 1.5 timeouts.
	busy, err := client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []*extprocv3.ProcessingRequest{get("api.example.com", "https://app.example.com").message()}
	for range 14 {
		msgs = append(msgs, bodyMsg(false))
	}
	msgs = append(msgs, defaultUpstream())
	for i, m := range msgs {
		if i > 0 {
			time.Sleep(timeout / 10)
		}
		if err := busy.Send(m); err != nil {
			t.Fatalf("busy stream, message %d: Send: %v", i, err)
		}
		if _, err := busy.Recv(); err != nil {
			t.Fatalf("busy stream, message %d: Recv: %v", i, err)
		}
	}
	busy.CloseSend()
	if _, err := busy.Recv(); err != io.EOF {
		t.Errorf("busy stream end: %v, want io.EOF", err)
	}

	wantIdleEnd("silent", silent, start)
	wantIdleEnd("stalled", stalled, stalledSince)
	if got := limitCount(t, reg, LimitStreamIdle); got != 2 {
		t.Errorf("%s{limit=%q} = %v, want 2", MetricLimitsExceeded, LimitStreamIdle, got)
	}
	// The health watch outlived every idle timeout.
	if err := watch.Context().Err(); err != nil {
		t.Errorf("health watch ended: %v", err)
	}
}

// Without TapHandle on the gRPC server, or with IdleTimeout 0, Process runs
// no timer and TapHandle leaves contexts alone.
func TestStreamIdleTimeoutOff(t *testing.T) {
	srv := New(mustParse(t, semanticsYAML), Options{})
	ctx, err := srv.TapHandle(t.Context(), nil)
	if err != nil || ctx != t.Context() {
		t.Errorf("TapHandle without IdleTimeout changed the context: %v", err)
	}
	if sc := srv.startIdle(withStreamCancel(t.Context())); sc != nil {
		t.Error("an idle timer without IdleTimeout")
	}
	on := New(mustParse(t, semanticsYAML), Options{IdleTimeout: time.Minute})
	if sc := on.startIdle(t.Context()); sc != nil {
		t.Error("an idle timer for a stream whose context TapHandle did not make")
	}
	if v := testutil.ToFloat64(on.limits.idle); v != 0 {
		t.Errorf("idle count %v", v)
	}
}

// BenchmarkProcessIdleTimeout measures what the idle timeout adds to a
// stream (compare with BenchmarkProcess/case=actual_allowed).
func BenchmarkProcessIdleTimeout(b *testing.B) {
	set := mustParse(b, semanticsYAML)
	msgs := []*extprocv3.ProcessingRequest{get("api.example.com", "https://app.example.com").message(), defaultUpstream()}
	for _, timeout := range []time.Duration{0, 10 * time.Minute} {
		b.Run("idle_timeout="+timeout.String(), func(b *testing.B) {
			srv := New(set, Options{Registerer: prometheus.NewRegistry(), IdleTimeout: timeout})
			info := &tap.Info{FullMethodName: processMethod}
			fs := &fakeStream{t: b, in: msgs, Lax: true}
			b.ReportAllocs()
			for b.Loop() {
				// What grpc-go does per stream: the in-tap handle, the
				// transport taking the context's Done channel, the
				// handler, the stream's end cancelling its context.
				ctx, cancel := context.WithCancel(b.Context())
				ctx, _ = srv.TapHandle(ctx, info)
				_ = ctx.Done()
				fs.ctx, fs.next, fs.closed = ctx, 0, false
				if err := srv.Process(fs); err != nil {
					b.Fatal(err)
				}
				cancel()
			}
		})
	}
}

// Options.GRPC.MaxStreams bounds the streams open on the whole server, over
// every connection: one more is refused with RESOURCE_EXHAUSTED and
// counted, until one of them ends. A message the Codec refuses past its
// bounds fails its stream (INTERNAL, as grpc-go fails a stream on any codec
// error, with the Codec's reason), counted too.
func TestGRPCStreamAndMessageBounds(t *testing.T) {
	const maxStreams = 3
	reg := prometheus.NewPedanticRegistry()
	srv := New(mustParse(t, semanticsYAML), Options{Registerer: reg, GRPC: GRPCLimits{MaxStreams: maxStreams}})
	dial, _ := serveBufconn(t, func(s *grpc.Server) {
		extprocv3.RegisterExternalProcessorServer(s, srv)
		healthpb.RegisterHealthServer(s, health.NewServer())
	}, srv.GRPCServerOptions()...)
	conn1, conn2 := dial(), dial()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// Streams answered once, then held open (a request waiting for its
	// upstream), on two connections.
	open := func(conn *grpc.ClientConn) (extprocv3.ExternalProcessor_ProcessClient, error) {
		st, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
		if err != nil {
			return nil, err
		}
		// A Send to a stream the server has already refused returns io.EOF;
		// the status it ended with is then Recv's error (grpc-go's
		// ClientStream.SendMsg), so a refusal shows whichever side of the
		// race the Send falls on.
		if err := st.Send(get("api.example.com", "https://app.example.com").message()); err != nil && err != io.EOF {
			return nil, err
		}
		_, err = st.Recv()
		return st, err
	}
	var held []extprocv3.ExternalProcessor_ProcessClient
	for i := range maxStreams {
		conn := conn1
		if i == 0 {
			conn = conn2
		}
		st, err := open(conn)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		held = append(held, st)
	}
	for _, conn := range []*grpc.ClientConn{conn1, conn2} {
		if _, err := open(conn); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("stream %d: %v, want RESOURCE_EXHAUSTED", maxStreams+1, err)
		}
	}
	// Health checks are not streams that stay open: still answered.
	if _, err := healthpb.NewHealthClient(conn1).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health check with %d streams open: %v", maxStreams, err)
	}
	if got := limitCount(t, reg, LimitStreams); got != 2 {
		t.Errorf("%s{limit=%q} = %v, want 2", MetricLimitsExceeded, LimitStreams, got)
	}
	// One ends (its status arrives after its handler returned): another
	// may open, on the other connection.
	held[0].CloseSend()
	if _, err := held[0].Recv(); err != io.EOF {
		t.Fatalf("end of stream 0: %v", err)
	}
	st, err := open(conn1)
	if err != nil {
		t.Fatalf("a stream after one ended: %v", err)
	}
	st.CloseSend()
	for _, h := range held[1:] {
		h.CloseSend()
		h.Recv()
	}

	// A message past the Codec's bounds that it cannot cut: refused.
	var fields []byte
	for i := range MaxOtherMessages {
		fields = append(fields, wireField(fieldStructFields, append(wireField(fieldKey, []byte(strconv.Itoa(i))),
			wireField(fieldValue, wireField(fieldStringValue, []byte("v")))...))...)
	}
	raw := wireField(fieldAttributes, append(wireField(fieldKey, []byte("k")), wireField(fieldValue, fields)...))
	cs, err := conn1.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, processMethod,
		grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&raw); err != nil {
		t.Fatal(err)
	}
	if err := cs.RecvMsg(new([]byte)); status.Code(err) != codes.Internal || !strings.Contains(status.Convert(err).Message(), errPastBounds.Error()) {
		t.Errorf("a message of %d attribute fields: %v, want INTERNAL: %v", MaxOtherMessages, err, errPastBounds)
	}
	if got := limitCount(t, reg, LimitMessage); got != 1 {
		t.Errorf("%s{limit=%q} = %v, want 1", MetricLimitsExceeded, LimitMessage, got)
	}
}

// fit returns how many leading entries of hs lie within the bounds, and
// which bound, if any, the whole list exceeds ("" when none): the tests'
// restatement of where headerScan stops.
func (b headerBounds) fit(hs []*corev3.HeaderValue) (int, string) {
	total := 0
	for i, hv := range hs {
		if hv != nil {
			total += headerSize(hv)
		}
		if exceeded := b.past(i, total); exceeded != "" {
			return i, exceeded
		}
	}
	return len(hs), ""
}
