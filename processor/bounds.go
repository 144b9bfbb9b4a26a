package processor

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Bounds on what one request may make corsproc do. Each is a named setting
// with a defined outcome past it; docs/security.md lists them all.
const (
	// DefaultMaxRequestHeaders bounds the header entries (pseudo-headers
	// included, one per value) of one request_headers message that corsproc
	// inspects. Envoy refuses requests with more than 100 headers by default
	// (max_headers_count); 256 leaves room for a deployment that raised it.
	DefaultMaxRequestHeaders = 256
	// DefaultMaxRequestHeaderBytes bounds the bytes of header names and
	// values of one request_headers message that corsproc inspects. Envoy
	// refuses requests with more than 60 KiB of headers by default
	// (max_request_headers_kb); 128 KiB leaves room for large cookies.
	DefaultMaxRequestHeaderBytes = 128 << 10
)

// Values of the limit label of corsproc_limits_exceeded_total.
const (
	MetricLimitsExceeded = "corsproc_limits_exceeded_total"

	LimitRequestHeaders     = "request_headers"
	LimitRequestHeaderBytes = "request_header_bytes"
	LimitStreamIdle         = "stream_idle_timeout"
)

type limitMetrics struct {
	headers, headerBytes, idle prometheus.Counter
}

func newLimitMetrics(reg prometheus.Registerer) *limitMetrics {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricLimitsExceeded,
		Help: "Requests and streams past one of corsproc's bounds, by limit: request_headers and request_header_bytes (the request's CORS is refused), stream_idle_timeout (the stream is closed with DEADLINE_EXCEEDED).",
	}, []string{"limit"})
	if reg != nil {
		vec = register(reg, vec)
	}
	return &limitMetrics{
		headers:     vec.WithLabelValues(LimitRequestHeaders),
		headerBytes: vec.WithLabelValues(LimitRequestHeaderBytes),
		idle:        vec.WithLabelValues(LimitStreamIdle),
	}
}

// headerBounds are the limits of one request_headers message.
type headerBounds struct {
	entries, bytes int
}

// fit returns how many leading entries of hs lie within the bounds, and
// which bound, if any, the whole list exceeds ("" when none).
func (b headerBounds) fit(hs []*corev3.HeaderValue) (int, string) {
	total := 0
	for i, hv := range hs {
		if i == b.entries {
			return i, LimitRequestHeaders
		}
		if hv != nil {
			total += len(hv.Key) + len(hv.Value) + len(hv.RawValue)
		}
		if total > b.bytes {
			return i, LimitRequestHeaderBytes
		}
	}
	return len(hs), ""
}

// extractBounded fills st.req from request headers, inspecting no more than
// the bounds allow. Past a bound the request's CORS is refused, never
// allowed because of what was not inspected: the facts that select the
// policy (method, host, path, route, metadata) are read from the entries
// within the bounds, where Envoy puts the pseudo-headers, and the request
// is decided as one whose Origin is malformed. An OPTIONS request is also
// taken as a preflight whose method cannot be read. So a governed preflight
// is rejected (403, or forwarded with unmatched_preflight: forward), and an
// actual request's response gets no Access-Control-Allow-Origin, only Vary:
// Origin, with the upstream's CORS headers removed; under allow_all_origins
// it gets "*", the answer that policy gives every request whatever its
// origin. It returns the bound exceeded, "" when none was.
func (s *Server) extractBounded(st *streamState, h *extprocv3.HttpHeaders) string {
	hs := h.GetHeaders().GetHeaders()
	n, exceeded := s.bounds.fit(hs)
	st.extract(hs[:n], exceeded != "")
	return exceeded
}

// errIdle is the cause of a stream's context cancellation by the idle
// timeout.
var errIdle = errors.New("corsproc: ext_proc stream idle timeout")

// streamCancelKey is the context key under which TapHandle's context
// returns itself (a *streamCtx).
type streamCancelKey struct{}

// processMethod is the full gRPC method name of Process.
const processMethod = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"

