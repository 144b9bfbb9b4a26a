package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/corsproc/corsproc/internal/testutil"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"
)

// waitLimit bounds every wait in these tests; nothing should come close.
const waitLimit = 10 * time.Second

// instance is one serve run started by a test.
type instance struct {
	addrs  listening
	logs   *testutil.SyncBuffer
	cancel context.CancelFunc // the SIGTERM of these tests
	done   chan error         // Run's result
}

// startServe runs `corsproc serve args...` until the test ends, and returns
// once it listens.
func startServe(t *testing.T, args ...string) *instance {
	t.Helper()
	return startCommand(t, "serve", args...)
}

// startCommand runs `corsproc command args...` (serve or dev) until the test
// ends, and returns once it listens.
func startCommand(t *testing.T, command string, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{logs: new(testutil.SyncBuffer), cancel: cancel, done: make(chan error, 1)}
	ready := make(chan listening, 1)
	e := &env{stdout: io.Discard, stderr: in.logs, ready: func(l listening) { ready <- l }}
	go func() { in.done <- run(ctx, append([]string{command}, args...), e) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		case <-time.After(waitLimit):
			t.Errorf("%s did not stop within %v of cancellation", command, waitLimit)
		}
	})
	select {
	case in.addrs = <-ready:
	case err := <-in.done:
		in.done <- err // for the cleanup
		t.Fatalf("%s %q returned before listening: %v\nlogs:\n%s", command, args, err, in.logs)
	case <-time.After(waitLimit):
		t.Fatalf("%s %q did not listen within %v\nlogs:\n%s", command, args, waitLimit, in.logs)
	}
	return in
}

// stop cancels serve's context and returns Run's result.
func (in *instance) stop(t *testing.T) error {
	t.Helper()
	in.cancel()
	return in.wait(t)
}

func (in *instance) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-in.done:
		in.done <- err // for the cleanup
		return err
	case <-time.After(waitLimit):
		t.Fatalf("serve did not return within %v\nlogs:\n%s", waitLimit, in.logs)
		return nil
	}
}

// dial connects to a gRPC target (host:port or unix:///path) for the rest
// of the test.
func dial(t *testing.T, target string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func dialHealth(t *testing.T, target string) healthpb.HealthClient {
	t.Helper()
	return healthpb.NewHealthClient(dial(t, target))
}

func checkHealth(t *testing.T, hc healthpb.HealthClient, service string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health check %q: %v", service, err)
	}
	if resp.GetStatus() != want {
		t.Errorf("health check %q = %v, want %v", service, resp.GetStatus(), want)
	}
}

// get fetches an admin path and returns its status and body.
func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: waitLimit}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, string(body)
}

// watchHealth opens a health Watch stream on the whole server and reads its
// first status. The open stream also keeps serve's drain waiting until the
// returned cancel closes it.
func watchHealth(t *testing.T, hc healthpb.HealthClient) (healthpb.Health_WatchClient, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	nextStatus(t, w, healthpb.HealthCheckResponse_SERVING)
	return w, cancel
}

func nextStatus(t *testing.T, w healthpb.Health_WatchClient, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	resp, err := w.Recv()
	if err != nil {
		t.Fatalf("health watch: %v", err)
	}
	if resp.GetStatus() != want {
		t.Fatalf("health watch = %v, want %v", resp.GetStatus(), want)
	}
}

