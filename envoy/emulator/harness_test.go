package emulator_test

// The test harness: a scripted fake ext_proc processor on a real gRPC server
// (in memory, bufconn), a recording upstream, and the Proxy under test called
// as an http.Handler. Nothing here sleeps: every wait is on a condition, with
// a deadline.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/corsproc/corsproc/envoy/emulator"
)

// waitLimit bounds every wait; nothing should come close to it.
const waitLimit = 10 * time.Second

// script is what the fake processor does on one stream.
type script func(s *procStream) error

// procStream is the processor's side of one ext_proc stream.
type procStream struct {
	t        *testing.T
	srv      extprocv3.ExternalProcessor_ProcessServer
	testDone <-chan struct{}
	md       metadata.MD

	mu       sync.Mutex
	received []*extprocv3.ProcessingRequest
	end      error // how the stream ended for Recv: io.EOF, Canceled…
}

// Recv returns the next message, or nil once the stream has ended (the
// emulator half-closed or reset it), recording how it ended.
func (s *procStream) Recv() *extprocv3.ProcessingRequest {
	m, err := s.srv.Recv()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.end = err
		return nil
	}
	s.received = append(s.received, m)
	return m
}

// Send sends a response; an error is the emulator having reset the stream.
func (s *procStream) Send(r *extprocv3.ProcessingResponse) error { return s.srv.Send(r) }

// Stall blocks until the emulator resets the stream (message_timeout) or the
// test ends, without answering.
func (s *procStream) Stall() {
	select {
	case <-s.srv.Context().Done():
	case <-s.testDone:
	}
}

// WaitEnd reads until the stream ends and fails the test if a message
// arrives instead.
func (s *procStream) WaitEnd() {
	if m := s.Recv(); m != nil {
		s.t.Errorf("processor: unexpected message after the last answer: %v", m)
		s.WaitEnd()
	}
}

func (s *procStream) messages() []*extprocv3.ProcessingRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*extprocv3.ProcessingRequest(nil), s.received...)
}

func (s *procStream) endErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end
}

// answer is the script of a well-behaved processor: one canned response per
// message received, in order, then it waits for the emulator to end the
// stream. A message beyond the canned responses is an error.
func answer(rs ...*extprocv3.ProcessingResponse) script {
	return func(s *procStream) error {
		for _, r := range rs {
			if s.Recv() == nil {
				return nil
			}
			if err := s.Send(r); err != nil {
				return nil
			}
		}
		s.WaitEnd()
		return nil
	}
}

// fakeProcessor is a scripted ext_proc server.
type fakeProcessor struct {
	extprocv3.UnimplementedExternalProcessorServer
	t        *testing.T
	script   script
	testDone chan struct{}
	ended    chan *procStream
}

func (f *fakeProcessor) Process(srv extprocv3.ExternalProcessor_ProcessServer) error {
	md, _ := metadata.FromIncomingContext(srv.Context())
	s := &procStream{t: f.t, srv: srv, testDone: f.testDone, md: md}
	defer func() { f.ended <- s }()
	return f.script(s)
}

// harness is one emulated Envoy with its fake processor and upstream.
type harness struct {
	t     *testing.T
	proc  *fakeProcessor
	up    *upstream
	proxy *emulator.Proxy
	logs  chan emulator.LogEntry
	conn  *grpc.ClientConn
}

// newHarness starts a fake processor running sc on every stream, an
// upstream, and a Proxy configured by cfg. Unset fields get: the upstream's
// URL, one route named "r" for every path, and a message_timeout of
// waitLimit, so that a loaded machine never turns a slow answer into a 504
// (the timeout tests set their own).
func newHarness(t *testing.T, cfg emulator.Config, sc script) *harness {
	t.Helper()
	h := &harness{t: t, up: newUpstream(t), logs: make(chan emulator.LogEntry, 1000)}
	h.proc = &fakeProcessor{t: t, script: sc, testDone: make(chan struct{}), ended: make(chan *procStream, 1000)}

	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, h.proc)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	// Registered after gs.Stop, so it runs first: stalled scripts return.
	t.Cleanup(func() { close(h.proc.testDone) })

	h.conn = dialBufconn(t, lis)
	if cfg.Upstream == "" {
		cfg.Upstream = h.up.srv.URL
	}
	if cfg.Routes == nil {
		cfg.Routes = []emulator.Route{{Name: "r"}}
	}
	if cfg.MessageTimeout == 0 {
		cfg.MessageTimeout = waitLimit
	}
	if cfg.AccessLog == nil {
		cfg.AccessLog = func(e emulator.LogEntry) { h.logs <- e }
	}
	p, err := emulator.New(cfg, h.conn)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.CloseIdleConnections)
	h.proxy = p
	return h
}

func dialBufconn(t *testing.T, lis *bufconn.Listener) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// do serves req and returns the response, its body and the access log
// entry.
func (h *harness) do(req *http.Request) (*http.Response, string, emulator.LogEntry) {
	h.t.Helper()
	rec := httptest.NewRecorder()
	h.proxy.ServeHTTP(rec, req)
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	var e emulator.LogEntry
	select {
	case e = <-h.logs:
	default:
		h.t.Errorf("no access log entry for %s %s", req.Method, req.URL)
	}
	return resp, string(body), e
}

