package processor

// End to end over a real gRPC server and client, in memory (bufconn): the
// client plays Envoy, including the per-route x-corsproc-policy initial
// metadata and the half-close and reset that end a stream.

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// grpcEnv is a corsproc Server behind a real gRPC server, and a client.
type grpcEnv struct {
	srv    *Server
	reg    *prometheus.Registry
	gs     *grpc.Server
	client extprocv3.ExternalProcessorClient
}

// newBufconn starts a gRPC server made with opts, on an in-memory bufconn
// listener, with the services register adds, and returns a client
// connection to it and the server itself (for a test that stops it on
// purpose). The connection is closed and the server stopped when the test
// ends.
func newBufconn(tb testing.TB, register func(*grpc.Server), opts ...grpc.ServerOption) (*grpc.ClientConn, *grpc.Server) {
	tb.Helper()
	dial, gs := serveBufconn(tb, register, opts...)
	return dial(), gs
}

// serveBufconn is newBufconn for a test that needs several connections to
// one server: each call of dial opens one more, closed when the test ends.
func serveBufconn(tb testing.TB, register func(*grpc.Server), opts ...grpc.ServerOption) (dial func() *grpc.ClientConn, gs *grpc.Server) {
	tb.Helper()
	lis := bufconn.Listen(1 << 20)
	gs = grpc.NewServer(opts...)
	register(gs)
	go gs.Serve(lis)
	tb.Cleanup(gs.Stop)
	dial = func() *grpc.ClientConn {
		tb.Helper()
		conn, err := grpc.NewClient("passthrough:///bufconn",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { conn.Close() })
		return conn
	}
	return dial, gs
}

func newGRPCEnv(t *testing.T, yaml string) *grpcEnv {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	srv := New(mustParse(t, yaml), Options{Registerer: reg})
	conn, gs := newBufconn(t, func(s *grpc.Server) { extprocv3.RegisterExternalProcessorServer(s, srv) })
	return &grpcEnv{srv: srv, reg: reg, gs: gs, client: extprocv3.NewExternalProcessorClient(conn)}
}

// stream opens an ext_proc stream as Envoy does, with the route's
// grpc_initial_metadata.
func (e *grpcEnv) stream(t *testing.T, policyName string) (extprocv3.ExternalProcessor_ProcessClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if policyName != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, MetadataPolicy, policyName)
	}
	st, err := e.client.Process(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return st, cancel
}

