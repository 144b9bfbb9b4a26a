package main

// The gRPC server's bounds (processor/grpcoptions.go) and serve's bound flags: what
// happens past each.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/corsproc/corsproc/processor"

	"github.com/corsproc/corsproc/internal/testutil"
)

// requestHeaders is an Envoy request_headers message.
func requestHeaders(kv ...string) *extprocv3.ProcessingRequest {
	var hs []*corev3.HeaderValue
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hs}, EndOfStream: true}}}
}

// devPreflight is a preflight the development policy allows.
func devPreflight(extra ...string) *extprocv3.ProcessingRequest {
	return requestHeaders(append([]string{":method", "OPTIONS", ":path", "/", ":authority", "api.localhost",
		"origin", "http://localhost:3000", "access-control-request-method", "PUT"}, extra...)...)
}

func responseHeaders() *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("200")}}}}}}
}

// exchange sends m on a new stream and returns the answer's immediate
// response status (0 for another answer) or the stream's error.
func exchange(t *testing.T, client extprocv3.ExternalProcessorClient, m *extprocv3.ProcessingRequest) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	st, err := client.Process(ctx)
	if err != nil {
		return 0, err
	}
	if err := st.Send(m); err != nil && err != io.EOF {
		return 0, err
	}
	resp, err := st.Recv()
	if err != nil {
		return 0, err
	}
	return int(resp.GetImmediateResponse().GetStatus().GetCode()), nil
}

// sized is a preflight the development policy allows, padded to n bytes.
func sized(t *testing.T, n int) *extprocv3.ProcessingRequest {
	t.Helper()
	l := n
	for range 20 {
		m := devPreflight("x-pad", strings.Repeat("p", l))
		got := proto.Size(m)
		if got == n {
			return m
		}
		l += n - got
	}
	t.Fatalf("cannot make a message of %d bytes", n)
	return nil
}

// Past --max-message-bytes (processor.DefaultMaxRecvMsgSize by default) a
// message fails its stream with RESOURCE_EXHAUSTED; just under it, it is
// answered.
func TestMaxRecvMsgSize(t *testing.T) {
	t.Parallel()
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "")
	client := extprocv3.NewExternalProcessorClient(dial(t, in.addrs.grpc))
	// Just under the bound: past the header byte bound, so refused as
	// CORS, but answered.
	if code, err := exchange(t, client, sized(t, processor.DefaultMaxRecvMsgSize)); err != nil || code != 403 {
		t.Errorf("a message of processor.DefaultMaxRecvMsgSize bytes: %d, %v, want a 403 answer", code, err)
	}
	_, err := exchange(t, client, sized(t, processor.DefaultMaxRecvMsgSize+1))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a message of processor.DefaultMaxRecvMsgSize+1 bytes: %v, want RESOURCE_EXHAUSTED", err)
	}
	// The connection is still good.
	if code, err := exchange(t, client, devPreflight()); err != nil || code != 204 {
		t.Errorf("after the refused message: %d, %v", code, err)
	}

	// --max-message-bytes sets it.
	in = startServe(t, "--listen", "127.0.0.1:0", "--admin", "", "--max-message-bytes", "65536")
	client = extprocv3.NewExternalProcessorClient(dial(t, in.addrs.grpc))
	if code, err := exchange(t, client, sized(t, 65536)); err != nil || code != 204 {
		t.Errorf("--max-message-bytes 65536, a message of 65536 bytes: %d, %v, want a 204 answer", code, err)
	}
	if _, err := exchange(t, client, sized(t, 65537)); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("--max-message-bytes 65536, a message of 65537 bytes: %v, want RESOURCE_EXHAUSTED", err)
	}
}

