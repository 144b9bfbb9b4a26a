package processor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/corsproc/corsproc/internal/extproc"
	"github.com/corsproc/corsproc/policy"
)

// MetadataPolicy is the gRPC stream metadata key naming the policy that
// governs the stream's request (defined in internal/extproc).
const MetadataPolicy = extproc.MetadataPolicy

// MetadataResponseHeaders is the gRPC stream metadata key through which the
// Envoy config declares how corsproc returns a response's CORS headers;
// with the value ResponseHeadersDynamicMetadata corsproc answers in
// single-message mode (defined in internal/extproc; docs/envoy.md,
// "Single-message mode").
const (
	MetadataResponseHeaders        = extproc.MetadataResponseHeaders
	ResponseHeadersDynamicMetadata = extproc.ResponseHeadersDynamicMetadata
	ResponseHeadersResponsePhase   = extproc.ResponseHeadersResponsePhase
)

// Attribute names Envoy uses for request_attributes. The Struct is keyed by
// the filter name, its fields by the attribute expression text.
// AttributeRoute is defined in internal/extproc, which the Envoy emulator
// and config checks share.
const (
	AttributesKey  = "envoy.filters.http.ext_proc"
	AttributeRoute = extproc.AttributeRoute
)

// Details of the immediate responses, shown by Envoy in
// %RESPONSE_CODE_DETAILS%. Envoy replaces whitespace in details, so they are
// single tokens.
const (
	DetailsPreflightAllowed  = "cors_preflight_allowed"
	DetailsPreflightRejected = "cors_preflight_rejected"
)

// Options configure a Server.
type Options struct {
	// Logger receives stream errors and unknown policies (at warn level, at
	// most one line of each kind per WarnLogInterval) and, at debug level,
	// every decision. nil discards.
	Logger *slog.Logger
	// Registerer receives the processor's metrics. nil registers nothing.
	Registerer prometheus.Registerer
	// MaxRequestHeaders bounds the header entries of one request_headers
	// message that corsproc inspects; past it the request's CORS is refused
	// (see headerScan). 0 means DefaultMaxRequestHeaders.
	MaxRequestHeaders int
	// MaxRequestHeaderBytes bounds the bytes of header names and values of
	// one request_headers message that corsproc inspects; past it the
	// request's CORS is refused. 0 means DefaultMaxRequestHeaderBytes.
	MaxRequestHeaderBytes int
	// IdleTimeout closes a stream on which no message has arrived for this
	// long (within 1/16 of it after), with DEADLINE_EXCEEDED, so that a
	// client that opens streams and never finishes them cannot hold
	// corsproc's memory and stream slots forever. It only works on a
	// grpc.Server with grpc.InTapHandle(s.TapHandle). 0 disables it. A
	// stream legitimately stays silent while the upstream answers the HTTP
	// request (between request_headers and response_headers): set it above
	// the longest upstream response time, long polls included.
	IdleTimeout time.Duration
	// GRPC bounds the gRPC server of GRPCServerOptions: message size and
	// streams open at once (grpcoptions.go).
	GRPC GRPCLimits
	// ExplainRefusals makes refusals explain themselves to the client: a
	// refused preflight's 403 carries a plain-text body and an
	// X-Corsproc-Reason header saying what was refused and which policy
	// decided (policy.Decision.Refusal), and a refused actual request's
	// response gets the header. corsproc dev sets it; serve only with
	// --explain-refusals, as it tells any client what a policy lacks
	// (docs/operations.md, "Refusals that explain themselves").
	ExplainRefusals bool
	// Refused, when set, is called on the stream's goroutine with every
	// refused request the set decides (Decision.Reason set), before the
	// answer is sent. corsproc dev prints explain's account of it. The
	// request's strings are valid only during the call.
	Refused func(set *policy.Set, r *policy.Request, d *policy.Decision)
}

// HeaderReason is the response header that says why a request was refused,
// with Options.ExplainRefusals.
const HeaderReason = "x-corsproc-reason"

// Server implements envoy.service.ext_proc.v3.ExternalProcessor.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	active atomic.Pointer[active]
	log    *slog.Logger
	logs   *logLimiter // rate limit of the warnings a client can cause
	m      *metrics

	bounds headerBounds
	idle   *idleSweeper // nil without IdleTimeout
	limits *limitMetrics

	grpcLimits GRPCLimits // applied by GRPCServerOptions

	explainRefusals bool
	refused         func(*policy.Set, *policy.Request, *policy.Decision)
}

