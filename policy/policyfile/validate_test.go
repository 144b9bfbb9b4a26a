package policyfile_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/testutil"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// wantRE reads a fixture's expectations, one per line:
//
//	# want: error policies[0].allowed_origins[0] "has a trailing slash"
var wantRE = regexp.MustCompile(`^# want: (error|warning) (\S*) (".*")$`)

type want struct {
	severity, path, text string
}

func readWants(t *testing.T, data []byte) []want {
	t.Helper()
	var out []want
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "# want:") {
			continue
		}
		m := wantRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("malformed want line %q", line)
		}
		text, err := strconv.Unquote(m[3])
		if err != nil {
			t.Fatalf("want line %q: %v", line, err)
		}
		out = append(out, want{m[1], m[2], text})
	}
	if len(out) == 0 {
		t.Fatal("fixture has no '# want:' line: every fixture states what it tests")
	}
	return out
}

// TestFixtures checks every config error and warning of docs/semantics.md,
// §3 and §9 (listed in docs/policy.md), one fixture per failure named after it: the file yields
// exactly the diagnostics its "# want:" lines list, each with its field path,
// a position in the file and a fix.
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			wants := readWants(t, data)
			set, err := policyfile.Load(file)
			var got []policy.Diagnostic
			var verr *policy.ValidationError
			switch {
			case errors.As(err, &verr):
				got = verr.Diagnostics
				if set != nil {
					t.Error("Load returned a set together with an error")
				}
			case err != nil:
				t.Fatalf("Load: unexpected error type %T: %v", err, err)
			default:
				got = set.Warnings()
			}
			wantErrors := 0
			for _, w := range wants {
				if w.severity == "error" {
					wantErrors++
				}
			}
			if wantErrors > 0 && err == nil {
				t.Fatalf("Load succeeded; want %d errors", wantErrors)
			}
			if wantErrors == 0 && err != nil {
				t.Fatalf("Load failed; want only warnings:\n%v", err)
			}
			if len(got) != len(wants) {
				t.Errorf("got %d diagnostics, want %d:\n%s", len(got), len(wants), testutil.Diagnostics(got))
			}
			for _, w := range wants {
				if !hasDiagnostic(got, w) {
					t.Errorf("missing %s at %q containing %q; got:\n%s", w.severity, w.path, w.text, testutil.Diagnostics(got))
				}
			}
			for _, d := range got {
				if d.File != file {
					t.Errorf("diagnostic names file %q, want %q", d.File, file)
				}
				if d.Line == 0 {
					t.Errorf("diagnostic has no line: %s", d)
				}
				if d.Fix == "" {
					t.Errorf("diagnostic has no fix: %s", d)
				}
				if s := d.String(); !strings.HasPrefix(s, fmt.Sprintf("%s:%d:%d: %s: ", file, d.Line, d.Column, d.Severity)) {
					t.Errorf("rendering %q does not start with file:line:col: severity", s)
				}
			}
			if err != nil && !strings.Contains(err.Error(), got[0].String()) {
				t.Errorf("error text does not carry the diagnostics:\n%v", err)
			}
		})
	}
}

func hasDiagnostic(got []policy.Diagnostic, w want) bool {
	for _, d := range got {
		if d.Severity.String() == w.severity && d.Path == w.path && strings.Contains(d.Message, w.text) {
			return true
		}
	}
	return false
}

// TestAllErrorsAtOnce checks that one file with many problems reports them
// all, decoding and validation alike, in file order.
func TestAllErrorsAtOnce(t *testing.T) {
	_, err := policyfile.Parse("many.yaml", []byte(`
default_policy: missing
policies:
  - name: web
    alowed_origins: [https://app.example.com]
    allowed_origins: [https://app.example.com/]
    preflight_status: 201
  - name: web
    allow_credentials: maybe
    allowed_origins: [http://app.example.com]
`))
	var verr *policy.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("got %v, want a ValidationError", err)
	}
	var paths []string
	for _, d := range verr.Errors() {
		paths = append(paths, d.Path)
	}
	want := []string{
		"default_policy",
		"policies[0].alowed_origins",
		"policies[0].allowed_origins[0]",
		"policies[0].preflight_status",
		"policies[1].name",
		"policies[1].allow_credentials",
	}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("error paths:\n got %v\nwant %v\n%v", paths, want, err)
	}
	if !strings.Contains(err.Error(), "did you mean \"allowed_origins\"?") {
		t.Errorf("misspelled key has no suggestion:\n%v", err)
	}
}