// --max-streams bounds the streams open on the whole server, every
// connection together: one more is refused with RESOURCE_EXHAUSTED and
// counted, and one opens again once another ended.
func TestServeMaxStreams(t *testing.T) {
	t.Parallel()
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--max-streams", "3")
	conns := []*grpc.ClientConn{dial(t, in.addrs.grpc), dial(t, in.addrs.grpc)}
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	actual := requestHeaders(":method", "GET", ":path", "/", ":authority", "api.localhost", "origin", "http://localhost:3000")
	open := func(conn *grpc.ClientConn) (extprocv3.ExternalProcessor_ProcessClient, error) {
		st, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
		if err != nil {
			return nil, err
		}
		// A refused stream's Send may return io.EOF: its status is then
		// Recv's error (grpc-go's ClientStream.SendMsg).
		if err := st.Send(actual); err != nil && err != io.EOF {
			return nil, err
		}
		_, err = st.Recv()
		return st, err
	}
	var held []extprocv3.ExternalProcessor_ProcessClient
	for i := range 3 {
		st, err := open(conns[i%2])
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		held = append(held, st)
	}
	if _, err := open(conns[1]); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a fourth stream: %v, want RESOURCE_EXHAUSTED", err)
	}
	_, metrics := get(t, "GET", "http://"+in.addrs.admin+"/metrics")
	if v := metricValue(t, metrics, `corsproc_limits_exceeded_total{limit="streams"}`); v != 1 {
		t.Errorf("refused streams counted %v, want 1", v)
	}
	held[0].CloseSend()
	if _, err := held[0].Recv(); err != io.EOF {
		t.Fatalf("end of stream 0: %v", err)
	}
	if _, err := open(conns[1]); err != nil {
		t.Errorf("a stream after one ended: %v", err)
	}
}

// --max-connections bounds the gRPC connections served at once: one more
// is not served until another closes.
func TestServeMaxConnections(t *testing.T) {
	t.Parallel()
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "", "--max-connections", "2")
	// settings opens a raw connection and reports on ch when the server's
	// SETTINGS arrive: when it serves the connection.
	settings := func() (net.Conn, chan error) {
		conn, err := net.DialTimeout("tcp", in.addrs.grpc, waitLimit)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(waitLimit))
		ch := make(chan error, 1)
		go func() {
			if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
				ch <- err
				return
			}
			fr := http2.NewFramer(conn, conn)
			fr.WriteSettings()
			f, err := fr.ReadFrame()
			if err == nil {
				if _, ok := f.(*http2.SettingsFrame); !ok {
					err = fmt.Errorf("first frame %v, want SETTINGS", f)
				}
			}
			ch <- err
		}()
		return conn, ch
	}
	first, ch1 := settings()
	_, ch2 := settings()
	for _, ch := range []chan error{ch1, ch2} {
		if err := <-ch; err != nil {
			t.Fatalf("a connection within the bound: %v", err)
		}
	}
	_, ch3 := settings()
	select {
	case err := <-ch3:
		t.Fatalf("a third connection was served with --max-connections 2 (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	first.Close()
	if err := <-ch3; err != nil {
		t.Errorf("the third connection, once one closed: %v", err)
	}
}

// Past processor.MaxConcurrentStreams on one connection further streams wait (the
// client honours SETTINGS_MAX_CONCURRENT_STREAMS) until one ends.
func TestMaxConcurrentStreams(t *testing.T) {
	t.Parallel()
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "")
	client := extprocv3.NewExternalProcessorClient(dial(t, in.addrs.grpc))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// processor.MaxConcurrentStreams requests in flight, each waiting for its
	// upstream after its request headers were answered.
	streams := make([]extprocv3.ExternalProcessor_ProcessClient, processor.MaxConcurrentStreams)
	get := requestHeaders(":method", "GET", ":path", "/", ":authority", "api.localhost", "origin", "http://localhost:3000")
	for i := range streams {
		st, err := client.Process(ctx)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if err := st.Send(get); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		streams[i] = st
	}
	// One more waits.
	waitCtx, waitCancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer waitCancel()
	if _, err := client.Process(waitCtx); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("stream %d: %v, want it to wait (DEADLINE_EXCEEDED here)", processor.MaxConcurrentStreams+1, err)
	}
	// It starts as soon as one finishes.
	opened := make(chan error, 1)
	go func() {
		code, err := exchange(t, client, devPreflight())
		if err == nil && code != 204 {
			err = status.Errorf(codes.Unknown, "status %d", code)
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		t.Fatalf("stream %d ran with %d streams open: %v", processor.MaxConcurrentStreams+1, processor.MaxConcurrentStreams, err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := streams[0].Send(responseHeaders()); err != nil {
		t.Fatal(err)
	}
	if _, err := streams[0].Recv(); err != nil {
		t.Fatal(err)
	}
	streams[0].CloseSend()
	if _, err := streams[0].Recv(); err != io.EOF {
		t.Fatalf("end of stream 0: %v", err)
	}
	select {
	case err := <-opened:
		if err != nil {
			t.Errorf("the waiting stream: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the waiting stream did not start after one ended")
	}
}

// rawHTTP2 starts a serve and opens a bare TCP connection to its gRPC port,
// the HTTP/2 client preface already sent, for tests that write frames no
// well-behaved gRPC client would. Reads and writes on it give up after
// waitLimit; it is closed when the test ends.
func rawHTTP2(t *testing.T) net.Conn {
	t.Helper()
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "")
	conn, err := net.DialTimeout("tcp", in.addrs.grpc, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	return conn
}

// A client that pings more often than the keepalive MinTime of
// processor.GRPCServerOptions (10s) is sent GOAWAY
// ENHANCE_YOUR_CALM "too_many_pings" and disconnected.
func TestTooManyPings(t *testing.T) {
	t.Parallel()
	conn := rawHTTP2(t)
	fr := http2.NewFramer(conn, bufio.NewReader(conn))
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			break // the server may already have closed
		}
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY too_many_pings: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			if f.ErrCode != http2.ErrCodeEnhanceYourCalm || string(f.DebugData()) != "too_many_pings" {
				t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", f.ErrCode, f.DebugData())
			}
			return
		}
	}
}

