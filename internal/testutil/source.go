package testutil

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// WalkGoFiles parses each Go file of the main module under root (hidden
// directories, testdata, and the bench and k8s modules left out) and calls
// fn with it: only the _test.go files if tests is true, only the others if
// it is false. A file that does not parse fails the test.
func WalkGoFiles(tb testing.TB, root string, tests bool, fn func(path string, f *ast.File)) {
	tb.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bench" || name == "k8s") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") != tests {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		fn(path, f)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}
