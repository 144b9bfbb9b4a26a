package processor

import (
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Keepalive. Envoy should ping its connections to corsproc: the cluster's
// HTTP/2 options with connection_keepalive {interval: 30s, timeout: 5s} find
// a dead corsproc before a request stalls on it. grpc-go counts pings that
// come faster than it allows as strikes and, after a few, answers GOAWAY
// "too_many_pings" and closes the connection with every stream on it
// (http2Server.handlePing, maxPingStrikes = 2, in grpc-go's
// internal/transport/http2_server.go, v1.85.0). These values accept Envoy's
// pings and let corsproc find dead clients in turn.
const (
	// keepaliveMinTime is the shortest interval between client pings that
	// grpc-go tolerates. Its default, 5 minutes
	// (defaultKeepalivePolicyMinTime, internal/transport/defaults.go,
	// v1.85.0), would cut off an Envoy pinging every 30s; 10s still
	// accepts an interval a third as long, and Envoy's 15% interval jitter.
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
	// default is no limit (newHTTP2Server sends the setting unless it is
	// math.MaxUint32, the default of server.go's defaultServerOptions;
	// v1.85.0). Each HTTP request on a governed route is one
	// ext_proc stream, open from its request headers until its response
	// headers are processed, so a connection carries one stream per request
	// in flight through it, for as long as the upstream takes to answer.
	// Envoy's connection pool honours the limit: when a connection is full
	// it opens another one to corsproc instead of piling every request of a
	// busy proxy onto one connection and one read loop. (Envoy's default
	// cluster circuit breaker allows 1024 requests in flight in all.)
	MaxConcurrentStreams = 1000

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
	// DefaultMaxRecvMsgSize is corsproc serve's --max-message-bytes: the
	// largest ProcessingRequest corsproc reads, down from grpc-go's 4 MiB
	// default (defaultServerMaxReceiveMessageSize, server.go). A larger
	// message fails its stream with RESOURCE_EXHAUSTED before it is read
	// (parser.recvMsg, rpc_util.go; grpc-go v1.85.0); Envoy takes that as
	// a processor error, and failure_mode_allow applies. corsproc asks Envoy for headers only, never bodies, so the
	// largest message Envoy sends it is one header map in ext_proc's
	// encoding, one HeaderValue of key and raw_value per header entry, a
	// few bytes each besides the name and value (MutationUtils::
	// headersToProto, source/extensions/filters/http/ext_proc/
	// mutation_utils.cc), plus the route attribute and any forwarded
	// metadata. Envoy's defaults bound
	// the header maps: request headers at 60 KiB and 100 entries
	// (DEFAULT_MAX_REQUEST_HEADERS_KB and DEFAULT_MAX_HEADERS_COUNT in
	// envoy/http/codec.h; HttpConnectionManager.max_request_headers_kb),
	// response headers at 60 KiB, 80 KiB from an HTTP/1 upstream
	// (HttpProtocolOptions.max_response_headers_kb on the cluster, Envoy
	// 1.32 and later); both settings go up to 8192 KiB (the protos'
	// validation rules, as in go-control-plane v1.40.0). 256 KiB is three
	// times the largest default, room for headers added by filters after
	// Envoy's codec checked them, and twice --max-request-header-bytes'
	// default, so that a request past that bound still gets an answer (CORS
	// refused) rather than a stream error. A deployment that raises Envoy's
	// limits raises this with them.
	DefaultMaxRecvMsgSize = 256 << 10

	// DefaultMaxStreams is corsproc serve's --max-streams: the ext_proc and
	// health Watch streams open at once on the whole server, all connections
	// together. A stream past it is refused with RESOURCE_EXHAUSTED at once
	// (Envoy: a processor error, failure_mode_allow applies). Envoy opens
	// one stream per HTTP request in flight on a governed route, and its
	// circuit breaker caps those per cluster: 1024 by default
	// (max_requests), 10,000 in the shipped Envoy configurations, whose
	// Envoy may send all of them to one corsproc. 10,000 keeps that Envoy
	// whole, and at about 16 KiB per open stream holds the streams' memory
	// to about 160 MiB (docs/security.md, "Bounds").
	DefaultMaxStreams = 10000

	// DefaultIdleTimeout is corsproc serve's --stream-idle-timeout: a stream on which
	// no message arrives for this long is closed with DEADLINE_EXCEEDED. A
	// stream is legitimately silent while the upstream answers its HTTP
	// request, long polls included, so it is generous.
	DefaultIdleTimeout = 10 * time.Minute
)

// GRPCLimits are the bounds of the gRPC server GRPCServerOptions
// configures (Options.GRPC). Zero values mean the defaults.
type GRPCLimits struct {
	// MaxRecvMsgSize bounds one received message (DefaultMaxRecvMsgSize).
	MaxRecvMsgSize int
	// MaxStreams bounds the streams open at once on the server, all
	// connections together (DefaultMaxStreams).
	MaxStreams int
}

// GRPCServerOptions are the options of the gRPC server corsproc serves s
// with (cmd/corsproc), and the load generator measures: the processor's
// TapHandle on every stream (its idle timeout), keepalive, stream and
// message limits (Options.GRPC), the Codec with the header bounds of
// Options, and the transport settings chosen by measurement
// (docs/performance.md).
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	maxRecv, maxStreams := s.grpcLimits.MaxRecvMsgSize, s.grpcLimits.MaxStreams
	if maxRecv <= 0 {
		maxRecv = DefaultMaxRecvMsgSize
	}
	if maxStreams <= 0 {
		maxStreams = DefaultMaxStreams
	}
	return []grpc.ServerOption{
		grpc.InTapHandle(s.TapHandle),
		grpc.ChainStreamInterceptor(s.streamBounds(maxStreams)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             keepaliveMinTime,
			PermitWithoutStream: keepalivePermitWithoutStream,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    keepaliveTime,
			Timeout: keepaliveTimeout,
		}),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
		grpc.MaxRecvMsgSize(maxRecv),
		// The processor's codec decodes Envoy's header messages without
		// protobuf reflection and with a few allocations instead of one
		// per header: about 10% less CPU per HTTP request, which takes
		// corsproc below a no-op ext_proc server's cost (docs/performance.md).
		// It builds no more of a header map than the bounds let the
		// processor inspect. Every other message goes to the standard proto
		// codec.
		grpc.ForceServerCodecV2(Codec{MaxHeaders: s.bounds.entries, MaxHeaderBytes: s.bounds.bytes, refused: s.limits.message}),
		// A fixed pool of stream workers instead of a goroutine per stream:
		// the workers keep their grown stacks, and stack growth was about 7%
		// of a stream's CPU. Measured: 16, 64 and 128 workers are alike.
		grpc.NumStreamWorkers(streamWorkers),
		// Static flow-control windows turn off grpc-go's bandwidth-probing
		// PINGs (newHTTP2Server makes no bdpEstimator when
		// StaticWindowSize is set, internal/transport/http2_server.go,
		// v1.85.0), which cost CPU on every busy connection; header messages
		// are small, so 1 MiB never limits a stream.
		grpc.StaticStreamWindowSize(flowControlWindow),
		grpc.StaticConnWindowSize(flowControlWindow),
	}
}

// errTooManyStreams refuses a stream past GRPCLimits.MaxStreams.
var errTooManyStreams = status.Error(codes.ResourceExhausted,
	"corsproc: too many streams open on this server (serve --max-streams)")

// streamBounds is the stream interceptor of GRPCServerOptions: it refuses a
// stream with RESOURCE_EXHAUSTED when max streams are open on the server
// already (grpc-go bounds streams per connection only, with
// MaxConcurrentStreams). The stream is refused before its handler runs, so
// it costs its few allocations in grpc-go and no more. Unary calls (health
// checks) are not counted: they do not stay open.
func (s *Server) streamBounds(max int) grpc.StreamServerInterceptor {
	var open atomic.Int64
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if open.Add(1) > int64(max) {
			open.Add(-1)
			s.limits.streams.Inc()
			return errTooManyStreams
		}
		defer open.Add(-1)
		return handler(srv, ss)
	}
}