// A client that opens more streams than SETTINGS_MAX_CONCURRENT_STREAMS
// allows, ignoring the setting, gets the extra ones refused (RST_STREAM
// REFUSED_STREAM) rather than served.
func TestConcurrentStreamsEnforced(t *testing.T) {
	t.Parallel()
	conn := rawHTTP2(t)
	bw := bufio.NewWriter(conn)
	fr := http2.NewFramer(bw, bufio.NewReader(conn))
	fr.WriteSettings()
	var hb strings.Builder
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/envoy.service.ext_proc.v3.ExternalProcessor/Process"},
		{":authority", "corsproc"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	const extra = 5
	for i := range processor.MaxConcurrentStreams + extra {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: []byte(hb.String()), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	bw.Flush()
	refused := 0
	for refused < extra {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d refused streams: %v", refused, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok && v != processor.MaxConcurrentStreams {
					t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want %d", v, processor.MaxConcurrentStreams)
				}
				fr.WriteSettingsAck()
				bw.Flush()
			}
		case *http2.RSTStreamFrame:
			if f.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("RST_STREAM %v on stream %d, want REFUSED_STREAM", f.ErrCode, f.StreamID)
			}
			if f.StreamID <= 2*processor.MaxConcurrentStreams {
				t.Errorf("stream %d refused, within the limit", f.StreamID)
			}
			refused++
		}
	}
}

// --stream-idle-timeout closes streams on which nothing arrives.
func TestServeStreamIdleTimeout(t *testing.T) {
	t.Parallel()
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--stream-idle-timeout", "200ms")
	client := extprocv3.NewExternalProcessorClient(dial(t, in.addrs.grpc))
	st, err := client.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := st.Recv(); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("idle stream: %v, want DEADLINE_EXCEEDED", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("closed after %v", d)
	}
	_, metrics := get(t, "GET", "http://"+in.addrs.admin+"/metrics")
	if v := metricValue(t, metrics, `corsproc_limits_exceeded_total{limit="stream_idle_timeout"}`); v != 1 {
		t.Errorf("idle timeouts counted %v, want 1", v)
	}
	// The health service is not subject to it.
	w, closeWatch := watchHealth(t, dialHealth(t, in.addrs.grpc))
	defer closeWatch()
	time.Sleep(400 * time.Millisecond)
	if err := w.Context().Err(); err != nil {
		t.Errorf("health watch closed: %v", err)
	}
}

