package processor

// The soak test: many Envoy-shaped streams over real gRPC on loopback TCP
// while the policy file is reloaded every 100 ms through the real reload
// path, with clients cancelling mid-stream and malformed messages mixed in.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/policy/reload"
)

var soakFlag = flag.Duration("soak", 0, "how long TestSoak runs (default 3s, 1s with -short; or $CORSPROC_SOAK)")

func soakDuration(t *testing.T) time.Duration {
	if *soakFlag > 0 {
		return *soakFlag
	}
	if v := os.Getenv("CORSPROC_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CORSPROC_SOAK=%q: want a positive duration such as 60s", v)
		}
		return d
	}
	if testing.Short() {
		return time.Second
	}
	return 3 * time.Second
}

// Two policy sets that answer every CORS request differently, so that a
// response tells which set made it.
const (
	soakPolicyA = `default_policy: web
policies:
  - name: web
    allowed_origins: [https://a.example, https://both.example]
    allow_methods: [GET, PUT]
    allow_headers: [content-type]
    expose_headers: [x-a]
    preflight_max_age: 600
    allow_credentials: true
`
	soakPolicyB = `default_policy: web
policies:
  - name: web
    allowed_origins: [https://b.example, https://both.example]
    allow_methods: [GET, DELETE]
    allow_headers: [x-b]
    expose_headers: [x-b]
    preflight_max_age: 300
  - name: public
    match: {hosts: [public.example]}
    allow_all_origins: true
`
	soakStreams = 64
)

// soakRequest is one HTTP request as Envoy reports it to corsproc.
type soakRequest struct {
	kind  string
	msgs  []*extprocv3.ProcessingRequest
	md    []string
	short bool // the client cancels after the first answer
}

func (r soakRequest) String() string { return r.kind }

// soakGen makes random Envoy-shaped requests, well-formed or not.
func soakGen(rng *rand.Rand) soakRequest {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	origin := pick("https://a.example", "https://b.example", "https://both.example", "https://evil.example", "", "https://A.example", "null")
	host := pick("api.example", "public.example")
	var md []string
	if rng.IntN(10) == 0 {
		md = []string{pick("web", "public", "nope")}
	}
	switch n := rng.IntN(100); {
	case n < 35:
		var extra [][2]string
		if rng.IntN(2) == 0 {
			extra = append(extra, acrhH(pick("content-type", "x-b", "content-type, x-b", "X-B,,")))
		}
		return soakRequest{kind: "preflight", md: md,
			msgs: []*extprocv3.ProcessingRequest{preflight(host, origin, pick("PUT", "DELETE", "GET", "patch"), extra...).message()}}
	case n < 70:
		return soakRequest{kind: "actual", md: md, msgs: []*extprocv3.ProcessingRequest{
			get(host, origin).message(), envoyResponse(200+rng.IntN(4)*100, [2]string{"access-control-allow-origin", "*"})}}
	case n < 80:
		return soakRequest{kind: "cancel_after_request_headers", md: md, short: true, msgs: []*extprocv3.ProcessingRequest{
			get(host, origin).message(), defaultUpstream()}}
	case n < 85:
		// Malformed but answerable: garbage bytes, duplicated and
		// oversized headers, response headers with no request headers.
		hs := []*corev3.HeaderValue{
			{Key: ":method", RawValue: []byte(pick("GET", "OPTIONS", "\xff"))},
			{Key: ":authority", RawValue: []byte(host)},
			{Key: "origin", RawValue: []byte(origin)},
			{Key: "origin", RawValue: []byte(pick("https://a.example", "\x00"))},
			{Key: "access-control-request-method", RawValue: []byte(pick("PUT", "", "P\xffT"))},
		}
		// Sometimes past the header count or byte bounds.
		for range rng.IntN(300) {
			hs = append(hs, &corev3.HeaderValue{Key: "x-junk", RawValue: []byte(strings.Repeat("j", rng.IntN(600)))})
		}
		m := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: hs}}}}
		if rng.IntN(3) == 0 {
			return soakRequest{kind: "malformed_response_only", msgs: []*extprocv3.ProcessingRequest{defaultUpstream()}}
		}
		return soakRequest{kind: "malformed_headers", md: md, msgs: []*extprocv3.ProcessingRequest{m, defaultUpstream()}}
	case n < 88:
		// No known message: the stream ends with INVALID_ARGUMENT.
		return soakRequest{kind: "unknown_message", msgs: []*extprocv3.ProcessingRequest{get(host, origin).message(), {}}}
	case n < 89:
		// Past the gRPC server's maximum message size.
		big := get(host, origin, [2]string{"x-big", strings.Repeat("b", soakMaxRecv)}).message()
		return soakRequest{kind: "too_large", msgs: []*extprocv3.ProcessingRequest{big}}
	default:
		return soakRequest{kind: "non_cors", md: md, msgs: []*extprocv3.ProcessingRequest{get(host, "").message(), defaultUpstream()}}
	}
}

