package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.yaml.in/yaml/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/processor"
)

// adminEnv is an admin handler whose /readyz asks a real gRPC server's
// health service over loopback TCP.
type adminEnv struct {
	t      *testing.T
	h      http.Handler
	active *activePolicy
	proc   *processor.Server
	stop   func() // stops the gRPC server
	hs     interface {
		SetServingStatus(string, healthpb.HealthCheckResponse_ServingStatus)
		Shutdown()
	}
}

func newAdminEnv(t *testing.T, set *policy.Set) *adminEnv {
	t.Helper()
	proc := processor.New(set, processor.Options{})
	active := newActivePolicy(proc, set, time.Now(), nil)
	gs, hs := newGRPCServer(proc, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := dialSelf(lis.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ready := &readiness{active: active, health: healthpb.NewHealthClient(conn)}
	h := newAdminHandler(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), active, ready.check)
	return &adminEnv{t: t, h: h, active: active, proc: proc, stop: gs.Stop, hs: hs}
}

// do serves one request and returns the status and body.
func (e *adminEnv) do(method, path string) (int, string) {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequestWithContext(e.t.Context(), method, path, nil))
	return rec.Code, rec.Body.String()
}

func (e *adminEnv) wantReady(code int, body string) {
	e.t.Helper()
	got, b := e.do("GET", "/readyz")
	if got != code || !strings.Contains(b, body) {
		e.t.Errorf("/readyz = %d %q, want %d containing %q", got, b, code, body)
	}
}

// /readyz is what the gRPC health service says, asked over gRPC.
func TestReadyzFollowsGRPCHealth(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, policy.Development())
	e.wantReady(http.StatusOK, "ok")

	e.hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	e.wantReady(http.StatusServiceUnavailable, "NOT_SERVING")
	// The ext_proc service alone going down does not matter: /readyz asks
	// for the whole server, as Envoy's health checker does by default.
	e.hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	e.hs.SetServingStatus(healthServices[1], healthpb.HealthCheckResponse_NOT_SERVING)
	e.wantReady(http.StatusOK, "ok")

	// Draining: NOT_SERVING for good.
	e.hs.Shutdown()
	e.wantReady(http.StatusServiceUnavailable, "NOT_SERVING")
	// /healthz is about the process, not the server.
	if code, _ := e.do("GET", "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while draining, want 200", code)
	}
	// Stopped: nothing answers the health check.
	e.stop()
	e.wantReady(http.StatusServiceUnavailable, "gRPC health check failed")
}

func TestReadyzWithoutPolicy(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	e.wantReady(http.StatusServiceUnavailable, "no policy set loaded")
	e.active.swap(policy.Development())
	e.wantReady(http.StatusOK, "ok")
}

func TestSelfTarget(t *testing.T) {
	t.Parallel()
	for addr, want := range map[net.Addr]string{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9001}:   "passthrough:///127.0.0.1:9001",
		&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 9001}:    "passthrough:///10.1.2.3:9001",
		&net.TCPAddr{IP: net.IPv4zero, Port: 9001}:             "passthrough:///127.0.0.1:9001",
		&net.TCPAddr{IP: net.IPv6unspecified, Port: 9001}:      "passthrough:///[::1]:9001",
		&net.TCPAddr{IP: net.ParseIP("fd00::1"), Port: 9001}:   "passthrough:///[fd00::1]:9001",
		&net.UnixAddr{Name: "/run/corsproc.sock", Net: "unix"}: "unix:///run/corsproc.sock",
	} {
		if got := selfTarget(addr); got != want {
			t.Errorf("selfTarget(%v) = %q, want %q", addr, got, want)
		}
	}
}

// yamlDocs decodes a YAML stream into its documents.
func yamlDocs(t *testing.T, data string) []any {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(data))
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("not a YAML stream: %v\n%s", err, data)
		}
		docs = append(docs, v)
	}
}

