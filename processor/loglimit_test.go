package processor

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ctestutil "github.com/corsproc/corsproc/internal/testutil"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// The limiter lets the first line of a kind through, then one per
// interval, each saying how many it suppressed since the last; kinds do not
// share their allowance.
func TestLogLimiter(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	l := newLogLimiter(10*time.Second, clock.now)
	step := func(k logKind, wantOK bool, wantSuppressed uint64) {
		t.Helper()
		ok, n := l.allow(k)
		if ok != wantOK || n != wantSuppressed {
			t.Fatalf("allow(%d) = %v, %d; want %v, %d", k, ok, n, wantOK, wantSuppressed)
		}
	}
	step(logIdleTimeout, true, 0)
	for range 5 {
		step(logIdleTimeout, false, 0)
	}
	step(logUnknownPolicy, true, 0) // another kind: its own allowance
	clock.advance(9*time.Second + 999*time.Millisecond)
	step(logIdleTimeout, false, 0)
	clock.advance(time.Millisecond)
	step(logIdleTimeout, true, 6) // 5, then 1 more just before the interval
	step(logIdleTimeout, false, 0)
	clock.advance(time.Hour)
	step(logIdleTimeout, true, 1)
	step(logUnknownPolicy, true, 0)
	// A clock that goes backwards (the fake one; time.Now is monotonic)
	// suppresses until it catches up, and loses no count.
	clock.advance(-time.Minute)
	step(logIdleTimeout, false, 0)
	clock.advance(time.Minute + 10*time.Second)
	step(logIdleTimeout, true, 1)
}

// Concurrent callers: exactly one line per interval, and every call is
// either logged or counted.
func TestLogLimiterConcurrent(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	l := newLogLimiter(time.Second, clock.now)
	const workers, calls = 8, 1000
	var mu sync.Mutex
	logged, reported := 0, uint64(0)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				if ok, n := l.allow(logRecvFailed); ok {
					mu.Lock()
					logged++
					reported += n
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if logged != 1 {
		t.Fatalf("%d lines logged within one interval, want 1", logged)
	}
	clock.advance(time.Second)
	ok, n := l.allow(logRecvFailed)
	if !ok || n+reported != workers*calls-1 {
		t.Fatalf("after the interval: allow = %v, %d suppressed; want true, %d", ok, n, workers*calls-1)
	}
}

// logLines returns the lines of logs holding msg.
func logLines(logs, msg string) []string {
	var out []string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, msg) {
			out = append(out, line)
		}
	}
	return out
}

// The warnings a client (or one misconfigured route) can cause on every
// request are rate-limited: idle timeouts, receive and send failures,
// unknown messages and unknown policies each log one line per
// WarnLogInterval, the next one with the count suppressed, while the
// metrics count every one. Before, each was logged: a client decided the
// log volume.
func TestWarnLogsRateLimited(t *testing.T) {
	var buf ctestutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	srv := New(mustParse(t, semanticsYAML), Options{Logger: log, IdleTimeout: time.Hour})
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	srv.logs = newLogLimiter(WarnLogInterval, clock.now)

	const n = 50
	expiredStream := func() *streamCtx {
		sc := withStreamCancel(t.Context()).(*streamCtx)
		srv.idle.add(sc)
		sc.cancel(errIdle)
		return sc
	}
	burst := func() {
		for range n {
			process(t, srv, []string{"no-such-policy"}, get("api.example.com", "https://app.example.com").message(), defaultUpstream())
			sc := expiredStream()
			if err := srv.streamEnd(sc, sc, context.Canceled, srv.m.errRecv, logRecvFailed, "receive"); status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("idle stream end = %v, want DeadlineExceeded", err)
			}
			sc.stop()
			srv.streamEnd(t.Context(), nil, status.Error(codes.Internal, "connection broke"), srv.m.errRecv, logRecvFailed, "receive")
			srv.streamEnd(t.Context(), nil, errors.New("write failed"), srv.m.errSend, logSendFailed, "send")
			fs := newFakeStream(t, nil, &extprocv3.ProcessingRequest{}) // no known message
			if err := srv.Process(fs); status.Code(err) != codes.InvalidArgument {
				t.Fatalf("unknown message: Process = %v", err)
			}
		}
	}
	msgs := map[string]string{
		"unknown CORS policy":                    "unknown_policy",
		"ext_proc stream closed: idle timeout":   "idle",
		"ext_proc stream receive failed":         "recv",
		"ext_proc stream send failed":            "send",
		"ext_proc stream ended: unknown message": "unknown_message",
	}
	burst()
	first := buf.String()
	for msg := range msgs {
		if lines := logLines(first, msg); len(lines) != 1 || !strings.Contains(lines[0], "suppressed=0") || !strings.Contains(lines[0], "level=WARN") {
			t.Errorf("%q: %d lines after %d events within one interval, want 1 with suppressed=0:\n%s", msg, len(lines), n, strings.Join(lines, ""))
		}
	}
	if line := logLines(first, "unknown CORS policy"); len(line) == 1 && !strings.Contains(line[0], "name=no-such-policy") {
		t.Errorf("the unknown policy's line does not name it: %s", line[0])
	}

	clock.advance(WarnLogInterval)
	burst()
	second := strings.TrimPrefix(buf.String(), first)
	for msg := range msgs {
		if lines := logLines(second, msg); len(lines) != 1 || !strings.Contains(lines[0], "suppressed=49") {
			t.Errorf("%q: after the interval, %d lines, want 1 with suppressed=49:\n%s", msg, len(lines), strings.Join(lines, ""))
		}
	}

	// The metrics count every event.
	for name, c := range map[string]float64{
		"unknown policy":  testutil.ToFloat64(srv.m.unknownPolicy),
		"idle":            testutil.ToFloat64(srv.limits.idle),
		"recv":            testutil.ToFloat64(srv.m.errRecv),
		"send":            testutil.ToFloat64(srv.m.errSend),
		"unknown message": testutil.ToFloat64(srv.m.errUnknownMessage),
	} {
		if c != 2*n {
			t.Errorf("%s counted %v, want %d", name, c, 2*n)
		}
	}
}