// soakMaxRecv is the soak server's maximum received message size.
const soakMaxRecv = 256 << 10

// expected returns what srv answers to r on a fresh stream: the responses,
// and the error code the stream ends with.
func expected(t *testing.T, srv *Server, r soakRequest) ([]*extprocv3.ProcessingResponse, codes.Code) {
	fs := newFakeStream(t, r.md, r.msgs...)
	fs.Lax = false
	err := srv.Process(fs)
	return fs.responses(), status.Code(err)
}

func sameResponses(got, want []*extprocv3.ProcessingResponse) bool {
	if len(got) > len(want) {
		return false
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			return false
		}
	}
	return true
}

// fdCount counts the process's open file descriptors.
func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestSoak runs soakStreams concurrent clients, each opening Envoy-shaped
// streams one after the other, against a processor whose policy file is
// rewritten and reloaded every 100 ms between two sets. Every response must
// be exactly what one of the sets answers, and both phases of a request
// from the same set; well-formed streams see no error; malformed ones end
// as defined; at the end goroutines and file descriptors are back to where
// they were. -soak=60s (or CORSPROC_SOAK=60s) runs it longer.
func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	baselineFDs := fdCount(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	setA := mustParse(t, soakPolicyA)
	setB := mustParse(t, soakPolicyB)
	refA := New(setA, Options{})
	refB := New(setB, Options{})

	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write := func(content string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(soakPolicyA)
	loaded, err := policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewPedanticRegistry()
	srv := New(loaded, Options{Registerer: reg, IdleTimeout: time.Minute})
	var swaps atomic.Int64
	rl := reload.New(path, loaded, func(s *policy.Set) { srv.Swap(s); swaps.Add(1) }, reload.Options{})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.InTapHandle(srv.TapHandle), grpc.MaxRecvMsgSize(soakMaxRecv))
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()

	// Two connections, as Envoy spreads streams over a few.
	var clients []extprocv3.ExternalProcessorClient
	var conns []*grpc.ClientConn
	for range 2 {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		clients = append(clients, extprocv3.NewExternalProcessorClient(conn))
	}

	ctx, stop := context.WithTimeout(t.Context(), dur)
	defer stop()

	// The reloader: rewrite the file and reload every 100 ms.
	var reloaderDone sync.WaitGroup
	reloaderDone.Go(func() {
		useB := true
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			if useB {
				write(soakPolicyB)
			} else {
				write(soakPolicyA)
			}
			useB = !useB
			if res, err := rl.Reload(); err != nil || res != reload.Swapped {
				t.Errorf("reload: %v %v", res, err)
				return
			}
		}
	})

	var (
		mu       sync.Mutex
		counts   = map[string]int{}
		bySet    [2]int // streams answered by A, by B
		unknowns atomic.Int64
		tooLarge atomic.Int64
		failures atomic.Int64
	)
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 20 {
			t.Errorf(format, args...)
		}
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("soak: %v, %d streams, seed %d", dur, soakStreams, seed)

	var workers sync.WaitGroup
	for w := range soakStreams {
		workers.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			client := clients[w%len(clients)]
			for ctx.Err() == nil {
				r := soakGen(rng)
				wantA, codeA := expected(t, refA, r)
				wantB, codeB := expected(t, refB, r)
				got, code, err := soakStream(client, r, rng)
				if err != nil {
					fail("%s: %v", r, err)
					continue
				}
				if r.kind == "too_large" {
					// gRPC refuses it before corsproc sees it.
					if len(got) != 0 || code != codes.ResourceExhausted {
						fail("%s: %d responses, end %v, want RESOURCE_EXHAUSTED", r, len(got), code)
					}
					tooLarge.Add(1)
					continue
				}
				okA := sameResponses(got, wantA) && (r.short || code == codeA && len(got) == len(wantA))
				okB := sameResponses(got, wantB) && (r.short || code == codeB && len(got) == len(wantB))
				if !okA && !okB {
					fail("%s: responses %v (end %v) match neither policy set:\nA: %v (end %v)\nB: %v (end %v)",
						r, got, code, wantA, codeA, wantB, codeB)
					continue
				}
				if r.kind == "unknown_message" {
					unknowns.Add(1)
				}
				mu.Lock()
				counts[r.kind]++
				if okA && !okB {
					bySet[0]++
				} else if okB && !okA {
					bySet[1]++
				}
				mu.Unlock()
			}
		})
	}
	workers.Wait()
	reloaderDone.Wait()
	t.Logf("soak: streams by kind %v; told apart as set A %d, set B %d; %d swaps", counts, bySet[0], bySet[1], swaps.Load())
	if bySet[0] == 0 || bySet[1] == 0 {
		t.Errorf("streams answered by set A: %d, by set B: %d: the reloads did not show", bySet[0], bySet[1])
	}
	// One reload every 100 ms, a little less on a loaded machine.
	if swaps.Load() < 3 {
		t.Errorf("%d swaps in %v, want a reload every 100 ms", swaps.Load(), dur)
	}

	for _, c := range conns {
		c.Close()
	}
	gs.GracefulStop()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	// Errors only where the input was bad: unknown messages, and messages
	// past the size limit (a receive error on the server).
	if v := testutil.ToFloat64(srv.m.errUnknownMessage); v != float64(unknowns.Load()) {
		t.Errorf("unknown_message errors %v, want %d", v, unknowns.Load())
	}
	if v := testutil.ToFloat64(srv.m.errRecv); v != float64(tooLarge.Load()) {
		t.Errorf("recv errors %v, want %d (one per message past the size limit)", v, tooLarge.Load())
	}
	if v := testutil.ToFloat64(srv.m.errSend); v != 0 {
		t.Errorf("send errors %v, want 0", v)
	}

	// File descriptors back to the baseline (closing is asynchronous).
	deadline := time.Now().Add(10 * time.Second)
	for n := fdCount(t); n > baselineFDs; n = fdCount(t) {
		if time.Now().After(deadline) {
			t.Errorf("%d file descriptors open, %d before the soak", n, baselineFDs)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// soakStream runs r on a new stream as Envoy would: each message sent once
// the previous one is answered, the stream half-closed at the end, or
// cancelled early for short requests. It returns the responses and the code
// the stream ended with, and an error for anything a well-behaved server
// would not do.
func soakStream(client extprocv3.ExternalProcessorClient, r soakRequest, rng *rand.Rand) ([]*extprocv3.ProcessingResponse, codes.Code, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, v := range r.md {
		ctx = metadata.AppendToOutgoingContext(ctx, MetadataPolicy, v)
	}
	st, err := client.Process(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("open: %w", err)
	}
	var got []*extprocv3.ProcessingResponse
	for i, m := range r.msgs {
		if err := st.Send(m); err != nil && !errors.Is(err, io.EOF) {
			return got, 0, fmt.Errorf("send %d: %w", i, err)
		}
		resp, err := st.Recv()
		if err != nil {
			// The server ended the stream: say how.
			return got, status.Code(err), nil
		}
		if err := checkResponse(m, resp); err != nil {
			return got, 0, fmt.Errorf("response %d: %w", i, err)
		}
		got = append(got, resp)
		if resp.GetImmediateResponse() != nil {
			// Envoy resets the stream after an immediate response.
			return got, codes.OK, nil
		}
		if r.short && rng.IntN(2) == 0 {
			// The downstream went away: Envoy resets the stream.
			cancel()
			return got, codes.OK, nil
		}
	}
	if r.short {
		cancel()
		return got, codes.OK, nil
	}
	if err := st.CloseSend(); err != nil {
		return got, 0, fmt.Errorf("half-close: %w", err)
	}
	if _, err := st.Recv(); err != io.EOF {
		return got, status.Code(err), nil
	}
	return got, codes.OK, nil
}