func TestWritePolicyYAML(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := map[string]string{
		"a.yaml": "# leading comment\ndefault_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com]",
		"b.yaml": "# a file with its own document start\n---\npolicies:\n  - name: api\n    match: {routes: [api]}\n    allowed_origins: [https://api.example.com]\n",
		"c.yaml": "%YAML 1.1\n---\npolicies:\n  - name: shop\n    match: {routes: [shop]}\n    allowed_origins: [https://shop.example.com]\n...\n",
	}
	for name, data := range files {
		writeFile(t, dir, name, data)
	}
	set, err := policy.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	loaded := time.Date(2026, 3, 1, 12, 30, 45, 0, time.FixedZone("CET", 3600))
	var b bytes.Buffer
	writePolicyYAML(&b, &loadedPolicy{set: set, loadedAt: loaded, generation: 7})
	out := b.String()
	header := "# source: " + dir + "\n# digest: " + set.Digest() + "\n# loaded: 2026-03-01T11:30:45Z\n# generation: 7\n# policies: web, api, shop\n"
	if !strings.HasPrefix(out, header) {
		t.Errorf("header:\n%s\nwant:\n%s", out, header)
	}
	for _, name := range []string{"a.yaml", "b.yaml", "c.yaml"} {
		if want := "# file: " + filepath.Join(dir, name) + "\n" + files[name]; !strings.Contains(out, want) {
			t.Errorf("output lacks %s as read:\n%s", name, out)
		}
	}
	// One document per file, each the file's content.
	docs := yamlDocs(t, out)
	if len(docs) != 3 {
		t.Fatalf("%d documents, want 3:\n%s", len(docs), out)
	}
	for i, name := range []string{"a.yaml", "b.yaml", "c.yaml"} {
		want := yamlDocs(t, files[name])[0]
		if got, _ := yaml.Marshal(docs[i]); string(got) != string(must(yaml.Marshal(want))) {
			t.Errorf("document %d:\n%s\nwant %s:\n%s", i, got, name, must(yaml.Marshal(want)))
		}
	}

	// A set compiled from a decoded file has no source text: said so.
	pf, err := policy.Decode("decoded.yaml", []byte(files["a.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := policy.Compile("decoded.yaml", pf)
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	writePolicyYAML(&b, &loadedPolicy{set: compiled, loadedAt: loaded, generation: 1})
	for _, want := range []string{"# source: decoded.yaml\n", "# digest: none\n", "# files: none recorded"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "# file: ") || len(yamlDocs(t, b.String())) != 0 {
		t.Errorf("documents without source files:\n%s", b.String())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func writeFile(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The active policy's metrics exist from the start and follow every swap.
func TestActivePolicyMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	dev := policy.Development()
	proc := processor.New(dev, processor.Options{})
	active := newActivePolicy(proc, dev, time.Unix(1700000000, 500_000_000), reg)
	compare := func(generation, loaded, policies string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP corsproc_policies Policies in the active set.
# TYPE corsproc_policies gauge
corsproc_policies `+policies+`
# HELP corsproc_policy_generation Generation of the active policy set: 1 for the set corsproc started with, one more per successful reload.
# TYPE corsproc_policy_generation gauge
corsproc_policy_generation `+generation+`
# HELP corsproc_policy_loaded_timestamp_seconds Unix time at which the active policy set was loaded.
# TYPE corsproc_policy_loaded_timestamp_seconds gauge
corsproc_policy_loaded_timestamp_seconds `+loaded+`
`)); err != nil {
			t.Error(err)
		}
	}
	compare("1", "1700000000.5", "1")
	if lp := active.current(); lp.set != dev || lp.generation != 1 || !lp.loadedAt.Equal(time.Unix(1700000000, 500_000_000)) {
		t.Errorf("current = %+v", lp)
	}

	two, err := policy.Parse("two.yaml", []byte("policies:\n  - name: a\n    allowed_origins: [https://a.example]\n  - name: b\n    allowed_origins: [https://b.example]\n"))
	if err != nil {
		t.Fatal(err)
	}
	active.now = func() time.Time { return time.Unix(1700000100, 0) }
	active.swap(two)
	compare("2", "1700000100", "2")
	if proc.Policy() != two {
		t.Error("swap did not reach the processor")
	}
	if lp := active.current(); lp.set != two || lp.generation != 2 || !lp.loadedAt.Equal(time.Unix(1700000100, 0)) {
		t.Errorf("current = %+v", lp)
	}
}
