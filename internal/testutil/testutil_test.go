package testutil

import (
	"fmt"
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