// New returns a Server enforcing set. A nil set governs nothing: every
// request is answered CONTINUE and its response phase skipped.
//
// The metrics are registered on opts.Registerer; if the registerer already
// holds collectors of the same names (a second Server on one registry), those
// are shared. Any other registration error is a programming error and panics.
func New(set *policy.Set, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		log:    log,
		logs:   newLogLimiter(WarnLogInterval, time.Now),
		m:      newMetrics(opts.Registerer),
		limits: newLimitMetrics(opts.Registerer),
		bounds: headerBounds{entries: DefaultMaxRequestHeaders, bytes: DefaultMaxRequestHeaderBytes},
		// The gRPC server's bounds, applied by GRPCServerOptions.
		grpcLimits:      opts.GRPC,
		explainRefusals: opts.ExplainRefusals,
		refused:         opts.Refused,
	}
	if opts.MaxRequestHeaders > 0 {
		s.bounds.entries = opts.MaxRequestHeaders
	}
	if opts.MaxRequestHeaderBytes > 0 {
		s.bounds.bytes = opts.MaxRequestHeaderBytes
	}
	if opts.IdleTimeout > 0 {
		s.idle = newIdleSweeper(opts.IdleTimeout)
	}
	s.active.Store(newActive(set))
	return s
}

// Swap atomically replaces the active policy set. Streams already in flight
// finish with the set they started with.
func (s *Server) Swap(set *policy.Set) { s.active.Store(newActive(set)) }

// Policy returns the active policy set.
func (s *Server) Policy() *policy.Set { return s.active.Load().set }

// errUnknownMessage answers a ProcessingRequest whose request oneof holds
// nothing this server knows: either it is unset (a malformed or hand-made
// message, or a flow-control-only message we never enabled) or it is a type
// newer than our go-control-plane. We cannot know which response type Envoy
// expects, and a wrong one is "spurious" to Envoy anyway, so the defined
// outcome is to end the stream with INVALID_ARGUMENT: Envoy answers 500 (or
// status_on_error), or continues untouched with failure_mode_allow, which is
// safe for CORS (no CORS headers means the browser denies;
// docs/extproc-protocol.md, "Failures").
var errUnknownMessage = status.Error(codes.InvalidArgument,
	"corsproc: ProcessingRequest carries no known message (request oneof unset or unknown); "+
		"expected request_headers, response_headers, request_body, response_body, request_trailers or response_trailers")

// Process serves one ext_proc stream (one HTTP request).
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	s.m.streams.Inc()

	st := getStream()
	defer putStream(st)
	// A stream finishes with the policy set it started with, whatever Swap
	// does meanwhile: its request and response phases must agree.
	st.active = s.active.Load()
	// Envoy sends per-route ExtProcPerRoute.overrides.grpc_initial_metadata
	// as the stream's initial metadata.
	switch names := metadata.ValueFromIncomingContext(ctx, MetadataPolicy); len(names) {
	case 0:
	case 1:
		st.policyName = names[0]
	default:
		st.ambiguousName = true
	}
	// The Envoy config declares the mode with grpc_service.initial_metadata
	// (docs/envoy.md, "Single-message mode").
	st.singleMessage, st.declared = s.responseMode(metadata.ValueFromIncomingContext(ctx, MetadataResponseHeaders))
	// The idle timeout, when the gRPC server runs TapHandle.
	idle := s.startIdle(ctx)
	defer idle.stop()

	m := &st.msg
	m.bounds = s.bounds
	for {
		// Received into the stream's message: the Codec reads request
		// headers into it without building them (scan.go).
		m.reset()
		err := stream.RecvMsg(m)
		if err != nil {
			return s.streamEnd(ctx, idle, err, s.m.errRecv, logRecvFailed, "receive")
		}
		// corsproc_processing_seconds: from here until the response is
		// handed to gRPC.
		start := time.Now()
		idle.touch(start)
		resp, kind, err := s.handle(ctx, st, m)
		if err != nil {
			s.m.errUnknownMessage.Inc()
			s.warn(ctx, logUnknownMessage, "ext_proc stream ended: unknown message", nil)
			return err
		}
		if resp == nil {
			// Observability mode: Envoy ignores responses, so none is sent.
			s.m.observe(kind, start)
			continue
		}
		err = stream.Send(resp)
		s.m.observe(kind, start)
		if err != nil {
			return s.streamEnd(ctx, idle, err, s.m.errSend, logSendFailed, "send")
		}
		if st.final {
			// Nothing more to answer on this stream: end it now, with
			// an OK status, rather than wait for Envoy's half-close.
			// Envoy takes a clean close after the last answer as the
			// end of processing, which it already is
			// (docs/extproc-protocol.md, "Streams").
			return nil
		}
	}
}

