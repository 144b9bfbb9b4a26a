package admin

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"go.yaml.in/yaml/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/corsproc/corsproc/internal/active"
	"github.com/corsproc/corsproc/internal/app"
	"github.com/corsproc/corsproc/internal/testutil"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"
)

// adminEnv is an admin handler whose /readyz asks a real gRPC server's
// health service over loopback TCP.
type adminEnv struct {
	t      *testing.T
	h      http.Handler
	active *active.Set
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
	act := active.New(proc, set, time.Now(), nil)
	g := app.NewGRPCServer(proc, nil)
	gs, hs := g.Server, g.Health
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
	ready := &readiness{active: act, health: healthpb.NewHealthClient(conn)}
	h := newHandler(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), act, ready.check)
	return &adminEnv{t: t, h: h, active: act, proc: proc, stop: gs.Stop, hs: hs}
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
	e := newAdminEnv(t, policyfile.Development())
	e.wantReady(http.StatusOK, "ok")

	e.hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	e.wantReady(http.StatusServiceUnavailable, "NOT_SERVING")
	// The ext_proc service alone going down does not matter: /readyz asks
	// for the whole server, as Envoy's health checker does by default.
	e.hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	e.hs.SetServingStatus(app.HealthServices[1], healthpb.HealthCheckResponse_NOT_SERVING)
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
	e.active.Swap(policyfile.Development())
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
	set, err := policyfile.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	loaded := time.Date(2026, 3, 1, 12, 30, 45, 0, time.FixedZone("CET", 3600))
	var b bytes.Buffer
	writePolicyYAML(&b, &active.Loaded{Set: set, LoadedAt: loaded, Generation: 7}, nil)
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
	docs := testutil.YAMLDocs(t, out)
	if len(docs) != 3 {
		t.Fatalf("%d documents, want 3:\n%s", len(docs), out)
	}
	for i, name := range []string{"a.yaml", "b.yaml", "c.yaml"} {
		want := testutil.YAMLDocs(t, files[name])[0]
		if got, _ := yaml.Marshal(docs[i]); string(got) != string(must(yaml.Marshal(want))) {
			t.Errorf("document %d:\n%s\nwant %s:\n%s", i, got, name, must(yaml.Marshal(want)))
		}
	}

	// A set compiled from a decoded file has no source text: said so.
	pf, err := policyfile.Decode("decoded.yaml", []byte(files["a.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := policy.Compile(policy.Source{Name: "decoded.yaml", Files: []policy.Input{{File: "decoded.yaml", Schema: pf}}})
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	writePolicyYAML(&b, &active.Loaded{Set: compiled, LoadedAt: loaded, Generation: 1}, nil)
	for _, want := range []string{"# source: decoded.yaml\n", "# digest: none\n", "# files: none recorded"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "# file: ") || len(testutil.YAMLDocs(t, b.String())) != 0 {
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

// corsproc_build_info is in every registry NewRegistry gives, value 1,
// with the build's version, commit and Go version.
func TestBuildInfoMetric(t *testing.T) {
	t.Parallel()
	b := ReadBuild()
	commit := b.Commit
	if b.Modified {
		commit += "-modified"
	}
	want := `
# HELP corsproc_build_info Always 1; its labels say which corsproc is running: the module version, the VCS commit (-modified when built from a checkout with changes) and the Go version that built it.
# TYPE corsproc_build_info gauge
corsproc_build_info{commit="` + commit + `",goversion="` + runtime.Version() + `",version="` + b.Version + `"} 1
`
	if err := promtestutil.GatherAndCompare(NewRegistry(), strings.NewReader(want), MetricBuildInfo); err != nil {
		t.Error(err)
	}
}

// / lists every endpoint the handler serves.
func TestIndexListsEndpoints(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, policyfile.Development())
	code, body := e.do("GET", "/")
	if code != http.StatusOK {
		t.Fatalf("/ = %d", code)
	}
	for _, ep := range endpoints {
		if !strings.Contains(body, ep.path+" ") {
			t.Errorf("/ lacks %s:\n%s", ep.path, body)
		}
		if code, _ := e.do("GET", ep.path); code == http.StatusNotFound {
			t.Errorf("%s listed but not served", ep.path)
		}
	}
	if code, _ := e.do("POST", "/"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", code)
	}
}

// The last reload is written as comments, a refused one with each problem
// on a comment line of its own, whatever line breaks the problem holds.
func TestWritePolicyYAMLLastReload(t *testing.T) {
	t.Parallel()
	set := policyfile.Development()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	writePolicyYAML(&b, &active.Loaded{Set: set, LoadedAt: at, Generation: 1}, &active.Reload{
		At: at, Result: "failure", Digest: "abc",
		Problems: []string{"p.yaml:1:1: error: first", "two lines\npolicies: [injected]", "carriage\rreturn: x"},
	})
	out := b.String()
	for _, w := range []string{
		"# last reload: failure at 2026-03-01T12:00:00Z, digest abc\n",
		"#   p.yaml:1:1: error: first\n",
		"#   two lines\n#   policies: [injected]\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// Nothing of a problem escapes the comments of the header, which ends
	// where the first file begins.
	header, _, _ := strings.Cut(out, "# file: ")
	for line := range strings.Lines(header) {
		if !strings.HasPrefix(line, "#") {
			t.Errorf("line outside a comment: %q", line)
		}
	}
	if strings.ContainsRune(header, '\r') {
		t.Errorf("a carriage return in the output:\n%q", out)
	}
	b.Reset()
	writePolicyYAML(&b, &active.Loaded{Set: set, LoadedAt: at, Generation: 1}, nil)
	if !strings.Contains(b.String(), "# last reload: none") {
		t.Errorf("no reload:\n%s", b.String())
	}
}
