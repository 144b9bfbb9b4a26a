package active

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"
)

// The active policy's metrics exist from the start and follow every swap.
func TestActivePolicyMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	dev := policyfile.Development()
	proc := processor.New(dev, processor.Options{})
	active := New(proc, dev, time.Unix(1700000000, 500_000_000), reg)
	compare := func(generation, loaded, policies string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP corsproc_policies Policies in the active set.
# TYPE corsproc_policies gauge
corsproc_policies `+policies+`
# HELP corsproc_policy_generation Generation of the active policy set: 1 for the set corsproc started with, one more per successful reload.
# TYPE corsproc_policy_generation gauge
corsproc_policy_generation `+generation+`
# HELP corsproc_policy_loaded_timestamp_seconds Unix time at which the active policy set was loaded.
# TYPE corsproc_policy_loaded_timestamp_seconds gauge
corsproc_policy_loaded_timestamp_seconds `+loaded+`
`)); err != nil {
			t.Error(err)
		}
	}
	compare("1", "1700000000.5", "1")
	if lp := active.Current(); lp.Set != dev || lp.Generation != 1 || !lp.LoadedAt.Equal(time.Unix(1700000000, 500_000_000)) {
		t.Errorf("current = %+v", lp)
	}

	two, err := policyfile.Parse("two.yaml", []byte("policies:\n  - name: a\n    allowed_origins: [https://a.example]\n  - name: b\n    allowed_origins: [https://b.example]\n"))
	if err != nil {
		t.Fatal(err)
	}
	active.now = func() time.Time { return time.Unix(1700000100, 0) }
	active.Swap(two)
	compare("2", "1700000100", "2")
	if proc.Policy() != two {
		t.Error("swap did not reach the processor")
	}
	if lp := active.Current(); lp.Set != two || lp.Generation != 2 || !lp.LoadedAt.Equal(time.Unix(1700000100, 0)) {
		t.Errorf("current = %+v", lp)
	}
}