// get serves a GET of path with the given header lines ("Name: value").
func (h *harness) get(path string, headers ...string) (*http.Response, string, emulator.LogEntry) {
	h.t.Helper()
	return h.do(newRequest("GET", path, "", headers...))
}

func newRequest(method, path, body string, headers ...string) *http.Request {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	req.Host = "api.example.com"
	for _, l := range headers {
		k, v, _ := strings.Cut(l, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	return req
}

// streams waits for n streams to end on the processor and returns them in
// the order they ended.
func (h *harness) streams(n int) []*procStream {
	h.t.Helper()
	out := make([]*procStream, 0, n)
	deadline := time.After(waitLimit)
	for len(out) < n {
		select {
		case s := <-h.proc.ended:
			out = append(out, s)
		case <-deadline:
			h.t.Fatalf("%d of %d ext_proc streams ended within %v", len(out), n, waitLimit)
		}
	}
	return out
}

// stream waits for the only stream of a single-request test.
func (h *harness) stream() *procStream {
	h.t.Helper()
	return h.streams(1)[0]
}

// noMoreStreams checks that no stream beyond those already collected reached
// the processor, using the emulator's own count (a stream it opened) and the
// processor's (a stream it served).
func (h *harness) noMoreStreams(want int) {
	h.t.Helper()
	if got := h.proxy.Stats().Streams; got != want {
		h.t.Errorf("Stats.Streams = %d, want %d", got, want)
	}
	select {
	case s := <-h.proc.ended:
		h.t.Errorf("an unexpected ext_proc stream, with messages %v", s.messages())
	default:
	}
}

// upstream is a recording upstream server.
type upstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []seen
	// respond writes the upstream's answer; nil answers 200 "upstream".
	respond http.HandlerFunc
}

// seen is a request as the upstream received it.
type seen struct {
	Method, RequestURI, Host string
	Header                   http.Header
	Body                     string
	ContentLength            int64
}

// deadUpstream returns the URL of a loopback port nothing listens on: an
// upstream Envoy cannot connect to.
func deadUpstream(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	return dead
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, seen{r.Method, r.RequestURI, r.Host, r.Header.Clone(), string(body), r.ContentLength})
		respond := u.respond
		u.mu.Unlock()
		if respond != nil {
			respond(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) setRespond(f http.HandlerFunc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.respond = f
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.got...)
}

// Processor responses.

func continueRequest(mu *extprocv3.HeaderMutation) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: mu}},
	}}
}

func continueResponse(mu *extprocv3.HeaderMutation) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
		ResponseHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: mu}},
	}}
}

func skipResponsePhase(r *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	r.ModeOverride = &extprocfilterv3.ProcessingMode{ResponseHeaderMode: extprocfilterv3.ProcessingMode_SKIP}
	return r
}

func immediate(code int, mu *extprocv3.HeaderMutation, body, details string) *extprocv3.ProcessingResponse {
	ir := &extprocv3.ImmediateResponse{Headers: mu, Body: []byte(body), Details: details}
	if code >= 0 {
		ir.Status = &typev3.HttpStatus{Code: typev3.StatusCode(code)}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: ir}}
}

// mutation builds a HeaderMutation.
func mutation(remove []string, set ...*corev3.HeaderValueOption) *extprocv3.HeaderMutation {
	return &extprocv3.HeaderMutation{RemoveHeaders: remove, SetHeaders: set}
}

// set replaces a header, as corsproc does (append unset, raw_value only).
func set(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}}
}

// add appends a value (append: true).
func add(k, v string) *corev3.HeaderValueOption {
	o := set(k, v)
	o.Append = wrapperspb.Bool(true)
	return o
}

// Reading messages.

// headerLines renders an HttpHeaders as "key: value" lines, checking that
// every value travels in raw_value only, as Envoy sends it.
func headerLines(t *testing.T, hh *extprocv3.HttpHeaders) []string {
	t.Helper()
	var out []string
	for _, hv := range hh.GetHeaders().GetHeaders() {
		if hv.GetValue() != "" {
			t.Errorf("header %s has value %q: Envoy sends raw_value only", hv.GetKey(), hv.GetValue())
		}
		out = append(out, hv.GetKey()+": "+string(hv.GetRawValue()))
	}
	return out
}

func requestHeadersOf(t *testing.T, m *extprocv3.ProcessingRequest) *extprocv3.HttpHeaders {
	t.Helper()
	h := m.GetRequestHeaders()
	if h == nil {
		t.Fatalf("message %v is not request_headers", m)
	}
	return h
}

func responseHeadersOf(t *testing.T, m *extprocv3.ProcessingRequest) *extprocv3.HttpHeaders {
	t.Helper()
	h := m.GetResponseHeaders()
	if h == nil {
		t.Fatalf("message %v is not response_headers", m)
	}
	return h
}

// kinds names the messages of a stream: request_headers, response_headers.
func kinds(ms []*extprocv3.ProcessingRequest) string {
	var ks []string
	for _, m := range ms {
		switch m.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			ks = append(ks, "request_headers")
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			ks = append(ks, "response_headers")
		default:
			ks = append(ks, "other")
		}
	}
	return strings.Join(ks, ",")
}

// isStreamEnd reports whether err is how Envoy ends a stream, as a server
// sees it.
func isStreamEnd(err error) bool {
	return errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled
}
