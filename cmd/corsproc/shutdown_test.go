package main

// Graceful shutdown under load: in process through Run, and as a real
// process receiving a real SIGTERM.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/corsproc/corsproc/internal/testutil"
)

// TestMain lets the test binary play corsproc itself: with
// CORSPROC_TEST_MAIN=1 it runs main, so that a test can start the real
// program as a child process and signal it.
func TestMain(m *testing.M) {
	if os.Getenv("CORSPROC_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// envoyLoad is Envoy-shaped load on a corsproc: clients that each run one
// HTTP request's ext_proc stream after the other: request headers, an
// upstream that takes a while, response headers, half-close.
type envoyLoad struct {
	started   atomic.Int64 // streams whose request headers were answered
	completed atomic.Int64 // streams that ran to their end
	refused   atomic.Int64 // streams that failed before any answer
	refusedAt atomic.Int64 // unix nanos of the last refusal
	mu        sync.Mutex
	failures  []error // streams that failed after their first answer
}

func (l *envoyLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, err)
}

// checkCompleted fails t unless every stream that was started also
// completed: none failed after its first answer, whatever the shutdown.
func (l *envoyLoad) checkCompleted(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) > 0 {
		t.Errorf("%d started streams failed, e.g. %v", len(l.failures), l.failures[0])
	}
	if s, c := l.started.Load(), l.completed.Load(); s != c {
		t.Errorf("%d streams started, %d completed", s, c)
	}
}

// run runs clients on conns until stop is closed.
func (l *envoyLoad) run(conns []*grpc.ClientConn, clients int, upstream time.Duration, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	get := requestHeaders(":method", "GET", ":path", "/", ":authority", "api.localhost", "origin", "http://localhost:3000")
	for i := range clients {
		client := extprocv3.NewExternalProcessorClient(conns[i%len(conns)])
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				l.one(client, get, time.Duration(rng.Int64N(int64(upstream)+1)))
			}
		})
	}
	return &wg
}

func (l *envoyLoad) one(client extprocv3.ExternalProcessorClient, get *extprocv3.ProcessingRequest, upstream time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	refuse := func() {
		l.refused.Add(1)
		l.refusedAt.Store(time.Now().UnixNano())
		time.Sleep(10 * time.Millisecond) // as Envoy backs off
	}
	st, err := client.Process(ctx)
	if err != nil {
		refuse()
		return
	}
	if err := st.Send(get); err != nil && !errors.Is(err, io.EOF) {
		refuse()
		return
	}
	if _, err := st.Recv(); err != nil {
		refuse()
		return
	}
	l.started.Add(1)
	time.Sleep(upstream)
	if err := st.Send(responseHeaders()); err != nil {
		l.fail(err)
		return
	}
	resp, err := st.Recv()
	if err != nil {
		l.fail(err)
		return
	}
	if resp.GetResponseHeaders() == nil {
		l.fail(errors.New("response_headers answered with " + resp.String()))
		return
	}
	st.CloseSend()
	if _, err := st.Recv(); err != io.EOF {
		l.fail(err)
		return
	}
	l.completed.Add(1)
}

