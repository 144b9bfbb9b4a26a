package processor

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// WarnLogInterval is how often at most the processor logs a warning of one
// kind that a client, or one misconfigured route, can make happen on every
// request: an idle timeout, a stream that fails to receive or send, a
// message with no known type, an unknown policy. The first of a kind is
// logged at once; the others within the interval are counted, and the next
// line logged says how many were suppressed ("suppressed"). The metrics
// count every one (docs/operations.md, "Logs").
const WarnLogInterval = 10 * time.Second

// logKind is a kind of rate-limited warning.
type logKind uint8

const (
	logIdleTimeout logKind = iota
	logRecvFailed
	logSendFailed
	logUnknownMessage
	logUnknownPolicy
	logRefused // at info level, RefusalLogInterval
	numLogKinds
)

// RefusalLogInterval is how often at most the processor logs a refused
// CORS request at info level: a client decides how many it sends. At debug
// level every refusal is logged (docs/operations.md, "Logs").
const RefusalLogInterval = time.Second

// logLimiter lets at most one line of each kind through per interval and
// counts the others. It takes no lock: a line costs an atomic load when
// suppressed, a compare-and-swap when logged.
type logLimiter struct {
	interval [numLogKinds]time.Duration
	now      func() time.Time // time.Now; a fake clock in tests
	base     time.Time        // monotonic origin of next
	kinds    [numLogKinds]logSlot
}

type logSlot struct {
	next       atomic.Int64  // no line before this time: nanoseconds since base
	suppressed atomic.Uint64 // lines suppressed since the last one logged
	_          [48]byte      // a cache line each
}

func newLogLimiter(interval time.Duration, now func() time.Time) *logLimiter {
	l := &logLimiter{now: now, base: now()}
	for i := range l.kinds {
		// The first line of each kind is logged at once.
		l.kinds[i].next.Store(-1)
		l.interval[i] = interval
	}
	l.interval[logRefused] = RefusalLogInterval
	return l
}

// allow reports whether a line of kind k may be logged now and, if so, how
// many lines of that kind were suppressed since the last one logged. A
// line not allowed is counted as suppressed.
func (l *logLimiter) allow(k logKind) (bool, uint64) {
	s := &l.kinds[k]
	now := int64(l.now().Sub(l.base))
	next := s.next.Load()
	if now < next || !s.next.CompareAndSwap(next, now+int64(l.interval[k])) {
		s.suppressed.Add(1)
		return false, 0
	}
	return true, s.suppressed.Swap(0)
}

// warn logs msg at warn level, at most once per WarnLogInterval for kind k,
// with the count of the lines of kind k suppressed since the last one.
// attrs is called only when the line is logged, so that a suppressed line
// costs no formatting.
func (s *Server) warn(ctx context.Context, k logKind, msg string, attrs func() []slog.Attr) {
	if !s.log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	ok, suppressed := s.logs.allow(k)
	if !ok {
		return
	}
	var as []slog.Attr
	if attrs != nil {
		as = attrs()
	}
	as = append(as, slog.Uint64("suppressed", suppressed))
	s.log.LogAttrs(ctx, slog.LevelWarn, msg, as...)
}
