package extproc

import (
	"go/ast"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/testutil"
)

// The route attribute's name is spelled in one place: every other package
// (processor, envoy/emulator, envoy/configcheck) uses AttributeRoute, so
// that the name corsproc reads and the name the emulator sends and the
// config checks require cannot drift apart.
func TestAttributeRouteDefinedOnce(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..") // the main module
	var found []string
	testutil.WalkGoFiles(t, root, false, func(path string, f *ast.File) {
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil && v == AttributeRoute {
					found = append(found, filepath.ToSlash(path))
				}
			}
			return true
		})
	})
	if len(found) != 1 || !strings.HasSuffix(found[0], "internal/extproc/extproc.go") {
		t.Errorf("%q is spelled out in %q; want it in internal/extproc/extproc.go only, used through extproc.AttributeRoute", AttributeRoute, found)
	}
}
