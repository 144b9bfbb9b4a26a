package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsproc/corsproc/bench/loadgen"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/policy/reload"
	"github.com/corsproc/corsproc/processor"
)

// TestSwapUnderLoad reloads a set of 10,000 route-bound policies again and
// again, through policy/reload's Reloader as corsproc serve does, while
// Envoy-shaped requests flow, and checks that no request fails and every one
// gets the answer the sets give: allowed actual requests and preflights get
// their Access-Control-Allow-Origin, refused ones none. The two generations
// answer differently for the last generated policy, and both answers must
// be seen, so a swap that changed nothing, or a set that lost its last
// policies, fails the test. It asserts no timing: BenchmarkScaleReload
// measures how long a reload takes.
func TestSwapUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 10,000-policy sets repeatedly")
	}
	const n = 10000
	path := filepath.Join(t.TempDir(), "policy.yaml")
	write := func(gen int) {
		if err := os.WriteFile(path, []byte(loadgen.LargePolicyYAML(n, gen)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	set, err := policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := processor.New(set, processor.Options{Registerer: prometheus.NewRegistry()})
	r := reload.New(path, set, srv.Swap, reload.Options{Registerer: prometheus.NewRegistry()})
	client := extprocv3.NewExternalProcessorClient(serveInMemory(t, srv))

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	var (
		wg              sync.WaitGroup
		requests, swaps atomic.Int64
		mu              sync.Mutex
		failures        []string
		lastGen         [2]atomic.Int64 // answers of generation 0 and 1 for the last policy
	)
	fail := func(format string) {
		mu.Lock()
		if len(failures) < 10 {
			failures = append(failures, format)
		}
		mu.Unlock()
	}
	// The last generated policy allows https://app<n-1>-<gen>.example.com:
	// this origin is allowed by generation 0 only.
	last := loadgen.Scenario{Name: "last_policy", Route: fmt.Sprintf("route-%d", n-1), Method: "GET", Path: "/x",
		Origin: fmt.Sprintf("https://app%d-0.example.com", n-1), Status: 200}
	scenarios := []loadgen.Scenario{last}
	for _, name := range []string{"cors_allowed", "cors_refused", "preflight", "non_cors", "ungoverned"} {
		sc, _ := loadgen.ScenarioByName(name)
		scenarios = append(scenarios, sc)
	}
	for _, sc := range scenarios {
		want := ""
		if sc.Name == "cors_allowed" || sc.Name == "preflight" {
			want = sc.Origin
		}
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := loadgen.Prepare(sc)
				for ctx.Err() == nil {
					rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
					o, err := loadgen.Do(rctx, client, req)
					rcancel()
					requests.Add(1)
					switch {
					case err != nil:
						fail(sc.Name + ": " + err.Error())
					case sc.Name == "last_policy" && o.ACAO == sc.Origin:
						lastGen[0].Add(1)
					case sc.Name == "last_policy" && o.ACAO == "":
						lastGen[1].Add(1)
					case sc.Name == "last_policy":
						fail(sc.Name + ": Access-Control-Allow-Origin " + o.ACAO + ", want " + sc.Origin + " or none")
					case o.ACAO != want:
						fail(sc.Name + ": Access-Control-Allow-Origin " + o.ACAO + ", want " + want)
					}
				}
			}()
		}
	}
	for i := 1; ctx.Err() == nil; i++ {
		write(i % 2)
		if res, err := r.Reload(); res != reload.Swapped {
			t.Fatalf("reload %d = %v, %v; want a swap", i, res, err)
		}
		swaps.Add(1)
	}
	wg.Wait()
	t.Logf("%d requests during %d swaps of %d-policy sets; last policy answered by generation 0: %d, 1: %d",
		requests.Load(), swaps.Load(), n, lastGen[0].Load(), lastGen[1].Load())
	if len(failures) > 0 {
		t.Errorf("requests failed during swaps:\n%v", failures)
	}
	if swaps.Load() < 2 || requests.Load() == 0 {
		t.Errorf("%d swaps, %d requests: the test exercised nothing", swaps.Load(), requests.Load())
	}
	if lastGen[0].Load() == 0 || lastGen[1].Load() == 0 {
		t.Errorf("the last policy answered as generation 0 %d times and as generation 1 %d times: a generation never took effect",
			lastGen[0].Load(), lastGen[1].Load())
	}
}