func TestDefaults(t *testing.T) {
	pf, err := policyfile.Decode("d.yaml", []byte("policies:\n  - name: web\n  - name: api\n    allow_headers: []\n    allow_methods: [GET]\n    preflight_max_age: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	web, api := pf.Policies[0], pf.Policies[1]
	if got := strings.Join(web.AllowMethods, ","); got != "DELETE,GET,OPTIONS,PATCH,POST,PUT" {
		t.Errorf("default allow_methods = %s", got)
	}
	if got := strings.Join(web.AllowHeaders, ","); got != "accept,authorization,content-type,user-agent,x-csrftoken,x-requested-with" {
		t.Errorf("default allow_headers = %s", got)
	}
	if web.PreflightMaxAge != 86400 || web.PreflightStatus != 204 || policyfile.EnumName(web.Mode) != "enforce" || policyfile.EnumName(web.UnmatchedPreflight) != "reject" {
		t.Errorf("scalar defaults wrong: %v", web)
	}
	if len(api.AllowHeaders) != 0 || len(api.AllowMethods) != 1 || api.PreflightMaxAge != 0 {
		t.Errorf("explicit values replaced by defaults: %v", api)
	}
}

func TestMergeKeys(t *testing.T) {
	set, err := policyfile.Parse("merge.yaml", []byte(`
default_policy: api
policies:
  - &base
    name: web
    allowed_origins: [https://app.example.com]
    allow_credentials: true
  - <<: *base
    name: api
`))
	if err != nil {
		t.Fatal(err)
	}
	var d policy.Decision
	set.Decide(&policy.Request{Method: "GET", Origin: "https://app.example.com"}, &d)
	if d.Policy != "api" || d.Outcome != policy.OutcomeAllowed {
		t.Fatalf("merged policy: %+v", d)
	}
	if v, _ := d.Header(policy.HeaderACAC); v != "true" {
		t.Errorf("merged allow_credentials lost: %v", d.Headers())
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := policyfile.Load(filepath.Join(t.TempDir(), "absent.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
	if _, err := policyfile.Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no policy files") {
		t.Errorf("empty directory: %v", err)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoadDirectory checks a directory as one policy set: every *.yaml and
// *.yml file in name order, hidden files skipped.
func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"10-web.yaml":  "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com]\n",
		"20-api.yml":   "policies:\n  - name: api\n    match: {routes: [api]}\n    allowed_origins: [https://api.example.com]\n",
		".swap.yaml":   "not: [valid",
		"README.txt":   "ignored",
		"30-open.yaml": "policies:\n  - name: open\n    match: {path_prefixes: [/public/]}\n    allow_all_origins: true\n",
	})
	set, err := policyfile.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.Names(), ","); got != "web,api,open" {
		t.Errorf("policies %s, want web,api,open (name order)", got)
	}
	if set.Source() != dir {
		t.Errorf("source %q", set.Source())
	}
	var d policy.Decision
	set.Decide(&policy.Request{Method: "GET", Origin: "https://api.example.com", Route: "api"}, &d)
	if d.Policy != "api" || d.Outcome != policy.OutcomeAllowed {
		t.Errorf("route from the second file: %+v", d)
	}
}

func TestLoadDirectoryErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.yaml": "default_policy: web\npolicies:\n  - name: web\n    match: {routes: [shop]}\n    allowed_origins: [https://app.example.com]\n",
		"b.yaml": "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com]\n  - name: shop\n    match: {routes: [shop]}\n    allowed_origins: [https://app.example.com/]\n",
	})
	_, err := policyfile.Load(dir)
	var verr *policy.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("got %v, want a ValidationError", err)
	}
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	for _, want := range []string{
		b + ":1:17: error: default_policy: default_policy is also set in " + a,
		b + ":3:11: error: policies[0].name: policy name \"web\" is also defined in " + a,
		b + ":6:22: error: policies[1].match.routes[0]: route \"shop\" is already bound to policy \"web\" in " + a,
		b + ":7:23: error: policies[1].allowed_origins[0]: \"https://app.example.com/\" has a trailing slash",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if !strings.HasPrefix(err.Error(), "invalid policy set: 4 errors") {
		t.Errorf("header: %v", err)
	}
}

// TestLoadConfigMapLayout checks the layout a Kubernetes ConfigMap volume
// has: the files are symlinks into ..data, itself a symlink to a
// timestamped directory.
func TestLoadConfigMapLayout(t *testing.T) {
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_11_21_20_00_00.000000001")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, ts, map[string]string{"policy.yaml": "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com]\n"})
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "policy.yaml"), filepath.Join(dir, "policy.yaml")); err != nil {
		t.Fatal(err)
	}
	set, err := policyfile.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.Names(), ","); got != "web" {
		t.Errorf("policies %q, want web only (..data and the timestamped directory skipped)", got)
	}
}

