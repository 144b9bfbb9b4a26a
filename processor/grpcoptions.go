package processor

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Keepalive. Envoy should ping its connections to corsproc: the cluster's
// HTTP/2 options with connection_keepalive {interval: 30s, timeout: 5s} find
// a dead corsproc before a request stalls on it. grpc-go counts pings that
// come faster than it allows as strikes and, after a few, answers GOAWAY
// "too_many_pings" and closes the connection with every stream on it. These
// values accept Envoy's pings and let corsproc find dead clients in turn.
const (
	// keepaliveMinTime is the shortest interval between client pings that
	// grpc-go tolerates. Its default, 5 minutes, would cut off an Envoy
	// pinging every 30s; 10s still accepts an interval a third as long, and
	// Envoy's 15% interval jitter.
	keepaliveMinTime = 10 * time.Second
	// keepalivePermitWithoutStream accepts pings on connections with no
	// stream open. Envoy pings idle connections too, and a connection to
	// corsproc is idle whenever no request is in flight on it; without this
	// every such ping is a strike.
	keepalivePermitWithoutStream = true
	// keepaliveTime is how long a connection may be silent before corsproc
	// pings the client itself, to find peers that vanished without closing
	// (a node gone from the network) and free what their connections hold.
	keepaliveTime = 2 * time.Minute
	// keepaliveTimeout is how long corsproc waits for the ack of its ping
	// before it closes the connection.
	keepaliveTimeout = 20 * time.Second
)

const (
	// MaxConcurrentStreams caps the streams on one HTTP/2 connection;
	// grpc-go advertises it in SETTINGS_MAX_CONCURRENT_STREAMS and its
	// default is no limit. Each HTTP request on a governed route is one
	// ext_proc stream, open from its request headers until its response
	// headers are processed, so a connection carries one stream per request
	// in flight through it, for as long as the upstream takes to answer.
	// Envoy's connection pool honours the limit: when a connection is full
	// it opens another one to corsproc instead of piling every request of a
	// busy proxy onto one connection and one read loop. (Envoy's default
	// cluster circuit breaker allows 1024 requests in flight in all.)
	MaxConcurrentStreams = 1000

	// MaxRecvMsgSize bounds one ProcessingRequest, down from grpc-go's 4 MiB
	// default. corsproc asks Envoy for headers only, never bodies, and Envoy
	// caps request headers at 60 KiB by default (max_request_headers_kb);
	// the route attribute and metadata add little. 1 MiB leaves room for a
	// deployment that raised the header limit while bounding what one
	// message can make corsproc allocate. A larger message fails its stream
	// with RESOURCE_EXHAUSTED, which Envoy treats as a processor error.
	MaxRecvMsgSize = 1 << 20

	// streamWorkers is the number of goroutines serving streams (see
	// GRPCServerOptions); streams beyond them get a goroutine of their own, as
	// without the option.
	streamWorkers = 64

	// flowControlWindow is the static HTTP/2 window per stream and per
	// connection.
	flowControlWindow = 1 << 20
)

// Defaults of serve's flags for the other bounds (docs/security.md).
const (
	// DefaultIdleTimeout is corsproc serve's --stream-idle-timeout: a stream on which
	// no message arrives for this long is closed with DEADLINE_EXCEEDED. A
	// stream is legitimately silent while the upstream answers its HTTP
	// request, long polls included, so it is generous.
	DefaultIdleTimeout = 10 * time.Minute
)

// GRPCServerOptions are the options of the gRPC server corsproc serves s
// with (cmd/corsproc), and the load generator measures: the processor's
// TapHandle on every stream (its idle timeout), keepalive, stream and
// message limits, and the transport settings chosen by measurement
// (docs/performance.md).
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InTapHandle(s.TapHandle),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             keepaliveMinTime,
			PermitWithoutStream: keepalivePermitWithoutStream,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    keepaliveTime,
			Timeout: keepaliveTimeout,
		}),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		// The processor's codec decodes Envoy's header messages without
		// protobuf reflection and with a few allocations instead of one
		// per header: about 10% less CPU per HTTP request, which takes
		// corsproc below a no-op ext_proc server's cost (docs/performance.md).
		// Every other message goes to the standard proto codec.
		grpc.ForceServerCodecV2(Codec{}),
		// A fixed pool of stream workers instead of a goroutine per stream:
		// the workers keep their grown stacks, and stack growth was about 7%
		// of a stream's CPU. Measured: 16, 64 and 128 workers are alike.
		grpc.NumStreamWorkers(streamWorkers),
		// Static flow-control windows turn off grpc-go's bandwidth-probing
		// PINGs, which cost CPU on every busy connection; header messages
		// are small, so 1 MiB never limits a stream.
		grpc.StaticStreamWindowSize(flowControlWindow),
		grpc.StaticConnWindowSize(flowControlWindow),
	}
}