func TestServeAnswersHealthAndAdmin(t *testing.T) {
	t.Parallel()
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")

	hc := dialHealth(t, in.addrs.grpc)
	checkHealth(t, hc, "", healthpb.HealthCheckResponse_SERVING)
	checkHealth(t, hc, extprocv3.ExternalProcessor_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	_, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("health check of an unknown service: %v, want NotFound", err)
	}

	admin := "http://" + in.addrs.admin
	for _, tc := range []struct {
		method, path string
		status       int
		body         []string
	}{
		{"GET", "/healthz", 200, []string{"ok"}},
		{"GET", "/readyz", 200, []string{"ok"}},
		{"HEAD", "/readyz", 200, nil},
		// A private registry, with the Go and process collectors, and the
		// active policy's metrics although the development policy has no
		// reloader.
		{"GET", "/metrics", 200, []string{
			"go_goroutines", "process_cpu_seconds_total",
			"\ncorsproc_policy_generation 1\n", "\ncorsproc_policies 1\n", "\ncorsproc_policy_loaded_timestamp_seconds ",
			`corsproc_processing_seconds_bucket{message="request_headers",le="1e-05"} 0`,
		}},
		{"GET", "/debug/policy", 200, []string{
			"# source: " + policyfile.DevelopmentSource + "\n",
			"# digest: " + policyfile.Development().Digest() + "\n",
			"# generation: 1\n",
			"# file: " + policyfile.DevelopmentSource + "\n" + string(policyfile.DevelopmentYAML()),
		}},
		{"HEAD", "/debug/policy", 200, nil},
		// The admin port is read-only.
		{"POST", "/readyz", http.StatusMethodNotAllowed, nil},
		{"PUT", "/metrics", http.StatusMethodNotAllowed, nil},
		{"POST", "/debug/policy", http.StatusMethodNotAllowed, nil},
		{"DELETE", "/debug/policy", http.StatusMethodNotAllowed, nil},
		{"GET", "/debug/pprof/", http.StatusNotFound, nil},
	} {
		code, body := get(t, tc.method, admin+tc.path)
		if code != tc.status {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, code, tc.status)
		}
		for _, s := range tc.body {
			if !strings.Contains(body, s) {
				t.Errorf("%s %s does not contain %q:\n%.500s", tc.method, tc.path, s, body)
			}
		}
	}

	// Without --policy: the development policy, said loudly.
	logs := in.logs.String()
	for _, s := range []string{
		`level=WARN msg="no --policy given: enforcing the embedded development policy`,
		"http://localhost:*, http://127.0.0.1:* and http://[::1]:*",
		`level=INFO msg="corsproc serving" grpc=` + in.addrs.grpc + " admin=" + in.addrs.admin,
		`policy="` + policyfile.DevelopmentSource + `" policies=1`,
	} {
		if !strings.Contains(logs, s) {
			t.Errorf("logs do not contain %q:\n%s", s, logs)
		}
	}
	if n := strings.Count(logs, `msg="corsproc serving"`); n != 1 {
		t.Errorf("%d serving lines, want 1:\n%s", n, logs)
	}
}

// TestServeAnswersPreflight sends one preflight through the served ext_proc
// service, as Envoy would, and gets the development policy's answer.
func TestServeAnswersPreflight(t *testing.T) {
	t.Parallel()
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "")
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	stream, err := extprocv3.NewExternalProcessorClient(dial(t, in.addrs.grpc)).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var headers []*corev3.HeaderValue
	for _, h := range [][2]string{
		{":method", "OPTIONS"},
		{":path", "/api/items"},
		{":authority", "api.localhost"},
		{":scheme", "http"},
		{"origin", "http://localhost:3000"},
		{"access-control-request-method", "PUT"},
	} {
		headers = append(headers, &corev3.HeaderValue{Key: h[0], RawValue: []byte(h[1])})
	}
	err = stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: headers}, EndOfStream: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("ext_proc answer: %v", err)
	}
	ir := resp.GetImmediateResponse()
	if ir == nil {
		t.Fatalf("a preflight got %v, want an immediate response", resp)
	}
	if got := ir.GetStatus().GetCode(); got != 204 {
		t.Errorf("preflight status %d, want 204", got)
	}
	var acao string
	for _, h := range ir.GetHeaders().GetSetHeaders() {
		if h.GetHeader().GetKey() == policy.HeaderACAO {
			acao = string(h.GetHeader().GetRawValue())
		}
	}
	if acao != "http://localhost:3000" {
		t.Errorf("preflight ACAO %q, want the origin", acao)
	}
	stream.CloseSend()
}

// logLines parses serve's JSON log.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

func findLog(lines []map[string]any, msg string) []map[string]any {
	var found []map[string]any
	for _, l := range lines {
		if l["msg"] == msg {
			found = append(found, l)
		}
	}
	return found
}

func TestServePolicyFileJSONLog(t *testing.T) {
	t.Parallel()
	file := filepath.Join("testdata", "two_policies.yaml")
	in := startServe(t, "--policy", file, "--listen", "127.0.0.1:0", "--admin", "", "--log-format", "json")
	checkHealth(t, dialHealth(t, in.addrs.grpc), "", healthpb.HealthCheckResponse_SERVING)
	if err := in.stop(t); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}

	lines := logLines(t, in.logs.String())
	serving := findLog(lines, "corsproc serving")
	if len(serving) != 1 {
		t.Fatalf("%d serving lines, want 1:\n%s", len(serving), in.logs)
	}
	for k, want := range map[string]any{
		"level":    "INFO",
		"grpc":     in.addrs.grpc,
		"admin":    "disabled",
		"policy":   file,
		"policies": float64(2),
	} {
		if got := serving[0][k]; got != want {
			t.Errorf("serving line %s = %v, want %v", k, got, want)
		}
	}
	if in.addrs.admin != "" {
		t.Errorf("admin listens on %q with --admin \"\"", in.addrs.admin)
	}
	if w := findLog(lines, "policy warning"); len(w) > 0 {
		t.Errorf("warnings for a clean file: %v", w)
	}
}

