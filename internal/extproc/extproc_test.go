package extproc

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The route attribute's name is spelled in one place: every other package
// (processor, envoy/emulator, envoy/configcheck) uses AttributeRoute, so
// that the name corsproc reads and the name the emulator sends and the
// config checks require cannot drift apart.
func TestAttributeRouteDefinedOnce(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..") // the main module
	var found []string
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
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil && v == AttributeRoute {
					found = append(found, filepath.ToSlash(path))
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || !strings.HasSuffix(found[0], "internal/extproc/extproc.go") {
		t.Errorf("%q is spelled out in %q; want it in internal/extproc/extproc.go only, used through extproc.AttributeRoute", AttributeRoute, found)
	}
}
