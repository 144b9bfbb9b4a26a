package processor

// What concurrent worst-case messages cost the heap once decoded
// (docs/security.md, "Bounds").

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
)

// decodedMessageBudget is the heap one decoded worst-case message may hold,
// with its stream on the server and on the test's client, at the default
// bounds: the header entries the processor may inspect and one more
// (about 100 bytes each), their names and values copied (raw values once,
// values also as strings: twice DefaultMaxRequestHeaderBytes), up to
// MaxOtherMessages other messages, and a stream's own state. docs/security.md
// states it.
const decodedMessageBudget = 512 << 10

// concurrentMessages is how many worst-case messages the test holds at
// once: the attack that took a pod past its memory limit used 32 streams.
const concurrentMessages = 32

// rawCodec lets the test's client send bytes as they are: one buffer
// shared by every stream, so that the heap the test measures is the
// server's.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(mem.BufferSlice, any) error { return nil }

// holdingServer decodes one message per stream with the gRPC server's codec
// and holds it until release is closed, as a stream holds its message
// while the processor handles it.
type holdingServer struct {
	extprocv3.UnimplementedExternalProcessorServer
	held    chan *extprocv3.ProcessingRequest
	release chan struct{}
}

func (h *holdingServer) Process(st extprocv3.ExternalProcessor_ProcessServer) error {
	m, err := st.Recv()
	if err != nil {
		return err
	}
	h.held <- m
	<-h.release
	return nil
}

// heapInUse is the live heap after two collections (the second empties
// the pools the first moved aside).
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// worstCaseMessages are the request messages that cost the most heap to
// decode, at DefaultMaxRecvMsgSize and the default bounds.
func worstCaseMessages() map[string][]byte {
	size := DefaultMaxRecvMsgSize
	// Legacy value fields, decoded as strings besides the raw bytes: many
	// entries that fill the byte bound, then more.
	var legacy []byte
	for len(legacy) < size-2100 {
		e := append(wireField(fieldKey, []byte("x-pad")), wireField(fieldValue, []byte(strings.Repeat("v", 1000)))...)
		legacy = append(legacy, wireField(fieldHeaderValues, e)...)
	}
	// An unknown field sends the message to proto.Unmarshal: headers and
	// attributes just within the bounds, the rest of the message unknown
	// bytes, which proto.Unmarshal keeps.
	var within []byte
	for range DefaultMaxRequestHeaders {
		within = append(within, wireField(fieldHeaderValues, wireHV("x-pad", strings.Repeat("p", DefaultMaxRequestHeaderBytes/DefaultMaxRequestHeaders-5)))...)
	}
	var st []byte
	for i := range MaxOtherMessages/2 - 4 {
		st = append(st, wireField(fieldStructFields, append(wireField(fieldKey, fmt.Appendf(nil, "%d", i)),
			wireField(fieldValue, wireField(fieldStringValue, []byte("v")))...))...)
	}
	fallback := append(requestHeadersWire(within), wireField(fieldAttributes, append(wireField(fieldKey, []byte("k")), wireField(fieldValue, st)...))...)
	fallback = append(fallback, wireField(99, make([]byte, size-len(fallback)-16))...)
	return map[string][]byte{
		"empty_entries": worstCaseEntries(size),
		"legacy_values": requestHeadersWire(legacy),
		"fallback":      fallback,
	}
}

// 32 concurrent worst-case messages, each decoded by the gRPC server's
// codec and held, keep the heap under twice its idle size plus
// decodedMessageBudget each. (With a codec that built every header entry,
// one message of empty entries cost about 54 bytes of heap per byte.)
func TestConcurrentWorstCaseMessagesHeap(t *testing.T) {
	for name, msg := range worstCaseMessages() {
		t.Run(name, func(t *testing.T) {
			if len(msg) > DefaultMaxRecvMsgSize {
				t.Fatalf("message of %d bytes, past DefaultMaxRecvMsgSize", len(msg))
			}
			srv := New(nil, Options{Registerer: prometheus.NewRegistry()})
			hold := &holdingServer{held: make(chan *extprocv3.ProcessingRequest, concurrentMessages+1), release: make(chan struct{})}
			gs := grpc.NewServer(srv.GRPCServerOptions()...)
			extprocv3.RegisterExternalProcessorServer(gs, hold)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go gs.Serve(lis)
			released := false
			release := func() {
				if !released {
					released = true
					close(hold.release)
				}
			}
			defer gs.Stop()
			defer release()
			conn, err := grpc.NewClient(lis.Addr().String(),
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			desc := &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}
			var kept []*extprocv3.ProcessingRequest // the decoded messages, live
			send := func() {
				t.Helper()
				cs, err := conn.NewStream(ctx, desc, processMethod)
				if err != nil {
					t.Fatal(err)
				}
				if err := cs.SendMsg(&msg); err != nil {
					t.Fatal(err)
				}
				select {
				case m := <-hold.held:
					if m.GetRequestHeaders() == nil {
						t.Fatalf("decoded %v", m)
					}
					kept = append(kept, m)
				case <-ctx.Done():
					t.Fatal("the message was not decoded")
				}
			}
			// One stream first, so that the connection and gRPC's pools
			// are part of the idle heap.
			send()
			idle := heapInUse()
			limit := 2*idle + concurrentMessages*decodedMessageBudget
			// The streams are held open together; each message is sent
			// once the one before it is decoded, so that a codec past its
			// budget fails the test at the first message past the limit
			// rather than after decoding them all.
			for i := range concurrentMessages {
				send()
				if h := heapInUse(); h > limit {
					t.Fatalf("%d messages held: heap %d bytes, past 2 × idle (%d) + %d × %d", i+1, h, idle, concurrentMessages, decodedMessageBudget)
				}
			}
			h := heapInUse()
			t.Logf("idle heap %d bytes; %d messages of %d bytes held: %d bytes (%d per message)",
				idle, concurrentMessages+1, len(msg), h, (int64(h)-int64(idle))/concurrentMessages)
			runtime.KeepAlive(kept)
		})
	}
}
