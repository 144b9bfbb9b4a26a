package main

import (
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/corsproc/corsproc/internal/admin"
	"github.com/corsproc/corsproc/internal/testutil"
)

// documentedMetrics returns the metric names of docs/operations.md's
// Metrics table.
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(corsproc_[a-z_]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		names = append(names, m[1])
	}
	if len(names) < 10 {
		t.Fatalf("docs/operations.md lists %d metrics: %v", len(names), names)
	}
	return names
}

// Every documented corsproc_* metric is on /metrics before the first
// request, so that dashboards and alerts work from the start; the TLS
// reloads only with TLS files, which this server has not.
func TestServeMetricsExistFromStart(t *testing.T) {
	t.Parallel()
	path := writePolicy(t, t.TempDir(), "policy.yaml", validPolicy)
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--policy", path)
	_, metrics := get(t, "GET", "http://"+in.addrs.admin+"/metrics")
	for _, name := range documentedMetrics(t) {
		if name == "corsproc_tls_reloads_total" {
			continue
		}
		if !regexp.MustCompile(`(?m)^` + name + `(_bucket|_count)?[{ ]`).MatchString(metrics) {
			t.Errorf("/metrics has no %s before any request", name)
		}
	}
	for _, series := range []string{
		`corsproc_requests_total{outcome="ungoverned",policy=""}`,
		`corsproc_requests_total{outcome="unknown_policy",policy=""}`,
		`corsproc_rejections_total{mode="enforce",policy="",reason="unknown_policy"}`,
		`corsproc_policy_reloads_total{result="failure"}`,
	} {
		if v := metricValue(t, metrics, series); v != 0 {
			t.Errorf("%s = %v, want 0", series, v)
		}
	}
	b := admin.ReadBuild()
	info := `corsproc_build_info{commit="` + b.Commit + `",goversion="` + runtime.Version() + `",version="` + b.Version + `"}`
	if b.Modified {
		info = strings.Replace(info, b.Commit, b.Commit+"-modified", 1)
	}
	if v := metricValue(t, metrics, info); v != 1 {
		t.Errorf("%s = %v, want 1", info, v)
	}
}

// / lists the admin endpoints; /debug/policy says what the last reload
// did, and why it was refused.
func TestServeAdminHelpsAPerson(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writePolicy(t, dir, "policy.yaml", validPolicy)
	in := startServe(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--policy", path, "--reload-interval", "50ms")
	base := "http://" + in.addrs.admin
	code, index := get(t, "GET", base+"/")
	if code != http.StatusOK {
		t.Errorf("/ = %d, want 200", code)
	}
	for _, w := range []string{"/metrics ", "/healthz ", "/readyz ", "/debug/policy ", "corsproc " + admin.ReadBuild().Version} {
		if !strings.Contains(index, w) {
			t.Errorf("/ lacks %q:\n%s", w, index)
		}
	}
	if code, _ := get(t, "GET", base+"/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing = %d, want 404", code)
	}

	// A refused reload: the reason is on /debug/policy.
	testutil.WriteAtomic(t, path, []byte(strings.Replace(validPolicy, "https://app.example.com]", "https://app.example.com/]", 1)))
	deadline := time.Now().Add(waitLimit)
	var body string
	for {
		_, body = get(t, "GET", base+"/debug/policy")
		if strings.Contains(body, "# last reload: failure at ") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, w := range []string{
		"# last reload: failure at ",
		"# the active set above keeps serving; the reload was refused for:\n",
		`#   ` + path + `:4:23: error: policies[0].allowed_origins[0]: "https://app.example.com/" has a trailing slash`,
		"# generation: 1\n",
	} {
		if !strings.Contains(body, w) {
			t.Errorf("/debug/policy lacks %q:\n%s", w, body)
		}
	}
}

// corsproc dev --admin serves the same admin server.
func TestDevAdmin(t *testing.T) {
	t.Parallel()
	in := startCommand(t, "dev", "--upstream", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	if in.addrs.admin == "" {
		t.Fatal("dev --admin bound no admin server")
	}
	base := "http://" + in.addrs.admin
	if code, body := get(t, "GET", base+"/debug/policy"); code != http.StatusOK || !strings.Contains(body, "# source: ") {
		t.Errorf("/debug/policy = %d:\n%s", code, body)
	}
	_, metrics := get(t, "GET", base+"/metrics")
	for _, w := range []string{"corsproc_requests_total", "corsproc_policies 1", "corsproc_build_info"} {
		if !strings.Contains(metrics, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	if code, _ := get(t, "GET", base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", code)
	}
}
