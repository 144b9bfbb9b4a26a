package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

func TestImportDjango(t *testing.T) {
	dir := t.TempDir()
	settings := writePolicy(t, dir, "settings.py", `from corsheaders.defaults import default_headers

CORS_ALLOWED_ORIGINS = [
    "https://app.example.com",
    "https://admin.example.com/",
]
CORS_ALLOW_HEADERS = (*default_headers, "x-trace-id")
CORS_ALLOW_CREDENTIALS = True
CORS_PREFLIGHT_MAX_AGE = int(os.environ["MAX_AGE"])
`)
	var stdout, stderr bytes.Buffer
	// CORS_PREFLIGHT_MAX_AGE reads the environment: the policy lacks it,
	// so import exits 1, with the policy and the warnings printed.
	if err := Run(t.Context(), []string{"import", "django", settings}, &stdout, &stderr); exitCode(err) != 1 {
		t.Fatalf("import: exit %d (%v), want 1\n%s", exitCode(err), err, stderr.String())
	}
	set, err := policyfile.Parse("imported.yaml", stdout.Bytes())
	if err != nil {
		t.Fatalf("the imported policy does not load: %v\n%s", err, stdout.String())
	}
	var d policy.Decision
	set.Decide(&policy.Request{Method: "OPTIONS", Origin: "https://admin.example.com", ACRM: "PUT", ACRH: []string{"x-trace-id"}}, &d)
	if d.Outcome != policy.OutcomePreflightAllowed {
		t.Errorf("imported policy: %v %v\n%s", d.Outcome, d.Reason, stdout.String())
	}
	for _, want := range []string{
		settings + ":9: CORS_PREFLIGHT_MAX_AGE",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}

	broken := writePolicy(t, dir, "broken.py", "CORS_ALLOWED_ORIGINS = [\n  'https://a.example',\n")
	err = Run(t.Context(), []string{"import", "django", broken}, io.Discard, io.Discard)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "broken.py") {
		t.Errorf("unparseable settings: exit %d, %v", exitCode(err), err)
	}
	for _, args := range [][]string{{"import"}, {"import", "django"}, {"import", "flask", settings}} {
		if err := Run(t.Context(), args, io.Discard, io.Discard); exitCode(err) != 2 {
			t.Errorf("%q: exit %d (%v), want a usage error", args, exitCode(err), err)
		}
	}
}

// TestImportDjangoRefusedRegex checks that settings holding a regex that
// reflects any origin with credentials make import exit 1, with an error at
// the regex's settings line (the YAML is still printed, to be corrected).
func TestImportDjangoRefusedRegex(t *testing.T) {
	settings := writePolicy(t, t.TempDir(), "settings.py", `CORS_ALLOW_CREDENTIALS = True
CORS_ALLOWED_ORIGIN_REGEXES = [
    r".*",
    r"^https://[a-z0-9-]+\.example\.com$",
]
`)
	var stdout, stderr bytes.Buffer
	err := Run(t.Context(), []string{"import", "django", settings}, &stdout, &stderr)
	if exitCode(err) != 1 {
		t.Errorf("exit %d (%v), want 1\n%s", exitCode(err), err, stderr.String())
	}
	want := "error: " + settings + `:3: CORS_ALLOWED_ORIGIN_REGEXES: corsproc refuses the generated policy: ".*": it matches hosts it does not name`
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
	if strings.Count(stderr.String(), "error: ") != 1 || !strings.Contains(stdout.String(), "allowed_origin_regexes:") {
		t.Errorf("want one error and the YAML printed:\n%s\n%s", stdout.String(), stderr.String())
	}
}