// roundTrip sends m and reads its answer, checking it as Envoy would.
func roundTrip(t *testing.T, st extprocv3.ExternalProcessor_ProcessClient, m *extprocv3.ProcessingRequest) reply {
	t.Helper()
	if err := st.Send(m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if err := checkResponse(m, r); err != nil {
		t.Errorf("response to %s: %v\n%s", kind(m), err, r)
	}
	return summarize(r)
}

func TestGRPCEndToEnd(t *testing.T) {
	e := newGRPCEnv(t, semanticsYAML)
	const o = "https://app.example.com"

	// An actual request: request and response phases share the stream;
	// Envoy then half-closes.
	st, cancel := e.stream(t, "")
	wantReplies(t, []reply{
		roundTrip(t, st, get("api.example.com", o).message()),
		roundTrip(t, st, envoyResponse(500, [2]string{"access-control-allow-origin", "*"})),
	}, continueReq(), corsResp(acao(o), aceh("x-request-id"), varyOrigin()))
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Errorf("after half-close: Recv = %v, want io.EOF (the server ends the stream cleanly)", err)
	}
	cancel()

	// A preflight, selected by the x-corsproc-policy metadata although the
	// host matches another policy; Envoy resets the stream after the
	// immediate response.
	st, cancel = e.stream(t, "creds")
	wantReplies(t, []reply{roundTrip(t, st, preflight("api.example.com", o, "PUT").message())},
		allowed(acao(o), acac(), acam(dchMethods), acah(dchHeaders), acma("86400"), varyPreflight()))
	cancel()

	// Unknown policy name in metadata: governed and refused, the
	// upstream's CORS headers removed.
	st, cancel = e.stream(t, "no-such-policy")
	wantReplies(t, []reply{
		roundTrip(t, st, get("api.example.com", o).message()),
		roundTrip(t, st, defaultUpstream()),
	}, continueReq(), corsResp(varyOrigin()))
	st.CloseSend()
	st.Recv()
	cancel()

	// Non-UTF-8 bytes in raw_value travel and come back intact.
	st, cancel = e.stream(t, "")
	wantReplies(t, []reply{roundTrip(t, st, get("api.example.com", "https://\xff.example.com").message())}, continueReq())
	cancel()

	// An unknown message ends the stream with INVALID_ARGUMENT.
	st, cancel = e.stream(t, "")
	if err := st.Send(&extprocv3.ProcessingRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown message: Recv = %v, want InvalidArgument", err)
	}
	cancel()

	// GracefulStop waits for every handler to return, so the metrics are
	// final: resets and half-closes are not errors.
	e.gs.GracefulStop()
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(`
# HELP corsproc_rejections_total Requests refused (preflight rejected or forwarded, origin not allowed, unknown policy), by policy ("" for an unknown policy), reason and mode (enforce, or shadow: recorded only).
# TYPE corsproc_rejections_total counter
corsproc_rejections_total{mode="enforce",policy="",reason="unknown_policy"} 1
corsproc_rejections_total{mode="enforce",policy="web",reason="origin_malformed"} 1
# HELP corsproc_requests_total Requests decided, by governing policy ("" for ungoverned and unknown_policy) and outcome: preflight_allowed, preflight_rejected, preflight_forwarded, allowed, disallowed_origin, non_cors, ungoverned, unknown_policy, and for shadow-mode policies shadow_would_allow or shadow_would_reject.
# TYPE corsproc_requests_total counter
corsproc_requests_total{outcome="allowed",policy="web"} 1
corsproc_requests_total{outcome="disallowed_origin",policy="web"} 1
corsproc_requests_total{outcome="preflight_allowed",policy="creds"} 1
corsproc_requests_total{outcome="ungoverned",policy=""} 0
corsproc_requests_total{outcome="unknown_policy",policy=""} 1
# HELP corsproc_stream_errors_total ext_proc streams ended with an error, by kind: unknown_message (a message with no known request type, answered INVALID_ARGUMENT), recv, send.
# TYPE corsproc_stream_errors_total counter
corsproc_stream_errors_total{kind="recv"} 0
corsproc_stream_errors_total{kind="send"} 0
corsproc_stream_errors_total{kind="unknown_message"} 1
# HELP corsproc_streams_total ext_proc streams opened by Envoy (one per HTTP request per filter).
# TYPE corsproc_streams_total counter
corsproc_streams_total 5
`), MetricRejections, MetricRequests, MetricStreamErrors, MetricStreams); err != nil {
		t.Error(err)
	}
	// Every answered message is timed; the unknown one is not.
	for kind, n := range map[string]uint64{MessageRequestHeaders: 4, MessageResponseHeaders: 2, MessageOther: 0} {
		if got := histogramCount(t, e.reg, kind); got != n {
			t.Errorf("%s{message=%q} count %d, want %d", MetricProcessing, kind, got, n)
		}
	}
}

// Several x-corsproc-policy values are ambiguous: treated as unknown, so the
// preflight is answered 403 by corsproc.
func TestGRPCAmbiguousMetadata(t *testing.T) {
	e := newGRPCEnv(t, semanticsYAML)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, MetadataPolicy, "web", MetadataPolicy, "creds")
	st, err := e.client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantReplies(t, []reply{roundTrip(t, st, preflight("api.example.com", "https://app.example.com", "PUT").message())},
		rejected())
	st.CloseSend()
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Recv = %v, want io.EOF", err)
	}
	if v := testutil.ToFloat64(e.srv.m.unknownPolicy); v != 1 {
		t.Errorf("unknown policy count %v, want 1", v)
	}
}