func TestDevelopmentPolicy(t *testing.T) {
	set := policyfile.Development()
	if set.Source() != policyfile.DevelopmentSource || len(set.Warnings()) != 0 {
		t.Fatalf("development set: %q %v", set.Source(), set.Warnings())
	}
	for origin, allowed := range map[string]bool{
		"http://localhost:3000":    true,
		"http://localhost":         true,
		"http://127.0.0.1:5173":    true,
		"http://[::1]:8080":        true,
		"https://localhost:3000":   false,
		"http://localhost.evil.io": false,
		"https://example.com":      false,
	} {
		var d policy.Decision
		set.Decide(&policy.Request{Method: "GET", Origin: origin}, &d)
		if got := d.Outcome == policy.OutcomeAllowed; got != allowed {
			t.Errorf("development policy, origin %s: outcome %v", origin, d.Outcome)
		}
	}
}

// TestLoadBadPaths checks the paths that are not policy files: each gets a
// clear error naming it.
func TestLoadBadPaths(t *testing.T) {
	dir := t.TempDir()
	loop := filepath.Join(dir, "loop.yaml")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	if _, err := policyfile.Load(loop); err == nil || !strings.Contains(err.Error(), "loop.yaml") {
		t.Errorf("symlink loop: %v", err)
	}
	if _, err := policyfile.Load(dir); err == nil || !strings.Contains(err.Error(), "loop.yaml") {
		t.Errorf("directory with a symlink loop: %v", err)
	}
	dangling := t.TempDir()
	if err := os.Symlink(filepath.Join(dangling, "gone"), filepath.Join(dangling, "policy.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := policyfile.Load(dangling); err == nil || !strings.Contains(err.Error(), "policy.yaml") {
		t.Errorf("dangling link: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := policyfile.Load(empty); err == nil || !strings.Contains(err.Error(), "file is empty") {
		t.Errorf("empty file: %v", err)
	}
	if os.Geteuid() != 0 { // root reads every file
		unreadable := filepath.Join(t.TempDir(), "secret.yaml")
		if err := os.WriteFile(unreadable, []byte("policies: []\n"), 0o000); err != nil {
			t.Fatal(err)
		}
		if _, err := policyfile.Load(unreadable); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("unreadable file: %v", err)
		}
	}
}

// TestSharedListsKeepValidation: a list that is compiled once and shared
// between policies is shared only with equal lists, never with another list
// that joins to the same text, which must still be validated.
func TestSharedListsKeepValidation(t *testing.T) {
	for name, c := range map[string]struct{ first, second, want string }{
		"empty and one empty name": {"allow_methods: []", `allow_methods: [""]`, "is not a valid method name"},
		"two names and one joined": {"allow_headers: [x-a, x-b]", `allow_headers: ["x-a\0x-b"]`, "is not a valid header name"},
	} {
		t.Run(name, func(t *testing.T) {
			data := "policies:\n" +
				"  - {name: a, allowed_origins: [https://a.example], " + c.first + "}\n" +
				"  - {name: b, allowed_origins: [https://a.example], " + c.second + "}\n"
			_, err := policyfile.Parse("p.yaml", []byte(data))
			if err == nil || !strings.Contains(err.Error(), "policies[1]") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse = %v, want an error in policies[1]: %s", err, c.want)
			}
		})
	}
}

// TestMergedKeyDiagnostics: a key a merge key (<<) brings into a policy is
// checked and placed like a key written there: the warning that depends on
// the key being written is given, at the merged value's position.
func TestMergedKeyDiagnostics(t *testing.T) {
	src := `policies:
  - &p
    name: a
    allowed_origins: [https://a.example]
    preflight_max_age: 86400
    preflight_status: 201
  - <<: *p
    name: b
`
	_, err := policyfile.Parse("p.yaml", []byte(src))
	var verr *policy.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Parse: %v, want a *ValidationError", err)
	}
	for _, w := range []struct {
		path         string
		line, column int
	}{
		{"policies[0].preflight_max_age", 5, 24},
		{"policies[1].preflight_max_age", 5, 24},
		{"policies[0].preflight_status", 6, 23},
		{"policies[1].preflight_status", 6, 23},
	} {
		found := false
		for _, d := range verr.Diagnostics {
			if d.Path == w.path {
				found = true
				if d.Line != w.line || d.Column != w.column {
					t.Errorf("%s at %d:%d, want %d:%d", w.path, d.Line, d.Column, w.line, w.column)
				}
			}
		}
		if !found {
			t.Errorf("no diagnostic at %s; got:\n%s", w.path, testutil.Diagnostics(verr.Diagnostics))
		}
	}
}