// TestImportDjangoEnvironmentOrigins checks that settings extending their
// origins from the environment give a policy with every literal origin,
// the environment's part marked in it and named on stderr, and exit 1:
// the import is incomplete until the origins are added by hand.
func TestImportDjangoEnvironmentOrigins(t *testing.T) {
	settings := writePolicy(t, t.TempDir(), "settings.py", `import os
CORS_ALLOWED_ORIGINS = [
    "https://app.example.com",
    "https://admin.example.com",
]
CORS_ALLOWED_ORIGINS += os.environ.get("EXTRA_ORIGINS", "").split(",")
CORS_ALLOW_CREDENTIALS = True
`)
	var stdout, stderr bytes.Buffer
	err := Run(t.Context(), []string{"import", "django", settings}, &stdout, &stderr)
	if exitCode(err) != 1 {
		t.Errorf("exit %d (%v), want 1\n%s", exitCode(err), err, stderr.String())
	}
	set, err := policyfile.Parse("imported.yaml", stdout.Bytes())
	if err != nil {
		t.Fatalf("the imported policy does not load: %v\n%s", err, stdout.String())
	}
	for _, o := range []string{"https://app.example.com", "https://admin.example.com"} {
		var d policy.Decision
		set.Decide(&policy.Request{Method: "GET", Origin: o, Path: "/"}, &d)
		if d.Outcome != policy.OutcomeAllowed {
			t.Errorf("%s: %v %v\n%s", o, d.Outcome, d.Reason, stdout.String())
		}
	}
	if !strings.Contains(stdout.String(), `# + what os.environ.get("EXTRA_ORIGINS") (line 6)`) {
		t.Errorf("the policy does not mark the environment's origins:\n%s", stdout.String())
	}
	want := settings + `:6: CORS_ALLOWED_ORIGINS: read in part: the policy keeps the origins the file lists ("https://app.example.com", "https://admin.example.com")`
	if !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), "the origins EXTRA_ORIGINS holds where Django runs") {
		t.Errorf("stderr lacks %q and what to add:\n%s", want, stderr.String())
	}
}

// TestImportDjangoDebugProfile checks import's --debug: each profile gives
// one policy named django with that profile's origins, and a value other
// than true or false is a usage error.
func TestImportDjangoDebugProfile(t *testing.T) {
	settings := writePolicy(t, t.TempDir(), "settings.py", `CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
if DEBUG:
    CORS_ALLOWED_ORIGINS += ["http://localhost:3000"]
`)
	for _, tt := range []struct {
		flag  string
		local bool // http://localhost:3000 allowed
	}{{"--debug=true", true}, {"--debug=false", false}} {
		var stdout, stderr bytes.Buffer
		if err := Run(t.Context(), []string{"import", "django", tt.flag, settings}, &stdout, &stderr); err != nil {
			t.Fatalf("%s: %v\n%s", tt.flag, err, stderr.String())
		}
		set, err := policyfile.Parse("imported.yaml", stdout.Bytes())
		if err != nil {
			t.Fatalf("%s: %v\n%s", tt.flag, err, stdout.String())
		}
		if names := set.Names(); len(names) != 1 || names[0] != "django" {
			t.Errorf("%s: policies %q, want [django]", tt.flag, names)
		}
		var d policy.Decision
		set.Decide(&policy.Request{Method: "GET", Origin: "http://localhost:3000", Path: "/"}, &d)
		if (d.Outcome == policy.OutcomeAllowed) != tt.local {
			t.Errorf("%s: http://localhost:3000 %v, want allowed %t\n%s", tt.flag, d.Outcome, tt.local, stdout.String())
		}
		if strings.Contains(stderr.String(), "DEBUG") {
			t.Errorf("%s: warns about the DEBUG split:\n%s", tt.flag, stderr.String())
		}
	}
	if err := Run(t.Context(), []string{"import", "django", "--debug=maybe", settings}, io.Discard, io.Discard); exitCode(err) != 2 {
		t.Errorf("--debug=maybe: exit %d (%v), want a usage error", exitCode(err), err)
	}
	// Other sources have no DEBUG profile: --debug is a mistake there,
	// not something to ignore.
	conf := writePolicy(t, t.TempDir(), "nginx.conf", "events {}\n")
	if err := Run(t.Context(), []string{"import", "nginx", "--debug=true", conf}, io.Discard, io.Discard); exitCode(err) != 2 || !strings.Contains(err.Error(), "--debug") {
		t.Errorf("import nginx --debug=true: exit %d (%v), want a usage error", exitCode(err), err)
	}
}