// TapHandle is a grpc.InTapHandle (tap.ServerInHandle) that makes
// Options.IdleTimeout work: install it on the grpc.Server that serves s with
// grpc.InTapHandle(s.TapHandle).
//
// A gRPC handler blocked in Recv can only be woken by its stream's context.
// grpc-go derives the stream's receive path from the context an in-tap
// handle returns, so TapHandle returns a cancellable one for each ext_proc
// stream, and Process cancels it when the stream has been idle too long:
// Recv returns and the stream ends with DEADLINE_EXCEEDED. The cost is a
// cancellable context and a timer per stream (BenchmarkProcessIdleTimeout:
// about 8 small allocations), an atomic store per message, no goroutine.
// Without
// IdleTimeout, or for other methods (health checks), it does nothing.
func (s *Server) TapHandle(ctx context.Context, info *tap.Info) (context.Context, error) {
	if s.idleTimeout <= 0 || info == nil || info.FullMethodName != processMethod {
		return ctx, nil
	}
	return withStreamCancel(ctx), nil
}

func withStreamCancel(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	return &streamCtx{Context: ctx, cancel: cancel}
}

// streamCtx is a stream's context as TapHandle returns it: cancellable by
// the idle timer. Once the timer cancelled it, its Err is DeadlineExceeded,
// not Canceled: grpc-go turns the error of the Recv it interrupts into the
// stream's status (the client sees DEADLINE_EXCEEDED) before Process can
// return its own.
type streamCtx struct {
	context.Context // from context.WithCancelCause
	cancel          context.CancelCauseFunc
	idle            idleTimer
}

func (c *streamCtx) Value(key any) any {
	if key == (streamCancelKey{}) {
		return c
	}
	return c.Context.Value(key)
}

func (c *streamCtx) Err() error {
	err := c.Context.Err()
	if err != nil && errors.Is(context.Cause(c.Context), errIdle) {
		return context.DeadlineExceeded
	}
	return err
}

// idleTimer is the idle timeout of one stream: it cancels the stream's
// context once no message has arrived for timeout. Each message only stores
// a time; the timer re-arms itself for the rest of the period when it fires
// early. It lives in the streamCtx, so that it costs no allocation of its
// own.
type idleTimer struct {
	timeout time.Duration
	base    time.Time // monotonic origin of last
	last    atomic.Int64
	stopped atomic.Bool
	t       *time.Timer
}

// startIdle starts and returns the idle timer of a stream whose context came
// from TapHandle, or returns nil when there is none to run.
func (s *Server) startIdle(ctx context.Context) *streamCtx {
	if s.idleTimeout <= 0 {
		return nil
	}
	sc, ok := ctx.Value(streamCancelKey{}).(*streamCtx)
	if !ok {
		return nil
	}
	sc.idle.timeout = s.idleTimeout
	sc.idle.base = time.Now()
	sc.idle.t = time.AfterFunc(s.idleTimeout, sc.fire)
	return sc
}

// touch records a message received at now.
func (sc *streamCtx) touch(now time.Time) {
	if sc != nil {
		sc.idle.last.Store(int64(now.Sub(sc.idle.base)))
	}
}

func (sc *streamCtx) fire() {
	it := &sc.idle
	if it.stopped.Load() {
		return
	}
	idle := time.Since(it.base) - time.Duration(it.last.Load())
	if rest := it.timeout - idle; rest > 0 {
		it.t.Reset(rest)
		return
	}
	sc.cancel(errIdle)
}

func (sc *streamCtx) stop() {
	if sc != nil {
		sc.idle.stopped.Store(true)
		sc.idle.t.Stop()
	}
}

// expired reports whether the stream's context was cancelled by its idle
// timer.
func (sc *streamCtx) expired() bool {
	return sc != nil && errors.Is(context.Cause(sc.Context), errIdle)
}

// idleErr is the status a stream closed by its idle timer ends with (grpc-go
// has already sent DEADLINE_EXCEEDED when the interrupted Recv returned).
func (sc *streamCtx) idleErr() error {
	return status.Errorf(codes.DeadlineExceeded,
		"corsproc: no ext_proc message on this stream for %v (idle timeout): closed", sc.idle.timeout)
}
