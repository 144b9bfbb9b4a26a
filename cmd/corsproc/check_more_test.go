package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corsproc/corsproc/policy/policyfile"
)

// checkOutput runs corsproc check args and returns its exit status and
// standard output.
func checkOutput(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout bytes.Buffer
	err := Run(t.Context(), append([]string{"check"}, args...), &stdout, io.Discard)
	return exitCode(err), stdout.String()
}

func wantCheckOutput(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func wantNoCheckOutput(t *testing.T, out string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(out, w) {
			t.Errorf("output has %q:\n%s", w, out)
		}
	}
}

// A decoding error (an unknown key) no longer hides the file's other
// problems: its warnings, and those of the set's other files, are reported
// in the same run. Only a warning the decoding error can have caused is
// left out (a policy "allows no origin" because its origins key is
// misspelt).
func TestCheckReportsEveryProblemOfAFile(t *testing.T) {
	dir := t.TempDir()
	path := writePolicy(t, dir, "a.yaml", `default_policy: web
policies:
  - name: web
    CORS_ALLOWED_ORIGINS: [https://app.example.com]
    preflight_max_age: 86400
  - name: api
    match: {hosts: [api.example.com]}
    allowed_origins: ["https://api.example.com", "https://api.example.com/"]
    allow_methods: [get]
`)
	writePolicy(t, dir, "b.yaml", "policies:\n  - name: other\n    match: {hosts: [other.example.com]}\n    allowed_origins: [https://other.example.com]\n    preflight_max_age: 9000\n")
	code, out := checkOutput(t, path)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	wantCheckOutput(t, out,
		path+`:4:5: error: policies[0].CORS_ALLOWED_ORIGINS: unknown key "CORS_ALLOWED_ORIGINS"; fix: did you mean "allowed_origins"?`,
		path+":5:24: warning: policies[0].preflight_max_age: Chromium caches preflights for at most 7200 seconds",
		path+`:8:50: error: policies[1].allowed_origins[1]: "https://api.example.com/" has a trailing slash`,
		path+`:9:21: warning: policies[1].allow_methods[0]: browsers send GET in upper case`,
		path+": invalid: 2 errors, 2 warnings")
	wantNoCheckOutput(t, out, "allows no origin")

	// In a directory, another file's warnings stay too.
	code, out = checkOutput(t, dir)
	if code != 1 {
		t.Errorf("directory: exit %d, want 1", code)
	}
	wantCheckOutput(t, out, "b.yaml:5:24: warning: policies[0].preflight_max_age", dir+": invalid: 2 errors, 3 warnings")

	// A value that failed to decode takes its default: no warning about
	// the default.
	bad := writePolicy(t, t.TempDir(), "bad.yaml", "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com]\n    preflight_max_age: 1h\n")
	_, out = checkOutput(t, bad)
	wantCheckOutput(t, out, bad+": invalid: 1 error, 0 warnings")
}

// The names of django-cors-headers' settings, new and old, with or without
// CORS_, get the key they became, or what to do when there is none.
func TestCheckSuggestsForDjangoNames(t *testing.T) {
	for _, c := range []struct{ key, fix string }{
		{"CORS_ORIGIN_WHITELIST", `did you mean "allowed_origins"?`},
		{"origin_whitelist", `did you mean "allowed_origins"?`},
		{"CORS_ALLOWED_ORIGINS", `did you mean "allowed_origins"?`},
		{"CORS_ORIGIN_REGEX_WHITELIST", `did you mean "allowed_origin_regexes"?`},
		{"CORS_ORIGIN_ALLOW_ALL", `did you mean "allow_all_origins"?`},
		{"cors_allow_credentials", `did you mean "allow_credentials"?`},
		{"CORS_URLS_REGEX", `did you mean "urls_regex" under match? write match: {urls_regex: ...}`},
		{"CORS_MODEL", "CORS_MODEL is no longer a django-cors-headers setting and corsproc has no equivalent"},
		{"CORS_REPLACE_HTTPS_REFERER", "CORS_REPLACE_HTTPS_REFERER is no longer a django-cors-headers setting and corsproc never rewrites Referer"},
	} {
		t.Run(c.key, func(t *testing.T) {
			path := writePolicy(t, t.TempDir(), "p.yaml", "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com]\n    "+c.key+": x\n")
			_, out := checkOutput(t, path)
			wantCheckOutput(t, out, `unknown key "`+c.key+`"; fix: `+c.fix)
			wantNoCheckOutput(t, out, `did you mean "mode"`)
		})
	}
	// A policy's key at the top of the file.
	path := writePolicy(t, t.TempDir(), "p.yaml", "CORS_ALLOWED_ORIGINS: [https://app.example.com]\npolicies: []\n")
	_, out := checkOutput(t, path)
	wantCheckOutput(t, out, `CORS_ALLOWED_ORIGINS: unknown key "CORS_ALLOWED_ORIGINS"; fix: did you mean "allowed_origins"? it is a key of each policy`)
}

