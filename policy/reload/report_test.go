package reload_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/policy/reload"
)

// Options.Report hears every reload: its result, the digest of the files
// read and, for a failure, why.
func TestReport(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeAtomic(t, path, policyYAML("x-one"))
	set, err := policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	type report struct {
		result reload.Result
		digest string
		err    error
	}
	var got []report
	r := reload.New(path, set, func(*policy.Set) {}, reload.Options{Report: func(res reload.Result, digest string, err error) {
		got = append(got, report{res, digest, err})
	}})
	r.Reload()
	writeAtomic(t, path, policyYAML("x-two"))
	r.Reload()
	writeAtomic(t, path, "policies: [")
	r.Reload()
	if len(got) != 3 {
		t.Fatalf("%d reports, want 3: %+v", len(got), got)
	}
	if got[0].result != reload.Unchanged || got[0].digest != set.Digest() || got[0].err != nil {
		t.Errorf("unchanged: %+v", got[0])
	}
	if got[1].result != reload.Swapped || got[1].digest == set.Digest() || got[1].digest == "" || got[1].err != nil {
		t.Errorf("swapped: %+v", got[1])
	}
	var verr *policy.ValidationError
	if got[2].result != reload.Failed || got[2].digest == "" || !errors.As(got[2].err, &verr) {
		t.Errorf("failed: %+v", got[2])
	}
	for res, want := range map[reload.Result]string{reload.Swapped: "success", reload.Unchanged: "unchanged", reload.Failed: "failure"} {
		if res.String() != want {
			t.Errorf("%d.String() = %q, want %q", res, res.String(), want)
		}
	}
}
