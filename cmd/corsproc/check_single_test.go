package main

import "testing"

// check --single-message refuses a policy set that envoy-single-message.yaml
// would get wrong: its header_mutation filter removes the upstream's CORS
// headers from every response, so every request must be governed by an
// enforce-mode policy (docs/envoy.md, "Single-message mode").
func TestCheckSingleMessage(t *testing.T) {
	dir := t.TempDir()
	valid := writePolicy(t, dir, "valid.yaml", validPolicy)
	noDefault := writePolicy(t, dir, "nodefault.yaml", "policies:\n  - name: web\n    match: {hosts: [app.example.com]}\n    allowed_origins: [https://app.example.com]\n")
	shadow := writePolicy(t, dir, "shadow.yaml", "default_policy: web\npolicies:\n  - name: web\n    allowed_origins: [https://app.example.com]\n  - name: trial\n    match: {hosts: [new.example.com]}\n    allowed_origins: [https://app.example.com]\n    mode: shadow\n")
	runCheckCases(t, []checkCase{
		{"fits", []string{"check", "--single-message", valid}, 0, []string{valid + ": valid: 1 policy, 0 warnings"}},
		{"no default policy", []string{"check", "--single-message", noDefault}, 1, []string{
			noDefault + ": error: default_policy: no default_policy: requests no policy selects are ungoverned",
			noDefault + ": invalid: 1 error"}},
		{"no default policy, response phase", []string{"check", noDefault}, 0, []string{noDefault + ": valid"}},
		{"shadow policy", []string{"check", "--single-message", shadow}, 1, []string{
			`error: policies[1].mode: policy "trial" is in shadow mode`,
			shadow + ": invalid: 1 error"}},
		{"shadow policy, response phase", []string{"check", shadow}, 0, []string{shadow + ": valid"}},
	})
}
