package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

const safeNginx = `server {
    server_name api.example.com;
    location /api/ {
        if ($request_method = OPTIONS) {
            add_header Access-Control-Allow-Origin https://app.example.com;
            add_header Access-Control-Allow-Methods "GET, PUT";
            add_header Vary Origin;
            return 204;
        }
        add_header Access-Control-Allow-Origin https://app.example.com always;
        add_header Vary Origin always;
    }
}
`

const unsafeEnvoy = `virtual_hosts:
- name: api
  domains: [api.example.com]
  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_origin_string_match:
      - prefix: https://app.example.com
      allow_credentials: true
`

// TestImportNginx checks import nginx end to end: the policy file on
// stdout (or -o) loads and decides as nginx did, the warnings go to
// stderr with their lines, and a clean import exits 0.
func TestImportNginx(t *testing.T) {
	dir := t.TempDir()
	conf := writePolicy(t, dir, "site.conf", safeNginx)
	var stdout, stderr bytes.Buffer
	if err := Run(t.Context(), []string{"import", "nginx", conf}, &stdout, &stderr); err != nil {
		t.Fatalf("import: %v\n%s", err, stderr.String())
	}
	set, err := policyfile.Parse("imported.yaml", stdout.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	var d policy.Decision
	set.Decide(&policy.Request{Method: "OPTIONS", Host: "api.example.com", Path: "/api/x", Origin: "https://app.example.com", ACRM: "PUT"}, &d)
	if d.Outcome != policy.OutcomePreflightAllowed {
		t.Errorf("preflight: %v %v\n%s", d.Outcome, d.Reason, stdout.String())
	}
	if !strings.Contains(stdout.String(), "# add_header Access-Control-Allow-Origin, "+conf+":5") {
		t.Errorf("no source comment:\n%s", stdout.String())
	}

	// -o writes the file, and a directory is read whole.
	out := filepath.Join(dir, "cors.yaml")
	stdout.Reset()
	if err := Run(t.Context(), []string{"import", "-o", out, "nginx", dir}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), "https://app.example.com") || stdout.Len() != 0 {
		t.Errorf("-o: %v %q, stdout %q", err, b, stdout.String())
	}

	// "-" reads standard input.
	importStdin = strings.NewReader(safeNginx)
	defer func() { importStdin = os.Stdin }()
	stdout.Reset()
	if err := Run(t.Context(), []string{"import", "nginx", "-"}, &stdout, io.Discard); err != nil || !strings.Contains(stdout.String(), "from -.") {
		t.Errorf("stdin: %v\n%s", err, stdout.String())
	}
}

// TestImportRefused checks that an import whose policy corsproc refuses
// exits 1, with the error at the source line, the YAML still written; and
// the usage errors.
func TestImportRefused(t *testing.T) {
	dir := t.TempDir()
	f := writePolicy(t, dir, "routes.yaml", unsafeEnvoy)
	var stdout, stderr bytes.Buffer
	err := Run(t.Context(), []string{"import", "envoy", f}, &stdout, &stderr)
	if exitCode(err) != 1 || !strings.Contains(stderr.String(), "error: "+f+":8: ") || !strings.Contains(stdout.String(), "allowed_origin_regexes") {
		t.Errorf("exit %d (%v)\n%s\n%s", exitCode(err), err, stdout.String(), stderr.String())
	}
	for _, args := range [][]string{{"import", "apache", f}, {"audit", "apache", f}, {"audit", "--format", "xml", "nginx", f}, {"audit", "nginx"}} {
		if err := Run(t.Context(), args, io.Discard, io.Discard); exitCode(err) != 2 {
			t.Errorf("%q: exit %d (%v), want a usage error", args, exitCode(err), err)
		}
	}
	if err := Run(t.Context(), []string{"import", "nginx", filepath.Join(dir, "missing.conf")}, io.Discard, io.Discard); exitCode(err) != 1 {
		t.Errorf("missing file: exit %d", exitCode(err))
	}
}

// TestAudit checks that audit reports what is unsafe in the sources as
// they are and exits 1 for it, in text and JSON, and exits 0 for a safe
// configuration.
func TestAudit(t *testing.T) {
	dir := t.TempDir()
	unsafe := writePolicy(t, dir, "routes.yaml", unsafeEnvoy)
	var stdout bytes.Buffer
	err := Run(t.Context(), []string{"audit", "envoy", unsafe}, &stdout, io.Discard)
	if exitCode(err) != 1 {
		t.Errorf("exit %d (%v), want 1", exitCode(err), err)
	}
	for _, want := range []string{
		"unsafe [unsafe_origin]: " + unsafe + ":8: ",
		"unsafe [missing_vary]: " + unsafe + ":7: ",
		"2 findings, 2 unsafe",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("audit lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	err = Run(t.Context(), []string{"audit", "--format", "json", "envoy", unsafe}, &stdout, io.Discard)
	var report struct {
		Source   string `json:"source"`
		Unsafe   int    `json:"unsafe"`
		Findings []struct {
			File, Code, Severity string
			Line                 int
		} `json:"findings"`
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &report); jerr != nil || exitCode(err) != 1 || report.Unsafe != 2 || report.Source != "envoy" || report.Findings[0].File != unsafe {
		t.Errorf("json: %v, exit %d: %+v\n%s", jerr, exitCode(err), report, stdout.String())
	}

	safe := writePolicy(t, t.TempDir(), "site.conf", safeNginx)
	stdout.Reset()
	if err := Run(t.Context(), []string{"audit", "nginx", safe}, &stdout, io.Discard); err != nil || !strings.Contains(stdout.String(), "0 findings, 0 unsafe") {
		t.Errorf("safe config: %v\n%s", err, stdout.String())
	}
}

// TestImportKubernetesSources checks that istio and gateway-api are wired
// to their readers: each imports its package's fixture with a policy file
// naming the source.
func TestImportKubernetesSources(t *testing.T) {
	for source, file := range map[string]string{
		"istio":       "../../internal/importer/istio/testdata/ratings.yaml",
		"gateway-api": "../../internal/importer/gatewayapi/testdata/conformance.yaml",
	} {
		var stdout, stderr bytes.Buffer
		err := Run(t.Context(), []string{"import", source, file}, &stdout, &stderr)
		if code := exitCode(err); code == 2 || !strings.Contains(stdout.String(), "# Generated by corsproc import "+source+" from "+file) {
			t.Errorf("import %s: exit %d (%v)\n%s\n%s", source, code, err, stdout.String(), stderr.String())
		}
		if err := Run(t.Context(), []string{"audit", source, file}, io.Discard, io.Discard); exitCode(err) == 2 {
			t.Errorf("audit %s: %v", source, err)
		}
	}
}
