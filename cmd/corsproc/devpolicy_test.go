package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// splitPolicies is what corsproc import django writes for settings whose
// CORS settings depend on DEBUG: django for production, selected by its
// match, and django-debug, selected only by name.
const splitPolicies = `policies:
  - name: django
    match:
      urls_regex: '^/api/.*'
    allowed_origins: [https://app.example.com]
  - name: django-debug
    allowed_origins: [https://app.example.com, http://localhost:3000]
`

// TestDevPolicyName checks that dev --policy-name serves the named policy
// on every request, as a route's x-corsproc-policy metadata would, where
// the set's own selection picks another, and that a name the set does not
// hold stops dev before it listens.
func TestDevPolicyName(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "cors.yaml")
	if err := os.WriteFile(file, []byte(splitPolicies), 0o600); err != nil {
		t.Fatal(err)
	}
	up := newDevUpstream(t)
	const local = "http://localhost:3000"

	plain := startDev(t, "--upstream", up.srv.URL, "--listen", "127.0.0.1:0", "--policy", file)
	resp, _ := devDo(t, "GET", "http://"+plain.addrs.http+"/api/items", "Origin: "+local)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("without --policy-name: Access-Control-Allow-Origin %q, want none (policy django)", got)
	}

	forced := startDev(t, "--upstream", up.srv.URL, "--listen", "127.0.0.1:0", "--policy", file, "--policy-name", "django-debug")
	for _, path := range []string{"/api/items", "/other"} {
		resp, _ := devDo(t, "GET", "http://"+forced.addrs.http+path, "Origin: "+local)
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != local {
			t.Errorf("--policy-name django-debug, %s: Access-Control-Allow-Origin %q, want %s", path, got, local)
		}
		resp, _ = devDo(t, "OPTIONS", "http://"+forced.addrs.http+path, "Origin: "+local, "Access-Control-Request-Method: PUT")
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != local {
			t.Errorf("--policy-name django-debug, preflight %s: %d %v", path, resp.StatusCode, resp.Header)
		}
	}

	e := &env{stdout: io.Discard, stderr: io.Discard, ready: func(l listening) { t.Errorf("dev listens on %v with an unknown --policy-name", l) }}
	err := run(t.Context(), []string{"dev", "--upstream", up.srv.URL, "--listen", "127.0.0.1:0", "--policy", file, "--policy-name", "django-dev"}, e)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), `--policy-name "django-dev"`) || !strings.Contains(err.Error(), "django, django-debug") {
		t.Errorf("unknown --policy-name: exit %d, %v", exitCode(err), err)
	}
}