// A policy nothing but x-corsproc-policy can select is warned about, with
// how it can still be selected and how to make it reachable.
func TestCheckUnreachablePolicies(t *testing.T) {
	path := writePolicy(t, t.TempDir(), "p.yaml", `default_policy: web
policies:
  - name: web
    allowed_origins: [https://app.example.com]
  - name: orphan
    allowed_origins: [https://app.example.com]
  - name: routed
    match: {routes: [api]}
    allowed_origins: [https://app.example.com]
  - name: example
    match: {hosts: ["*.example.com"]}
    allowed_origins: [https://app.example.com]
  - name: shadowed
    match: {hosts: [api.example.com], path_prefixes: [/v1/]}
    allowed_origins: [https://app.example.com]
  - name: other-host
    match: {hosts: [example.com]}
    allowed_origins: [https://app.example.com]
`)
	code, out := checkOutput(t, path)
	if code != 0 {
		t.Errorf("exit %d, want 0 (warnings only)", code)
	}
	wantCheckOutput(t, out,
		path+`:5:5: warning: policies[1]: policy "orphan" has no match and is not the default_policy: no route, host or path selects it; only a stream whose metadata x-corsproc-policy is "orphan" does; fix: add a match (routes, hosts, path_prefixes or urls_regex), or name it in default_policy; if Envoy routes send x-corsproc-policy: orphan, say so with --metadata-policy orphan`,
		path+`:14:12: warning: policies[4].match: policy "shadowed" is never selected by its match: policy "example" (policies[3])`,
		path+": valid: 6 policies, 2 warnings")
	wantNoCheckOutput(t, out, `"web" has no match`, `policy "routed"`, `policy "other-host"`)
	if code, _ := checkOutput(t, "--strict", path); code != 1 {
		t.Errorf("--strict: exit %d, want 1", code)
	}
	// Routes that send the name make it reachable.
	_, out = checkOutput(t, "--metadata-policy", "orphan", "--metadata-policy", "shadowed", path)
	wantCheckOutput(t, out, path+": valid: 6 policies, 0 warnings")

	// In a file with errors too, in the same run; but not for a policy
	// whose own error may be what hides its match (a misspelt match).
	invalid := writePolicy(t, t.TempDir(), "p.yaml", `default_policy: web
policies:
  - name: web
    allowed_origins: [https://app.example.com/]
  - name: orphan
    allowed_origins: [https://app.example.com]
  - name: misspelt
    mach: {hosts: [api.example.com]}
    allowed_origins: [https://app.example.com]
`)
	code, out = checkOutput(t, invalid)
	if code != 1 {
		t.Errorf("invalid: exit %d, want 1", code)
	}
	wantCheckOutput(t, out, invalid+`:5:5: warning: policies[1]: policy "orphan" has no match`, invalid+": invalid: 2 errors, 1 warning")
	wantNoCheckOutput(t, out, `policy "misspelt" has no match`)
}

const manifest = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: corsproc
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: envoy
data:
  envoy.yaml: |
    static_resources: {}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: corsproc-policy
  namespace: corsproc
