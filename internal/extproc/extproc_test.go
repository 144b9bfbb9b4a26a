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

// The protocol's names are spelled in one place: every other package
// (processor, envoy/emulator, envoy/configcheck) uses AttributeRoute and
// MetadataPolicy, so that the names corsproc reads and the names the
// emulator sends and the config checks require cannot drift apart.
func TestNamesDefinedOnce(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..") // the main module
	found := map[string][]string{}
	testutil.WalkGoFiles(t, root, false, func(path string, f *ast.File) {
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil && (v == AttributeRoute || v == MetadataPolicy) {
					found[v] = append(found[v], filepath.ToSlash(path))
				}
			}
			return true
		})
	})
	for _, name := range []string{AttributeRoute, MetadataPolicy} {
		if got := found[name]; len(got) != 1 || !strings.HasSuffix(got[0], "internal/extproc/extproc.go") {
			t.Errorf("%q is spelled out in %q; want it in internal/extproc/extproc.go only", name, got)
		}
	}
}