func TestServeLogsPolicyWarnings(t *testing.T) {
	t.Parallel()
	file := filepath.Join("testdata", "max_age_warning.yaml")
	in := startServe(t, "--policy", file, "--listen", "127.0.0.1:0", "--admin", "", "--log-format", "json", "--log-level", "warn")
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	lines := logLines(t, in.logs.String())
	warnings := findLog(lines, "policy warning")
	if len(warnings) != 1 {
		t.Fatalf("%d policy warnings, want 1:\n%s", len(warnings), in.logs)
	}
	for k, want := range map[string]any{
		"level": "WARN",
		"file":  file,
		"line":  float64(5),
		"path":  "policies[0].preflight_max_age",
	} {
		if got := warnings[0][k]; got != want {
			t.Errorf("warning %s = %v, want %v", k, got, want)
		}
	}
	for _, k := range []string{"problem", "fix"} {
		if s, _ := warnings[0][k].(string); s == "" {
			t.Errorf("warning has no %s: %v", k, warnings[0])
		}
	}
	// --log-level warn hides the info lines.
	if s := findLog(lines, "corsproc serving"); len(s) > 0 {
		t.Errorf("info line logged at --log-level warn: %v", s)
	}
}

// TestServeDrains checks the SIGTERM sequence: gRPC health and /readyz go
// down at once, in-flight streams may finish, and Run returns nil once
// they have, well before the deadline.
func TestServeDrains(t *testing.T) {
	t.Parallel()
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--shutdown-timeout", "1m")
	hc := dialHealth(t, in.addrs.grpc)
	watch, closeWatch := watchHealth(t, hc)

	in.cancel()
	nextStatus(t, watch, healthpb.HealthCheckResponse_NOT_SERVING)
	// The watch stream is still open, so serve is draining, and its admin
	// server says so.
	if code, _ := get(t, "GET", "http://"+in.addrs.admin+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining = %d, want 503", code)
	}
	if code, _ := get(t, "GET", "http://"+in.addrs.admin+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while draining = %d, want 200", code)
	}
	select {
	case err := <-in.done:
		t.Fatalf("serve returned (%v) with a stream still open", err)
	default:
	}

	closeWatch() // the last stream ends: the drain is over
	start := time.Now()
	if err := in.wait(t); err != nil {
		t.Fatalf("Run after a clean drain = %v, want nil", err)
	}
	if d := time.Since(start); d > waitLimit/2 {
		t.Errorf("drain took %v after the last stream ended", d)
	}
	if _, err := net.DialTimeout("tcp", in.addrs.grpc, time.Second); err == nil {
		t.Errorf("gRPC port %s still accepts connections after Run returned", in.addrs.grpc)
	}
	logs := in.logs.String()
	if !strings.Contains(logs, `msg=drained`) {
		t.Errorf("no drained line:\n%s", logs)
	}
}

// TestServeDrainDeadline checks that streams still open at the deadline are
// cut and Run still returns nil.
func TestServeDrainDeadline(t *testing.T) {
	t.Parallel()
	const deadline = 300 * time.Millisecond
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "", "--shutdown-timeout", deadline.String())
	watch, _ := watchHealth(t, dialHealth(t, in.addrs.grpc))

	start := time.Now()
	in.cancel()
	nextStatus(t, watch, healthpb.HealthCheckResponse_NOT_SERVING)
	if err := in.wait(t); err != nil {
		t.Fatalf("Run after the drain deadline = %v, want nil", err)
	}
	if d := time.Since(start); d < deadline {
		t.Errorf("Run returned after %v, before the %v deadline, with a stream open", d, deadline)
	}
	if _, err := watch.Recv(); err == nil {
		t.Error("the open stream survived the drain deadline")
	}
	if logs := in.logs.String(); !strings.Contains(logs, "drain deadline passed") {
		t.Errorf("no deadline warning:\n%s", logs)
	}
}

func TestServeUnixSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(testutil.ShortTempDir(t), "corsproc.sock")

	// A stale socket file, as a killed corsproc leaves it.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	in := startServe(t, "--listen", "unix://"+sock, "--admin", "")
	if want := "unix://" + sock; in.addrs.grpc != want {
		t.Errorf("bound %q, want %q", in.addrs.grpc, want)
	}
	checkHealth(t, dialHealth(t, "unix://"+sock), "", healthpb.HealthCheckResponse_SERVING)
	if logs := in.logs.String(); !strings.Contains(logs, "grpc=unix://"+sock+" admin=disabled") {
		t.Errorf("serving line does not name the socket:\n%s", logs)
	}
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left behind after shutdown: %v", err)
	}
}

func TestServeRefusesToTakeOverASocket(t *testing.T) {
	t.Parallel()
	live, notSocket := testutil.TakenSocketPaths(t)
	for path, want := range map[string]string{
		live:      "another process is listening",
		notSocket: "not a socket",
	} {
		err := run(t.Context(), []string{"serve", "--listen", "unix://" + path, "--admin", ""}, &env{stdout: io.Discard, stderr: io.Discard})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("serve on %s: %v, want an error saying %q", filepath.Base(path), err, want)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(path), err)
		}
	}
}

func TestServeInvalidPolicyBindsNothing(t *testing.T) {
	t.Parallel()
	// Hold the port serve is told to use: had it tried to bind before
	// validating, it would fail with "address already in use" instead.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()

	var logs testutil.SyncBuffer
	e := &env{stdout: io.Discard, stderr: &logs, ready: func(l listening) { t.Errorf("serve listens on %v with an invalid policy", l) }}
	err = run(t.Context(), []string{"serve", "--policy", filepath.Join("testdata", "three_errors.yaml"), "--listen", addr, "--admin", addr}, e)
	if err == nil {
		t.Fatal("serve accepted an invalid policy file")
	}
	if got := exitCode(err); got != 1 {
		t.Errorf("exitCode = %d, want 1", got)
	}
	if strings.Contains(err.Error(), "address already in use") || strings.Contains(err.Error(), "listener") {
		t.Errorf("serve tried to listen before validating the policy: %v", err)
	}
	var verr *policy.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v (%T) holds no *policy.ValidationError", err, err)
	}
	if n := len(verr.Errors()); n != 3 {
		t.Errorf("%d errors, want all 3: %v", n, err)
	}
	for _, path := range []string{
		"policies[0].allow_all_origins",
		"policies[1].allowed_origin_regexes[0]",
		"policies[2].preflight_status",
	} {
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error does not name %s:\n%v", path, err)
		}
	}
	for _, d := range verr.Diagnostics {
		if !strings.Contains(err.Error(), d.String()) {
			t.Errorf("error does not carry diagnostic %q", d)
		}
	}
	if strings.Contains(logs.String(), "corsproc serving") {
		t.Errorf("serving line logged for an invalid policy:\n%s", logs.String())
	}
}

