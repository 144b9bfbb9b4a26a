package testutil

import (
	"fmt"
	"go/ast"
	"path/filepath"
	"sync"
	"testing"
)

// Concurrent writers and readers: under -race, a data race fails the test.
func TestSyncBufferConcurrent(t *testing.T) {
	t.Parallel()
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				fmt.Fprintf(&b, "%d.%d\n", i, j)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n < 8*100*4 {
		t.Errorf("%d bytes written, want at least %d", n, 8*100*4)
	}
}

func TestMustParse(t *testing.T) {
	t.Parallel()
	set := MustParse(t, "policies:\n  - name: web\n    allowed_origins: [https://app.example]\n")
	if got := set.Names(); len(got) != 1 || got[0] != "web" {
		t.Errorf("names %q, want [web]", got)
	}
}

// The tests use these helpers rather than copies of their own: no test
// file of the main module defines a function mustParse or a type
// syncBuffer with a mutex of its own.
func TestNoCopiesOfTheHelpers(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	WalkGoFiles(t, root, true, func(path string, f *ast.File) {
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				if decl.Recv == nil && decl.Name.Name == "mustParse" {
					t.Errorf("%s defines mustParse: use testutil.MustParse", path)
				}
			case *ast.GenDecl:
				for _, spec := range decl.Specs {
					ts, ok := spec.(*ast.TypeSpec)
					if !ok || ts.Name.Name != "syncBuffer" {
						continue
					}
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						continue
					}
					for _, f := range st.Fields.List {
						if sel, ok := f.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Mutex" {
							t.Errorf("%s defines its own syncBuffer: use testutil.SyncBuffer", path)
						}
					}
				}
			}
		}
	})
}
