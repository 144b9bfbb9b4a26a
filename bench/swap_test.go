package bench

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/corsproc/corsproc/bench/loadgen"
	"github.com/corsproc/corsproc/policy"
)

// TestSwapUnderLoad reloads a set of 10,000 route-bound policies (Load from
// disk, then Swap) again and again while Envoy-shaped requests flow, and
// checks that no request fails and every one gets the answer both sets
// give: allowed actual requests and preflights get their
// Access-Control-Allow-Origin, refused ones none. It asserts no timing:
// BenchmarkScaleReload measures how long a reload takes.
func TestSwapUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 10,000-policy sets repeatedly")
	}
	const n = 10000
	dir := t.TempDir()
	paths := [2]string{filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")}
	for gen, p := range paths {
		if err := os.WriteFile(p, []byte(loadgen.LargePolicyYAML(n, gen)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := newCorsproc(t, loadgen.LargePolicyYAML(n, 0))
	client := extprocv3.NewExternalProcessorClient(serveInMemory(t, srv))

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	var (
		wg              sync.WaitGroup
		requests, swaps atomic.Int64
		mu              sync.Mutex
		failures        []string
	)
	fail := func(format string) {
		mu.Lock()
		if len(failures) < 10 {
			failures = append(failures, format)
		}
		mu.Unlock()
	}
	for _, name := range []string{"cors_allowed", "cors_refused", "preflight", "non_cors", "ungoverned"} {
		sc, _ := loadgen.ScenarioByName(name)
		want := ""
		if name == "cors_allowed" || name == "preflight" {
			want = sc.Origin
		}
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := loadgen.Prepare(sc, loadgen.DefaultEnvoy)
				for ctx.Err() == nil {
					o, err := loadgen.Do(context.Background(), client, r)
					requests.Add(1)
					switch {
					case err != nil:
						fail(name + ": " + err.Error())
					case o.ACAO != want:
						fail(name + ": Access-Control-Allow-Origin " + o.ACAO + ", want " + want)
					}
				}
			}()
		}
	}
	for i := 0; ctx.Err() == nil; i++ {
		set, err := policy.Load(paths[i%2])
		if err != nil {
			t.Fatal(err)
		}
		srv.Swap(set)
		swaps.Add(1)
	}
	wg.Wait()
	t.Logf("%d requests during %d swaps of %d-policy sets", requests.Load(), swaps.Load(), n)
	if len(failures) > 0 {
		t.Errorf("requests failed during swaps:\n%v", failures)
	}
	if swaps.Load() < 2 || requests.Load() == 0 {
		t.Errorf("%d swaps, %d requests: the test exercised nothing", swaps.Load(), requests.Load())
	}
}
