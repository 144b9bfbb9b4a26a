// Package envoy holds corsproc's example Envoy bootstrap configurations
// (envoy.yaml, envoy-origin-only.yaml), which users copy, and the tests
// that check them against Envoy's API and against the wiring docs/envoy.md
// describes. Its subpackages: configcheck (strict validation of Envoy
// configurations), emulator (Envoy's ext_proc client, for tests and
// `corsproc dev`, with a profile per range of Envoy releases), e2e
// (end-to-end tests under every release profile) and browser (a real
// browser against the newest profile).
package envoy