func TestServeMissingPolicyFile(t *testing.T) {
	t.Parallel()
	err := run(t.Context(), []string{"serve", "--policy", filepath.Join(t.TempDir(), "absent.yaml")}, &env{stdout: io.Discard, stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Fatalf("serve with a missing policy file: %v, want an error naming it", err)
	}
	if got := exitCode(err); got != 1 {
		t.Errorf("exitCode = %d, want 1", got)
	}
}

// TestServeReloadsPolicy rewrites the policy file under a running serve and
// waits until the served answers follow; a broken rewrite is refused and the
// last good policy keeps answering.
func TestServeReloadsPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write := func(content string) { testutil.WriteAtomic(t, path, []byte(content)) }
	policyFor := func(origin string) string {
		return "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [" + origin + "]\n"
	}
	write(policyFor("https://one.example"))
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--policy", path)
	client := extprocv3.NewExternalProcessorClient(dial(t, in.addrs.grpc))
	allowed := func(origin string) bool {
		return preflight(t, client, origin, "PUT").GetStatus().GetCode() == 204
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s; log:\n%s", what, in.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !allowed("https://one.example") || allowed("https://two.example") {
		t.Fatal("the initial policy is not the one served")
	}
	write(policyFor("https://two.example"))
	eventually("the new policy is served", func() bool { return allowed("https://two.example") })
	if allowed("https://one.example") {
		t.Error("the old policy still answers after the reload")
	}

	write(policyFor("https://three.example/")) // invalid: a trailing slash
	eventually("the refused reload is logged", func() bool {
		return strings.Contains(in.logs.String(), "policy reload failed: the last good policy set keeps serving")
	})
	if !allowed("https://two.example") {
		t.Error("a refused reload changed the served policy")
	}
	_, metrics := get(t, "GET", "http://"+in.addrs.admin+"/metrics")
	for _, want := range []string{`corsproc_policy_reloads_total{result="failure"} 1`, `corsproc_policy_reloads_total{result="success"} 1`, "corsproc_policy_last_reload_successful 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The refused reload made no new generation.
	if v := metricValue(t, metrics, "corsproc_policy_generation"); v != 2 {
		t.Errorf("corsproc_policy_generation %v, want 2", v)
	}
	// The processor's metrics are on the same private registry.
	for _, series := range []string{
		`corsproc_requests_total{outcome="preflight_allowed",policy="web"}`,
		`corsproc_requests_total{outcome="preflight_rejected",policy="web"}`,
		`corsproc_rejections_total{mode="enforce",policy="web",reason="origin_not_allowed"}`,
		`corsproc_processing_seconds_count{message="request_headers"}`,
	} {
		if v := metricValue(t, metrics, series); v < 1 {
			t.Errorf("%s %v, want at least 1", series, v)
		}
	}
	checkHealth(t, dialHealth(t, in.addrs.grpc), "", healthpb.HealthCheckResponse_SERVING)
}

// debugHeader returns the value of a "# key: value" header line of
// /debug/policy.
func debugHeader(t *testing.T, body, key string) string {
	t.Helper()
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, "# "+key+": "); ok {
			return strings.TrimSuffix(v, "\n")
		}
	}
	t.Fatalf("/debug/policy has no %s:\n%s", key, body)
	return ""
}

// metricValue returns the value of the sample line that starts with series
// (name and labels) in a /metrics text.
func metricValue(t *testing.T, metrics, series string) float64 {
	t.Helper()
	for line := range strings.Lines(metrics) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", series)
	return 0
}

// TestServeDebugPolicy reads the active set from /debug/policy and the
// metrics, over a reload of a policy directory.
func TestServeDebugPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	web := "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://one.example]\n"
	api := "# the API\npolicies:\n  - name: api\n    match: {routes: [api]}\n    allowed_origins: [https://api.example]\n"
	write := func(name, content string) { testutil.WriteAtomic(t, filepath.Join(dir, name), []byte(content)) }
	write("10-web.yaml", web)
	write("20-api.yaml", api)
	digest := func() string {
		set, err := policyfile.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return set.Digest()
	}
	before := time.Now().Truncate(time.Second)
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--policy", dir)
	admin := "http://" + in.addrs.admin

	code, body := get(t, "GET", admin+"/debug/policy")
	if code != http.StatusOK {
		t.Fatalf("/debug/policy = %d", code)
	}
	if got := debugHeader(t, body, "source"); got != dir {
		t.Errorf("source %q, want %q", got, dir)
	}
	if got, want := debugHeader(t, body, "digest"), digest(); got != want {
		t.Errorf("digest %q, want %q", got, want)
	}
	if got := debugHeader(t, body, "generation"); got != "1" {
		t.Errorf("generation %s, want 1", got)
	}
	loaded1, err := time.Parse(time.RFC3339, debugHeader(t, body, "loaded"))
	if err != nil {
		t.Fatal(err)
	}
	if loaded1.Before(before) || loaded1.After(time.Now()) {
		t.Errorf("loaded %v, not during startup (after %v)", loaded1, before)
	}
	for name, content := range map[string]string{"10-web.yaml": web, "20-api.yaml": api} {
		if want := "# file: " + filepath.Join(dir, name) + "\n" + content; !strings.Contains(body, want) {
			t.Errorf("/debug/policy lacks %s as written:\n%s", name, body)
		}
	}
	if n := len(testutil.YAMLDocs(t, body)); n != 2 {
		t.Errorf("%d YAML documents, want 2:\n%s", n, body)
	}
	_, metrics := get(t, "GET", admin+"/metrics")
	if v := metricValue(t, metrics, "corsproc_policy_generation"); v != 1 {
		t.Errorf("corsproc_policy_generation %v, want 1", v)
	}
	if v := metricValue(t, metrics, "corsproc_policy_loaded_timestamp_seconds"); v < float64(loaded1.Unix()) || v >= float64(loaded1.Unix()+1) {
		t.Errorf("corsproc_policy_loaded_timestamp_seconds %v, want within the second of %v", v, loaded1)
	}

	// The admin port changes nothing.
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		if code, _ := get(t, method, admin+"/debug/policy"); code != http.StatusMethodNotAllowed {
			t.Errorf("%s /debug/policy = %d, want 405", method, code)
		}
	}

	write("10-web.yaml", strings.Replace(web, "one.example", "two.example", 1))
	deadline := time.Now().Add(waitLimit)
	for {
		_, body = get(t, "GET", admin+"/debug/policy")
		if debugHeader(t, body, "generation") == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/debug/policy did not follow the reload:\n%s\nlogs:\n%s", body, in.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, "https://two.example") || strings.Contains(body, "https://one.example") {
		t.Errorf("/debug/policy after the reload:\n%s", body)
	}
	if got, want := debugHeader(t, body, "digest"), digest(); got != want {
		t.Errorf("digest after the reload %q, want %q", got, want)
	}
	loaded2, err := time.Parse(time.RFC3339, debugHeader(t, body, "loaded"))
	if err != nil {
		t.Fatal(err)
	}
	if loaded2.Before(loaded1) {
		t.Errorf("loaded %v after the reload, before %v", loaded2, loaded1)
	}
	_, metrics = get(t, "GET", admin+"/metrics")
	for series, want := range map[string]float64{
		"corsproc_policy_generation":                      2,
		`corsproc_policy_reloads_total{result="success"}`: 1,
		"corsproc_policies":                               2,
	} {
		if v := metricValue(t, metrics, series); v != want {
			t.Errorf("%s %v, want %v", series, v, want)
		}
	}
}