// --max-request-headers and --max-request-header-bytes: past them a
// preflight is refused.
func TestServeHeaderBounds(t *testing.T) {
	t.Parallel()
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--max-request-headers", "8", "--max-request-header-bytes", "512")
	client := extprocv3.NewExternalProcessorClient(dial(t, in.addrs.grpc))
	for _, c := range []struct {
		name string
		m    *extprocv3.ProcessingRequest
		want int
	}{
		{"within", devPreflight("x-a", "1"), 204},
		{"at the count", devPreflight("x-a", "1", "x-b", "2", "x-c", "3"), 204},
		{"past the count", devPreflight("x-a", "1", "x-b", "2", "x-c", "3", "x-d", "4"), 403},
		{"past the bytes", devPreflight("cookie", strings.Repeat("c", 512)), 403},
	} {
		if code, err := exchange(t, client, c.m); err != nil || code != c.want {
			t.Errorf("%s: %d, %v, want %d", c.name, code, err, c.want)
		}
	}
	_, metrics := get(t, "GET", "http://"+in.addrs.admin+"/metrics")
	for _, l := range []string{processor.LimitRequestHeaders, processor.LimitRequestHeaderBytes} {
		if v := metricValue(t, metrics, `corsproc_limits_exceeded_total{limit="`+l+`"}`); v != 1 {
			t.Errorf("%s counted %v, want 1", l, v)
		}
	}
}

// --listen-mode sets the Unix socket's permission bits (0660 by default),
// and the socket is never at its path with other bits.
func TestServeUnixSocketMode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want fs.FileMode
	}{
		{nil, 0o660},
		{[]string{"--listen-mode", "0600"}, 0o600},
		{[]string{"--listen-mode", "666"}, 0o666},
	} {
		dir := testutil.ShortTempDir(t)
		sock := filepath.Join(dir, "corsproc.sock")
		in := startServe(t, append([]string{"--listen", "unix://" + sock, "--admin", ""}, c.args...)...)
		fi, err := os.Lstat(sock)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != c.want {
			t.Errorf("%q: socket mode %v, want %v", c.args, fi.Mode(), fs.ModeSocket|c.want)
		}
		checkHealth(t, dialHealth(t, "unix://"+sock), "", healthpb.HealthCheckResponse_SERVING)
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Errorf("%q: %d entries beside the socket, want none: %v", c.args, len(ents)-1, ents)
		}
		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("%q: socket left after shutdown: %v", c.args, err)
		}
	}
}

// The admin listener is separate from the gRPC one and changes nothing:
// every method but GET and HEAD is refused on every path, it does not speak
// gRPC, and the gRPC port does not serve the admin pages.
func TestAdminReadOnly(t *testing.T) {
	t.Parallel()
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	admin := "http://" + in.addrs.admin
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/debug/policy", "/", "/debug/pprof/", "/reload", "/quitquitquit"} {
		for _, method := range []string{"POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"} {
			if code, _ := get(t, method, admin+path); code != http.StatusMethodNotAllowed && code != http.StatusNotFound {
				t.Errorf("%s %s = %d, want 405 or 404", method, path, code)
			}
		}
	}
	_, metrics := get(t, "GET", admin+"/metrics")
	if v := metricValue(t, metrics, "corsproc_policy_generation"); v != 1 {
		t.Errorf("generation %v after the requests, want 1", v)
	}
	hc := dialHealth(t, in.addrs.admin)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("the admin port answers gRPC")
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + in.addrs.grpc + "/metrics")
	if err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Error("the gRPC port serves /metrics")
		}
		resp.Body.Close()
	}
}
