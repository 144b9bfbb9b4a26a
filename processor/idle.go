package processor

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

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
// handle returns (http2Server.operateHeaders replaces the stream's context
// with it; internal/transport/http2_server.go, v1.85.0), so TapHandle returns a cancellable one for each ext_proc
// stream, and the Server's idle sweeper cancels it when the stream has been
// idle too long: Recv returns and the stream ends with DEADLINE_EXCEEDED.
// Without IdleTimeout, or for other methods (health checks), it does
// nothing.
func (s *Server) TapHandle(ctx context.Context, info *tap.Info) (context.Context, error) {
	if s.idle == nil || info == nil || info.FullMethodName != processMethod {
		return ctx, nil
	}
	return withStreamCancel(ctx), nil
}

func withStreamCancel(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	return &streamCtx{Context: ctx, cancel: cancel}
}

// streamCtx is a stream's context as TapHandle returns it: cancellable by
// the idle sweeper. Once the sweeper cancelled it, its Err is
// DeadlineExceeded, not Canceled: grpc-go turns the error of the Recv it
// interrupts into the stream's status (the client sees DEADLINE_EXCEEDED)
// before Process can return its own (recvBufferReader's read fails with
// ContextErr(ctx.Err()), internal/transport/transport.go, and
// serverStream.RecvMsg writes that status, stream.go; v1.85.0).
type streamCtx struct {
	context.Context // from context.WithCancelCause
	cancel          context.CancelCauseFunc

	// The stream's entry in the idle sweeper, which lives here so that
	// listing a stream allocates nothing.
	sweeper    *idleSweeper
	last       atomic.Int64 // when the last message arrived: nanoseconds since sweeper.base
	shard      *idleShard   // the list the stream joins at its start
	listed     bool         // in shard's list (under shard.mu)
	prev, next *streamCtx   // neighbours in shard's list (under shard.mu)
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

// startIdle lists a stream whose context came from TapHandle with the idle
// sweeper and returns its context, or returns nil when there is nothing to
// watch.
func (s *Server) startIdle(ctx context.Context) *streamCtx {
	if s.idle == nil {
		return nil
	}
	sc, ok := ctx.Value(streamCancelKey{}).(*streamCtx)
	if !ok {
		return nil
	}
	s.idle.add(sc)
	return sc
}

// touch records a message received at now.
func (sc *streamCtx) touch(now time.Time) {
	if sc != nil {
		sc.last.Store(int64(now.Sub(sc.sweeper.base)))
	}
}

// stop unlists the stream at its end.
func (sc *streamCtx) stop() {
	if sc != nil {
		sc.sweeper.remove(sc)
	}
}

// expired reports whether the stream's context was cancelled by the idle
// sweeper.
func (sc *streamCtx) expired() bool {
	return sc != nil && errors.Is(context.Cause(sc.Context), errIdle)
}

// idleErr is the status a stream closed by the idle sweeper ends with
// (grpc-go has already sent DEADLINE_EXCEEDED when the interrupted Recv
// returned).
func (sc *streamCtx) idleErr() error {
	return status.Errorf(codes.DeadlineExceeded,
		"corsproc: no ext_proc message on this stream for %v (idle timeout): closed", sc.sweeper.timeout)
}

const (
	// idleSweepsPerTimeout is how many times per idle timeout the sweeper
	// looks at the open streams: a stream is closed between the timeout and
	// 1/idleSweepsPerTimeout of it later.
	idleSweepsPerTimeout = 16
	// idleShards is the number of lists the open streams are spread over,
	// each with its own lock, so that streams starting and ending on many
	// cores at once seldom wait for each other.
	idleShards = 16
)

// idleSweeper closes the streams of a Server on which no message has arrived
// for timeout. A stream costs a list insertion at its start and a removal at
// its end, each under one of idleShards locks, and an atomic store per
// message; there is no timer per stream. One timer walks the lists every
// timeout/idleSweepsPerTimeout while any stream is open, and cancels the
// contexts of the streams idle for timeout.
//
// (A time.AfterFunc timer per stream, as corsproc had first, cost about 0.5 µs
// and 2 allocations per stream: arming and stopping a runtime timer for
// every HTTP request, though it almost never fires.)
type idleSweeper struct {
	timeout, tick time.Duration
	base          time.Time // monotonic origin of streamCtx.last
	shards        [idleShards]idleShard

	open  atomic.Int64 // listed streams
	armed atomic.Bool  // the timer is set, or a sweep is running
	mu    sync.Mutex   // guards timer
	timer *time.Timer
}

type idleShard struct {
	mu   sync.Mutex
	head *streamCtx
	_    [48]byte // a cache line each, so that the shards' locks do not contend
}

func newIdleSweeper(timeout time.Duration) *idleSweeper {
	return &idleSweeper{
		timeout: timeout,
		tick:    max(timeout/idleSweepsPerTimeout, time.Millisecond),
		base:    time.Now(),
	}
}

// add lists sc, as just active, and sets the sweep timer if it is not.
func (sw *idleSweeper) add(sc *streamCtx) {
	sc.sweeper = sw
	sc.last.Store(int64(time.Since(sw.base)))
	sh := &sw.shards[rand.Uint32()%idleShards]
	sc.shard = sh
	sh.mu.Lock()
	sc.listed, sc.prev, sc.next = true, nil, sh.head
	if sh.head != nil {
		sh.head.prev = sc
	}
	sh.head = sc
	sh.mu.Unlock()
	// The increment comes before the armed check, and sweep clears armed
	// before it counts: one of them sets the timer.
	sw.open.Add(1)
	if !sw.armed.Load() && sw.armed.CompareAndSwap(false, true) {
		sw.arm()
	}
}

// remove unlists sc if it is still listed.
func (sw *idleSweeper) remove(sc *streamCtx) {
	sh := sc.shard
	sh.mu.Lock()
	if sc.listed {
		sh.unlink(sc)
		sw.open.Add(-1)
	}
	sh.mu.Unlock()
}

// unlink takes sc out of the list; sh.mu is held.
func (sh *idleShard) unlink(sc *streamCtx) {
	if sc.prev != nil {
		sc.prev.next = sc.next
	} else {
		sh.head = sc.next
	}
	if sc.next != nil {
		sc.next.prev = sc.prev
	}
	sc.listed, sc.prev, sc.next = false, nil, nil
}

func (sw *idleSweeper) arm() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.timer == nil {
		sw.timer = time.AfterFunc(sw.tick, sw.sweep)
		return
	}
	sw.timer.Reset(sw.tick)
}

// sweep cancels, and unlists, the streams idle for timeout, then sets the
// timer again while streams remain open. With none open, no timer runs.
func (sw *idleSweeper) sweep() {
	now := int64(time.Since(sw.base))
	for i := range sw.shards {
		sh := &sw.shards[i]
		sh.mu.Lock()
		for sc := sh.head; sc != nil; {
			next := sc.next
			if time.Duration(now-sc.last.Load()) >= sw.timeout {
				sh.unlink(sc)
				sw.open.Add(-1)
				sc.cancel(errIdle)
			}
			sc = next
		}
		sh.mu.Unlock()
	}
	sw.armed.Store(false)
	if sw.open.Load() > 0 && sw.armed.CompareAndSwap(false, true) {
		sw.arm()
	}
}