// TestServeShutdownUnderLoad: under Envoy-shaped load, the SIGTERM of
// these tests (cancelling Run's context) turns health NOT_SERVING at once,
// refuses new streams, lets every stream that had started finish, and Run
// returns nil well within --shutdown-timeout. No goroutine is left behind.
func TestServeShutdownUnderLoad(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const drain = 5 * time.Second
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--shutdown-timeout", drain.String())

	var conns []*grpc.ClientConn
	for range 2 {
		conn, err := grpc.NewClient(in.addrs.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	hcConn, err := grpc.NewClient(in.addrs.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	watchCtx, closeWatch := context.WithCancel(t.Context())
	watch, err := healthpb.NewHealthClient(hcConn).Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	nextStatus(t, watch, healthpb.HealthCheckResponse_SERVING)

	var load envoyLoad
	stop := make(chan struct{})
	wg := load.run(conns, 32, 200*time.Millisecond, stop)
	deadline := time.Now().Add(waitLimit)
	for load.completed.Load() < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("load did not get going: %d completed, %d refused, failures %v", load.completed.Load(), load.refused.Load(), load.failures)
		}
		time.Sleep(10 * time.Millisecond)
	}

	sigterm := time.Now()
	in.cancel()
	nextStatus(t, watch, healthpb.HealthCheckResponse_NOT_SERVING)
	if d := time.Since(sigterm); d > time.Second {
		t.Errorf("health went NOT_SERVING %v after SIGTERM", d)
	}
	closeWatch() // the watch is a stream too: let the drain end
	startedAtSIGTERM := load.started.Load()

	// New streams are refused while the started ones finish.
	for load.refused.Load() == 0 {
		if time.Since(sigterm) > drain {
			t.Fatal("no new stream was refused during the drain")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := in.wait(t); err != nil {
		t.Errorf("Run after a drain = %v, want nil", err)
	}
	returned := time.Since(sigterm)
	close(stop)
	wg.Wait()
	for _, c := range append(conns, hcConn) {
		c.Close()
	}

	if returned > drain {
		t.Errorf("Run returned %v after SIGTERM, past the %v drain deadline", returned, drain)
	}
	load.checkCompleted(t)
	if load.started.Load() < startedAtSIGTERM {
		t.Errorf("started count went down")
	}
	logs := in.logs.String()
	if !strings.Contains(logs, "msg=drained") || strings.Contains(logs, "drain deadline passed") {
		t.Errorf("want a drain within the deadline:\n%s", logs)
	}
	t.Logf("%d streams completed, %d refused; Run returned %v after SIGTERM", load.completed.Load(), load.refused.Load(), returned)
}

var servingLine = regexp.MustCompile(`msg="corsproc serving" grpc=(\S+)`)

// TestBinarySIGTERM runs corsproc as a real process, puts load on it, sends
// it a real SIGTERM, and checks that every started request completes, that
// the process exits 0 within --shutdown-timeout and says it drained.
func TestBinarySIGTERM(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a process")
	}
	const drain = 5 * time.Second
	cmd := exec.Command(os.Args[0], "serve", "--listen", "127.0.0.1:0", "--admin", "", "--shutdown-timeout", drain.String())
	cmd.Env = append(os.Environ(), "CORSPROC_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var logs testutil.SyncBuffer
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.Write([]byte(sc.Text() + "\n"))
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	var target string
	select {
	case target = <-addr:
	case err := <-exited:
		t.Fatalf("corsproc exited before serving: %v\n%s", err, logs.String())
	case <-time.After(waitLimit):
		t.Fatalf("corsproc did not serve within %v\n%s", waitLimit, logs.String())
	}

	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var load envoyLoad
	stop := make(chan struct{})
	wg := load.run([]*grpc.ClientConn{conn}, 8, 100*time.Millisecond, stop)
	for load.completed.Load() < 10 {
		time.Sleep(10 * time.Millisecond)
	}
	sigterm := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("corsproc exited with %v after SIGTERM, want status 0\n%s", err, logs.String())
		}
	case <-time.After(drain + waitLimit):
		t.Fatalf("corsproc still running %v after SIGTERM\n%s", drain+waitLimit, logs.String())
	}
	exitedAfter := time.Since(sigterm)
	close(stop)
	wg.Wait()
	if exitedAfter > drain {
		t.Errorf("exited %v after SIGTERM, past the %v drain deadline", exitedAfter, drain)
	}
	load.checkCompleted(t)
	if l := logs.String(); !strings.Contains(l, "msg=drained") {
		t.Errorf("no drained line:\n%s", l)
	}
	// After exit, the port is closed: new streams fail.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) == codes.OK {
		t.Error("health check answered after exit")
	}
}
