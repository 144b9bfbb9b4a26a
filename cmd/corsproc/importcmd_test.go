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
	if err := Run(t.Context(), []string{"import", "django", settings}, &stdout, &stderr); err != nil {
		t.Fatalf("import: %v\n%s", err, stderr.String())
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
		settings + `:5: CORS_ALLOWED_ORIGINS: "https://admin.example.com/" is written as "https://admin.example.com"`,
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
