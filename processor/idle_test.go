package processor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func newStreamCtx(t *testing.T, sw *idleSweeper) *streamCtx {
	t.Helper()
	sc := withStreamCancel(t.Context()).(*streamCtx)
	sw.add(sc)
	return sc
}

// The sweeper cancels, with DeadlineExceeded, the streams silent for the
// timeout, and only them: not one whose messages keep coming, not one that
// ended in time. Once no stream is open it stops sweeping.
func TestIdleSweeper(t *testing.T) {
	const timeout = 100 * time.Millisecond
	sw := newIdleSweeper(timeout)

	silent := newStreamCtx(t, sw)
	ended := newStreamCtx(t, sw)
	ended.stop()
	busy := newStreamCtx(t, sw)
	if n := sw.open.Load(); n != 2 {
		t.Fatalf("open streams %d, want 2", n)
	}

	start := time.Now()
	for time.Since(start) < 3*timeout {
		busy.touch(time.Now())
		time.Sleep(timeout / 10)
	}
	select {
	case <-silent.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the silent stream was not cancelled")
	}
	if !silent.expired() || !errors.Is(silent.Err(), context.DeadlineExceeded) {
		t.Errorf("silent stream: expired %v, Err %v, want DeadlineExceeded", silent.expired(), silent.Err())
	}
	for name, sc := range map[string]*streamCtx{"busy": busy, "ended": ended} {
		if err := sc.Err(); err != nil {
			t.Errorf("%s stream cancelled: %v", name, err)
		}
	}

	busy.stop()
	silent.stop() // already unlisted by the sweep: nothing to do
	if n := sw.open.Load(); n != 0 {
		t.Errorf("open streams %d after all ended, want 0", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sw.armed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the sweep timer still runs with no stream open")
		}
		time.Sleep(sw.tick)
	}
	// A new stream sets the timer again, and is swept.
	again := newStreamCtx(t, sw)
	select {
	case <-again.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a stream opened after the sweeper stopped was not cancelled")
	}
	again.stop()
}

// Streams starting, touched and ending on many goroutines while the sweeper
// runs leave the lists consistent (run with -race): every stream is either
// ended by its own goroutine or cancelled by the sweep, and none is left.
func TestIdleSweeperConcurrent(t *testing.T) {
	sw := newIdleSweeper(2 * time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				sc := newStreamCtx(t, sw)
				if (g+i)%3 == 0 {
					time.Sleep(3 * time.Millisecond) // some past the timeout
				}
				sc.touch(time.Now())
				sc.stop()
			}
		})
	}
	wg.Wait()
	if n := sw.open.Load(); n != 0 {
		t.Errorf("open streams %d after all ended, want 0", n)
	}
	for i := range sw.shards {
		if sw.shards[i].head != nil {
			t.Errorf("shard %d still lists a stream", i)
		}
	}
}