// streamEnd is what Process returns when a Recv or Send (op) fails with
// err: the idle timeout's status when corsproc's own timer cut the stream,
// said in the log; nil for Envoy's normal end of a stream (a half-close and
// then a reset, or a reset while corsproc answers because the downstream
// went away); otherwise err, counted in failed and logged as kind k. A
// client decides how often these happen, so the logs are rate-limited
// (warn); the counters count each one.
func (s *Server) streamEnd(ctx context.Context, idle *streamCtx, err error, failed prometheus.Counter, k logKind, op string) error {
	if idle.expired() {
		s.limits.idle.Inc()
		s.warn(ctx, logIdleTimeout, "ext_proc stream closed: idle timeout", func() []slog.Attr {
			return []slog.Attr{slog.Duration("idle_timeout", s.idle.timeout)}
		})
		return idle.idleErr()
	}
	if isStreamEnd(err) {
		return nil
	}
	failed.Inc()
	s.warn(ctx, k, "ext_proc stream "+op+" failed", func() []slog.Attr {
		return []slog.Attr{slog.String("error", err.Error())}
	})
	return err
}

// isStreamEnd reports whether err is how Envoy ends a stream
// (docs/extproc-protocol.md, "Streams").
func isStreamEnd(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled
}

// handle answers one message and says which kind it was. It returns a nil
// response when none must be sent (observability mode) and
// errUnknownMessage for a message it cannot answer.
func (s *Server) handle(ctx context.Context, st *streamState, m *message) (*extprocv3.ProcessingResponse, messageKind, error) {
	var resp *extprocv3.ProcessingResponse
	kind := msgOther
	switch r := m.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		f := m.requestFacts(s.bounds)
		st.captureRoute(f)
		resp = s.requestHeaders(ctx, st, f)
		kind = msgRequestHeaders
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		resp = s.responseHeaders(ctx, st, r.ResponseHeaders)
		kind = msgResponseHeaders
	case *extprocv3.ProcessingRequest_RequestBody:
		// Only sent when the filter's processing_mode asks for bodies; we
		// never need them, so pass each chunk on unchanged.
		resp = newBodyReply(false)
	case *extprocv3.ProcessingRequest_ResponseBody:
		resp = newBodyReply(true)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		// Only sent when processing_mode has request_trailer_mode SEND.
		resp = newTrailersReply(false)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		resp = newTrailersReply(true)
	default:
		return nil, kind, errUnknownMessage
	}
	// In observability mode Envoy does not wait for and ignores responses;
	// the proto asks the server not to send any. The decision above is still
	// taken and recorded.
	if m.ObservabilityMode {
		return nil, kind, nil
	}
	return resp, kind, nil
}

// requestHeaders decides the request and answers it.
func (s *Server) requestHeaders(ctx context.Context, st *streamState, f *requestFacts) *extprocv3.ProcessingResponse {
	st.request(f)
	if exceeded := f.exceeded; exceeded != "" {
		if exceeded == LimitRequestHeaders {
			s.limits.headers.Inc()
		} else {
			s.limits.headerBytes.Inc()
		}
		// Debug only: a client controls how often this happens.
		if s.log.Enabled(ctx, slog.LevelDebug) {
			s.log.LogAttrs(ctx, slog.LevelDebug, "request headers past a bound: CORS refused",
				slog.String("limit", exceeded),
				slog.Int("headers_inspected", f.entries))
		}
	}
	d := &st.dec
	if set := st.active.set; set == nil {
		// No policy set loaded: nothing is governed.
		*d = policy.Decision{}
	} else {
		set.Decide(&st.req, d)
	}
	st.reason = ""
	if d.Reason != policy.ReasonNone && s.explainRefusals && !d.Shadow {
		st.reason = d.Refusal(&st.req)
	}
	s.record(ctx, st, d)
	if d.Reason != policy.ReasonNone && s.refused != nil {
		s.refused(st.active.set, &st.req, d)
	}

	// In single-message mode every answer to the request headers is the
	// stream's last: an immediate response, or the response phase skipped.
	st.final = st.singleMessage
	if d.RespondImmediately() {
		details := DetailsPreflightRejected
		if d.Outcome == policy.OutcomePreflightAllowed {
			details = DetailsPreflightAllowed
		}
		// A stream that declares a mode at all, whatever its value, comes
		// from a config that may run the header_mutation filter, which
		// would strip a preflight answer's CORS headers without their
		// values in the metadata.
		md := metadataNone
		switch {
		case st.singleMessage:
			md = metadataOnly
		case st.declared:
			md = metadataAlso
		}
		return newImmediateReply(d.Status, d.Headers(), details, st.reason, md)
	}
	if st.singleMessage && d.NeedsResponse() {
		// Single-message mode: everything is decided now; Envoy's
		// header_mutation filter removes the upstream's CORS headers and
		// writes these from the dynamic metadata, on the upstream's
		// response and on Envoy's own local replies alike.
		return newMetadataReply(d.Headers(), st.reason)
	}
	// Requests whose response needs nothing (ungoverned, shadow) tell Envoy
	// to skip the response phase. Every other governed request takes it,
	// forwarded preflights and unknown policies included, so that the
	// upstream's CORS headers are removed from its response:
	// this saves a round trip when the filter has allow_mode_override, and
	// is harmless otherwise (we answer the response_headers with an empty
	// CONTINUE).
	return newHeadersReply(false, nil, nil, !d.NeedsResponse())
}