// /readyz reaches the gRPC health service on a Unix socket too.
func TestServeReadyzUnixSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(testutil.ShortTempDir(t), "corsproc.sock")
	in := startServe(t, "--listen", "unix://"+sock, "--admin", "127.0.0.1:0")
	if code, body := get(t, "GET", "http://"+in.addrs.admin+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %q, want 200", code, body)
	}
}

// sendPreflight sends one preflight to serve's ext_proc service and returns
// corsproc's immediate response.
func sendPreflight(t *testing.T, in *instance, origin, method string) *extprocv3.ImmediateResponse {
	t.Helper()
	return preflight(t, extprocv3.NewExternalProcessorClient(dial(t, in.addrs.grpc)), origin, method)
}

// preflight sends one preflight through client and returns corsproc's
// immediate response; it fails the test when there is none.
func preflight(t *testing.T, client extprocv3.ExternalProcessorClient, origin, method string) *extprocv3.ImmediateResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	stream, err := client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	var headers []*corev3.HeaderValue
	for _, h := range [][2]string{
		{":method", "OPTIONS"}, {":path", "/api/items"}, {":authority", "api.localhost"}, {":scheme", "http"},
		{"origin", origin}, {"access-control-request-method", method},
	} {
		headers = append(headers, &corev3.HeaderValue{Key: h[0], RawValue: []byte(h[1])})
	}
	if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: headers}, EndOfStream: true},
	}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil || resp.GetImmediateResponse() == nil {
		t.Fatalf("ext_proc answer %v, %v; want an immediate response", resp, err)
	}
	return resp.GetImmediateResponse()
}

// serve --explain-refusals makes a refused preflight say why; by default it
// does not, as the reason tells any client what a policy lacks.
func TestServeExplainRefusals(t *testing.T) {
	t.Parallel()
	reason := func(ir *extprocv3.ImmediateResponse) string {
		for _, h := range ir.GetHeaders().GetSetHeaders() {
			if h.GetHeader().GetKey() == processor.HeaderReason {
				return string(h.GetHeader().GetRawValue())
			}
		}
		return ""
	}
	const want = `origin "https://evil.example" is not allowed by policy "development"`
	on := startServe(t, "--listen", "127.0.0.1:0", "--admin", "", "--explain-refusals")
	if ir := sendPreflight(t, on, "https://evil.example", "PUT"); reason(ir) != want || string(ir.GetBody()) != want+"\n" {
		t.Errorf("--explain-refusals: X-Corsproc-Reason %q, body %q; want %q", reason(ir), ir.GetBody(), want)
	}
	off := startServe(t, "--listen", "127.0.0.1:0", "--admin", "")
	if ir := sendPreflight(t, off, "https://evil.example", "PUT"); reason(ir) != "" || len(ir.GetBody()) != 0 {
		t.Errorf("by default: X-Corsproc-Reason %q, body %q; want neither", reason(ir), ir.GetBody())
	}
}
