package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func writePolicy(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkCase is a run of corsproc with args, its exit status, and what its
// standard output must contain.
type checkCase struct {
	name string
	args []string
	exit int
	want []string
}

// runCheckCases runs each case as a subtest (runCheckCase).
func runCheckCases(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runCheckCase(t, c.args, c.exit, c.want) })
	}
}

// runCheckCase runs corsproc with args, checks its exit status and that
// its standard output contains every string of want, and returns that
// output.
func runCheckCase(t *testing.T, args []string, exit int, want []string) string {
	t.Helper()
	var stdout bytes.Buffer
	err := Run(t.Context(), args, &stdout, io.Discard)
	if got := exitCode(err); got != exit {
		t.Errorf("exit %d, want %d (err %v)\n%s", got, exit, err, stdout.String())
	}
	wantCheckOutput(t, stdout.String(), want...)
	return stdout.String()
}

const validPolicy = "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com]\n    preflight_max_age: 7200\n"

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	valid := writePolicy(t, dir, "valid.yaml", validPolicy)
	warned := writePolicy(t, dir, "warned.yaml", "policies:\n  - name: web\n    match: {hosts: [app.example.com]}\n    allowed_origins: [https://app.example.com]\n    preflight_max_age: 86400\n")
	invalid := writePolicy(t, dir, "invalid.yaml", "policies:\n  - name: web\n    allowed_origins: [https://app.example.com/]\n    alow_headers: []\n")
	runCheckCases(t, []checkCase{
		{"valid", []string{"check", valid}, 0, []string{valid + ": valid: 1 policy, 0 warnings"}},
		{"warning", []string{"check", warned}, 0, []string{
			warned + ":5:24: warning: policies[0].preflight_max_age: Chromium caches preflights for at most 7200 seconds",
			warned + ": valid: 1 policy, 1 warning"}},
		{"warning, strict", []string{"check", warned, "--strict"}, 1, []string{warned + ": 1 warning (--strict)"}},
		// The names Envoy routes send in x-corsproc-policy: one the set
		// does not define is an error, since corsproc would allow no CORS
		// on those routes.
		{"metadata policy defined", []string{"check", "--metadata-policy", "web", valid}, 0, []string{valid + ": valid: 1 policy, 0 warnings"}},
		{"metadata policy unknown", []string{"check", "--metadata-policy", "web", "--metadata-policy", "wbe", valid}, 1, []string{
			valid + `: error: x-corsproc-policy: "wbe" names no policy of this set: corsproc would allow no CORS on the routes that send it (preflights get 403, the upstream's CORS headers are removed); fix: define the policy, or correct the route's grpc_initial_metadata (policies: web)`,
			valid + ": invalid: 1 error, 0 warnings"}},
		{"strict before the file", []string{"check", "--strict", warned}, 1, []string{"(--strict)"}},
		{"errors", []string{"check", invalid}, 1, []string{
			invalid + ":3:23: error: policies[0].allowed_origins[0]: \"https://app.example.com/\" has a trailing slash",
			invalid + ":4:5: error: policies[0].alow_headers: unknown key \"alow_headers\"; fix: did you mean \"allow_headers\"?",
			invalid + ": invalid: 2 errors, 0 warnings"}},
		{"directory", []string{"check", dir}, 1, []string{
			"invalid.yaml:3:23: error",
			"valid.yaml:3:11: error: policies[0].name: policy name \"web\" is also defined in " + invalid,
			dir + ": invalid: 4 errors"}},
	})

	t.Run("json", func(t *testing.T) {
		var stdout bytes.Buffer
		err := Run(t.Context(), []string{"check", "--format", "json", invalid}, &stdout, io.Discard)
		if exitCode(err) != 1 {
			t.Fatalf("exit %d", exitCode(err))
		}
		var out struct {
			Valid       bool
			Diagnostics []jsonDiagnostic
		}
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		if out.Valid || len(out.Diagnostics) != 2 || out.Diagnostics[0].Path != "policies[0].allowed_origins[0]" || out.Diagnostics[0].Line != 3 || out.Diagnostics[0].Fix == "" {
			t.Errorf("json output: %+v", out)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"check"}, {"check", valid, valid}, {"check", "--format", "xml", valid}} {
			if err := Run(t.Context(), args, io.Discard, io.Discard); exitCode(err) != 2 {
				t.Errorf("%q: exit %d, want 2 (%v)", args, exitCode(err), err)
			}
		}
		if err := Run(t.Context(), []string{"check", filepath.Join(dir, "absent.yaml")}, io.Discard, io.Discard); exitCode(err) != 1 {
			t.Errorf("absent file: %v", err)
		}
	})
}