// responseHeaders applies the stored decision to the upstream response. The
// upstream status is irrelevant: a 401 or 500 gets the same headers so the
// browser shows the real error.
func (s *Server) responseHeaders(ctx context.Context, st *streamState, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	// No request_headers on this stream (a malformed sequence, or a filter
	// that skips the request phase) leaves the zero Decision, ungoverned:
	// nothing to apply.
	if !st.dec.NeedsResponse() {
		return newHeadersReply(true, nil, nil, false)
	}
	set := st.dec.Headers()
	if st.reason != "" {
		set = append(set[:len(set):len(set)], policy.Header{Name: HeaderReason, Value: st.reason})
	}
	// A mutation that takes the response's header map past Envoy's limits
	// gets the request a 500 from Envoy: corsproc withholds its headers
	// instead (envoylimits.go).
	remove, set, fits := fitEnvoyLimits(h.GetHeaders().GetHeaders(), st.dec.Remove(), set)
	if !fits {
		s.limits.envoyResponse.Inc()
		// Debug only, as for the request bounds: the upstream decides how
		// often this happens; the metric counts every one.
		if s.log.Enabled(ctx, slog.LevelDebug) {
			s.log.LogAttrs(ctx, slog.LevelDebug, "response headers near Envoy's limits: CORS headers withheld",
				slog.Int("headers", len(h.GetHeaders().GetHeaders())),
				slog.Bool("upstream_cors_headers_removed", remove != nil))
		}
	}
	return newHeadersReply(true, remove, set, false)
}

// responseMode reports whether a stream whose MetadataResponseHeaders
// values are vals is in single-message mode, and whether it carries the key
// at all (declared), and counts the stream by mode. An unknown value, or
// several, is taken as the response phase and counted as unknown: corsproc
// then writes the response's headers in the response phase, after any
// header_mutation filter (docs/envoy.md, "Single-message mode").
func (s *Server) responseMode(vals []string) (single, declared bool) {
	switch {
	case len(vals) == 0:
		s.m.modeResponsePhase.Inc()
		return false, false
	case len(vals) == 1 && vals[0] == ResponseHeadersDynamicMetadata:
		s.m.modeDynamicMetadata.Inc()
		return true, true
	case len(vals) == 1 && vals[0] == ResponseHeadersResponsePhase:
		s.m.modeResponsePhase.Inc()
	default:
		s.m.modeUnknown.Inc()
	}
	return false, true
}

// record counts and logs a decision.
func (s *Server) record(ctx context.Context, st *streamState, d *policy.Decision) {
	s.m.record(st.active, d)
	if d.Selection == policy.SelectedUnknown {
		s.m.unknownPolicy.Inc()
		// The name is Envoy configuration (grpc_initial_metadata), not
		// client input; it goes to the log only, never to a metric label.
		// Every request of a misconfigured route comes here, so the log
		// is rate-limited: the line names one of the names seen.
		s.warn(ctx, logUnknownPolicy, "unknown CORS policy named in stream metadata: request governed and refused", func() []slog.Attr {
			return []slog.Attr{
				slog.String("metadata", MetadataPolicy),
				slog.String("name", truncate(st.policyName, 128)),
				slog.Bool("ambiguous", st.ambiguousName),
				slog.String("outcome", d.Outcome.String()),
			}
		})
	}
	if d.Reason != policy.ReasonNone && d.Selection != policy.SelectedUnknown {
		s.logRefusal(ctx, st, d)
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "cors decision",
			slog.String("policy", d.Policy),
			slog.String("selection", d.Selection.String()),
			slog.String("outcome", d.Outcome.String()),
			slog.String("reason", d.Reason.String()),
			slog.String("mode", modeLabel(d.Shadow)))
	}
}

