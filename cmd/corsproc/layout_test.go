package main

import (
	"go/build"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/corsproc/corsproc/"

// imports returns the imports of the non-test Go files of the package in
// dir, relative to the repository root.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	p, err := build.ImportDir(filepath.Join("..", "..", dir), 0)
	if err != nil {
		t.Fatal(err)
	}
	return p.Imports
}

// Package main holds the command table, the flags and their wiring: the
// lifecycle, the listeners, certificate reloading and the admin server are
// in internal/app, internal/listen, internal/tlsreload and internal/admin
// (docs/architecture.md), so main imports none of what they are built on.
func TestMainIsThin(t *testing.T) {
	t.Parallel()
	for _, imp := range imports(t, "cmd/corsproc") {
		for _, belongs := range []struct{ prefix, pkg string }{
			{"crypto/", "internal/tlsreload"},
			{"google.golang.org/grpc/health", "internal/app or internal/admin"},
			{"github.com/prometheus/client_golang/prometheus/", "internal/admin"},
			{"github.com/envoyproxy/go-control-plane/envoy/service/", "internal/app"},
		} {
			if strings.HasPrefix(imp, belongs.prefix) {
				t.Errorf("package main imports %s: that code belongs in %s", imp, belongs.pkg)
			}
		}
	}
}

// The packages main is built from import each other one way only: each may
// use the corsproc packages listed for it and no other, so none reaches
// back up.
func TestInternalImportDirection(t *testing.T) {
	t.Parallel()
	allowed := map[string][]string{
		"internal/listen":    nil,
		"internal/tlsreload": nil,
		"internal/origins":   nil,
		"internal/active":    {"policy", "processor"},
		"internal/app":       {"processor"},
		"internal/admin":     {"internal/active", "internal/app", "internal/listen"},
		"policy":             {"internal/origins", "proto/corsproc/v1"},
		"policy/policyfile":  {"policy", "proto/corsproc/v1"},
		"processor":          {"internal/extproc", "policy"},
	}
	for dir, ok := range allowed {
		for _, imp := range imports(t, dir) {
			rel, ours := strings.CutPrefix(imp, module)
			if ours && !slices.Contains(ok, rel) {
				t.Errorf("%s imports %s; it may use only %q", dir, rel, ok)
			}
		}
	}
}

// The CORS engine (package policy) does no I/O and knows nothing of the
// policy file's YAML, gRPC or Envoy: policy/policyfile reads and decodes
// the files, the processor speaks ext_proc (docs/architecture.md).
func TestEngineDoesNoIO(t *testing.T) {
	t.Parallel()
	for _, imp := range imports(t, "policy") {
		for _, banned := range []string{"os", "io", "io/fs", "net", "go.yaml.in/", "google.golang.org/grpc", "github.com/envoyproxy/"} {
			if imp == banned || strings.HasSuffix(banned, "/") && strings.HasPrefix(imp, banned) || imp != banned && strings.HasPrefix(imp, banned+"/") {
				t.Errorf("package policy imports %s", imp)
			}
		}
	}
}