data:
  policy.yaml: |
    default_policy: web
    policies:
      - name: web
        allowed_origins: [https://app.example.com]
        preflight_max_age: 86400
      - name: admin
        match: {hosts: [admin.example.com]}
        alow_headers: [x-token]
        allowed_origins: [https://admin.example.com]
`

// A rendered manifest: the ConfigMap of policy files is checked as the set
// its mount gives, with the manifest's lines; other objects and the Envoy
// configuration's ConfigMap are not policy files.
func TestCheckKubernetesManifest(t *testing.T) {
	path := writePolicy(t, t.TempDir(), "rendered.yaml", manifest)
	code, out := checkOutput(t, path)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	wantCheckOutput(t, out,
		path+":25:28: warning: policies[0].preflight_max_age: Chromium caches preflights",
		path+`:28:9: error: policies[1].alow_headers: unknown key "alow_headers"; fix: did you mean "allow_headers"?`,
		path+": ConfigMap corsproc/corsproc-policy: invalid: 1 error, 1 warning",
		path+": not checked: "+path+": ConfigMap envoy (no key holds a policy file)")
	wantNoCheckOutput(t, out, "apiVersion", "static_resources")

	fixed := writePolicy(t, t.TempDir(), "rendered.yaml", strings.Replace(manifest, "alow_headers", "allow_headers", 1))
	code, out = checkOutput(t, "--format", "json", fixed)
	if code != 0 {
		t.Errorf("fixed: exit %d, want 0:\n%s", code, out)
	}
	var js struct {
		Valid bool
		Sets  []struct {
			Source   string
			Valid    bool
			Policies []string
			Digest   string
		}
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatal(err)
	}
	if !js.Valid || len(js.Sets) != 1 || js.Sets[0].Source != fixed+": ConfigMap corsproc/corsproc-policy" || len(js.Sets[0].Policies) != 2 || js.Sets[0].Digest == "" {
		t.Errorf("json: %s", out)
	}

	// The digest is the one serve reports for the ConfigMap's mount.
	mount := t.TempDir()
	text := manifest[strings.Index(manifest, "    default_policy"):]
	text = strings.ReplaceAll(strings.Replace(text, "alow_headers", "allow_headers", 1), "\n    ", "\n")
	writePolicy(t, mount, "policy.yaml", strings.TrimPrefix(text, "    "))
	_, out = checkOutput(t, "--format", "json", mount)
	var direct struct{ Digest string }
	if err := json.Unmarshal([]byte(out), &direct); err != nil {
		t.Fatal(err)
	}
	if direct.Digest != js.Sets[0].Digest {
		t.Errorf("digest of the mount %q, of the ConfigMap %q", direct.Digest, js.Sets[0].Digest)
	}
}

// A kustomize directory: the files of its configMapGenerator are the
// policy set; the Deployment and the patches are not policy files.
func TestCheckKustomizeDirectory(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "kustomization.yaml", `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [deployment.yaml]
patches:
  - path: patch.yaml
configMapGenerator:
  - name: corsproc-policy
    files: [policy.yaml]
  - name: envoy
    files: [envoy.yaml]
`)
	writePolicy(t, dir, "deployment.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: corsproc\n")
	writePolicy(t, dir, "patch.yaml", "- op: add\n  path: /spec/replicas\n  value: 2\n")
	writePolicy(t, dir, "envoy.yaml", "static_resources: {}\n")
	policy := writePolicy(t, dir, "policy.yaml", "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com/]\n")
	code, out := checkOutput(t, dir)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	wantCheckOutput(t, out,
		policy+`:4:23: error: policies[0].allowed_origins[0]: "https://app.example.com/" has a trailing slash`,
		filepath.Join(dir, "kustomization.yaml")+": configMapGenerator corsproc-policy: invalid: 1 error, 0 warnings",
		"configMapGenerator envoy (no file holds a policy file)")
	wantNoCheckOutput(t, out, "apiVersion", "patch.yaml")

	if err := os.WriteFile(policy, []byte("default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := checkOutput(t, dir); code != 0 {
		t.Errorf("fixed: exit %d:\n%s", code, out)
	}

	// Objects without any policy ConfigMap: an error that says so.
	none := t.TempDir()
	writePolicy(t, none, "deployment.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: corsproc\n")
	var stdout bytes.Buffer
	err := Run(t.Context(), []string{"check", none}, &stdout, io.Discard)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "holds Kubernetes objects but no ConfigMap") {
		t.Errorf("no policy ConfigMap: %v", err)
	}
}

// A configMapGenerator's policy file above policyfile.MaxFileSize is
// refused with that bound, not the bound of the manifests.
func TestCheckKustomizeFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nconfigMapGenerator:\n  - name: corsproc-policy\n    files: [policy.yaml]\n")
	writePolicy(t, dir, "policy.yaml", validPolicy+"#"+strings.Repeat("x", policyfile.MaxFileSize)+"\n")
	var stdout bytes.Buffer
	err := Run(t.Context(), []string{"check", dir}, &stdout, io.Discard)
	if exitCode(err) != 1 || err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than the %d bytes corsproc reads of a policy file", policyfile.MaxFileSize)) {
		t.Errorf("check of a kustomize directory with a %d-byte policy file: %v", policyfile.MaxFileSize+len(validPolicy)+2, err)
	}
}

// A named pipe among the files check reads is refused, not waited on, as a
// policy load refuses it (docs/operations.md, "Policy sources and reload").
func TestCheckRefusesANamedPipe(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "a.yaml", validPolicy)
	fifo := filepath.Join(dir, "b.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), []string{"check", dir}, io.Discard, io.Discard) }()
	select {
	case err := <-done:
		if exitCode(err) != 1 || !strings.Contains(err.Error(), fifo) {
			t.Errorf("check of a directory with a named pipe: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("check blocked on the named pipe %s", fifo)
	}
}

// kubectl get configmap -o yaml gives a List: its ConfigMaps are checked.
func TestCheckKubernetesList(t *testing.T) {
	path := writePolicy(t, t.TempDir(), "list.yaml", `apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: corsproc-policy, namespace: corsproc}
    data:
      policy.yaml: |
        policies:
          - name: web
            allowed_origins: [https://app.example.com]
`)
	code, out := checkOutput(t, path)
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	wantCheckOutput(t, out,
		path+`:10:13: warning: policies[0]: policy "web" has no match and is not the default_policy`,
		path+": ConfigMap corsproc/corsproc-policy: valid: 1 policy, 1 warning")
}