// logRefusal logs a refused request with the facts a person needs to see
// why: every one at debug level, at most one per RefusalLogInterval at
// info level (a client decides how many it sends), with the count of those
// left out. The request's values are the client's: each is cut to a bound,
// and the handler escapes them: the text handler quotes a value with
// strconv.Quote when needsQuoting says so (a space, a quote, any control
// or non-printable character), the JSON handler escapes every string
// (log/slog handler.go, handleState.appendString; Go 1.26). See
// docs/operations.md, "Logs".
func (s *Server) logRefusal(ctx context.Context, st *streamState, d *policy.Decision) {
	level := slog.LevelDebug
	var suppressed uint64
	if !s.log.Enabled(ctx, slog.LevelDebug) {
		if !s.log.Enabled(ctx, slog.LevelInfo) {
			return
		}
		ok, n := s.logs.allow(logRefused)
		if !ok {
			return
		}
		level, suppressed = slog.LevelInfo, n
	}
	r := &st.req
	refused := st.reason // already written for X-Corsproc-Reason, with ExplainRefusals
	if refused == "" {
		refused = d.Refusal(r)
	}
	attrs := []slog.Attr{
		slog.String("policy", d.Policy),
		slog.String("outcome", d.Outcome.String()),
		slog.String("reason", d.Reason.String()),
		slog.String("refused", refused),
		slog.String("origin", truncate(r.Origin, maxLogValue)),
		slog.String("method", truncate(r.Method, maxLogValue)),
		slog.String("host", truncate(r.Host, maxLogValue)),
		slog.String("path", truncate(requestPath(r.Path), maxLogValue)),
		slog.String("mode", modeLabel(d.Shadow)),
	}
	if r.ACRM != "" || d.Outcome == policy.OutcomePreflightRejected || d.Outcome == policy.OutcomePreflightForwarded {
		attrs = append(attrs,
			slog.String("request_method", truncate(r.ACRM, maxLogValue)),
			slog.String("request_headers", truncate(strings.Join(r.ACRH, ","), maxLogValue)))
	}
	if level == slog.LevelInfo {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	s.log.LogAttrs(ctx, level, "cors request refused", attrs...)
}

// maxLogValue bounds each request value a log line quotes.
const maxLogValue = 256

// requestPath returns :path without its query, which may carry tokens.
func requestPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// streamState is the per-stream (per HTTP request) state. It lives in the
// stream's goroutine and is pooled between streams.
type streamState struct {
	active        *active
	reason        string // X-Corsproc-Reason, with ExplainRefusals
	policyName    string
	ambiguousName bool
	// singleMessage: the stream declared MetadataResponseHeaders
	// ResponseHeadersDynamicMetadata.
	singleMessage bool
	// declared: the stream carries MetadataResponseHeaders, whatever its
	// value; its preflight answers carry their headers in dynamic metadata.
	declared bool
	// final: the answer being sent is the stream's last; Process ends the
	// stream once it is sent.
	final     bool
	route     string
	haveRoute bool
	req       policy.Request
	dec       policy.Decision
	// msg receives the stream's messages; its facts keep scratch space
	// reused across streams.
	msg message
}

var streamPool = sync.Pool{New: func() any { return new(streamState) }}

// maxPooledLines bounds the scratch slices kept in the pool, so that one
// request with thousands of ACRH lines does not pin memory forever.
const maxPooledLines = 16

func getStream() *streamState { return streamPool.Get().(*streamState) }

func putStream(st *streamState) {
	acrh := st.msg.facts.acrh
	clear(acrh[:cap(acrh)])
	if cap(acrh) > maxPooledLines {
		acrh = nil
	}
	*st = streamState{}
	st.msg.facts.acrh = acrh[:0]
	streamPool.Put(st)
}

// captureRoute keeps the route name attribute of request_headers, the
// message whose facts extract reads. Envoy sends request attributes only on
// the first message of the request direction, and omits absent ones
// (docs/extproc-protocol.md, "Identifying the route and the policy").
func (st *streamState) captureRoute(f *requestFacts) {
	if st.haveRoute || !f.haveRoute {
		return
	}
	st.route, st.haveRoute = f.route, true
}

// routeOf reads the route name attribute of a decoded message.
func routeOf(req *extprocv3.ProcessingRequest) (string, bool) {
	if v := req.GetAttributes()[AttributesKey].GetFields()[AttributeRoute]; v != nil {
		return v.GetStringValue(), true
	}
	return "", false
}
