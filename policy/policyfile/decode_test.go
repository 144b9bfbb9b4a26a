package policyfile

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/corsproc/corsproc/policy"
	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"
)

// TestEnumValues: an enum key takes the lower-case value name without the
// enum's prefix, EnumName spells it back, and any other value is an error
// whose fix lists the values in sorted order (not the schema's).
func TestEnumValues(t *testing.T) {
	for _, c := range []struct {
		value, want string
		check       func(*corsprocv1.Policy) bool
	}{
		{"mode: enforce", "enforce", func(p *corsprocv1.Policy) bool { return p.GetMode() == corsprocv1.Mode_MODE_ENFORCE }},
		{"mode: shadow", "shadow", func(p *corsprocv1.Policy) bool { return p.GetMode() == corsprocv1.Mode_MODE_SHADOW }},
		{"unmatched_preflight: reject", "reject", func(p *corsprocv1.Policy) bool {
			return p.GetUnmatchedPreflight() == corsprocv1.UnmatchedPreflight_UNMATCHED_PREFLIGHT_REJECT
		}},
		{"unmatched_preflight: forward", "forward", func(p *corsprocv1.Policy) bool {
			return p.GetUnmatchedPreflight() == corsprocv1.UnmatchedPreflight_UNMATCHED_PREFLIGHT_FORWARD
		}},
	} {
		pf, err := Decode("p.yaml", []byte("policies:\n  - name: p\n    "+c.value+"\n"))
		if err != nil {
			t.Fatalf("%s: %v", c.value, err)
		}
		p := pf.GetPolicies()[0]
		if !c.check(p) {
			t.Errorf("%s: decoded as mode %v, unmatched_preflight %v", c.value, p.GetMode(), p.GetUnmatchedPreflight())
		}
	}
	if got := EnumName(corsprocv1.Mode_MODE_SHADOW); got != "shadow" {
		t.Errorf("EnumName(MODE_SHADOW) = %q, want shadow", got)
	}
	if got := EnumName(corsprocv1.UnmatchedPreflight_UNMATCHED_PREFLIGHT_FORWARD); got != "forward" {
		t.Errorf("EnumName(UNMATCHED_PREFLIGHT_FORWARD) = %q, want forward", got)
	}
	if got := EnumName(corsprocv1.Mode_MODE_UNSPECIFIED); got != "" {
		t.Errorf("EnumName(MODE_UNSPECIFIED) = %q, want \"\": it cannot be written", got)
	}

	for _, c := range []struct{ value, fix string }{
		{"unmatched_preflight: drop", "write one of: forward, reject"},
		{"unmatched_preflight: REJECT", "write one of: forward, reject"},
		{"unmatched_preflight: unspecified", "write one of: forward, reject"},
		{"mode: 1", "write one of: enforce, shadow"},
	} {
		_, err := Decode("p.yaml", []byte("policies:\n  - name: p\n    "+c.value+"\n"))
		var v *policy.ValidationError
		if !errors.As(err, &v) || len(v.Errors()) != 1 || v.Errors()[0].Fix != c.fix {
			t.Errorf("%s: %v; want one error with fix %q", c.value, err, c.fix)
		}
	}
}

// TestEnumValuesConcurrent: files are decoded on several goroutines at once
// (a reload beside a check, Parse called by several callers), and each
// spells the enums the same (the race detector checks that decoding an
// enum shares no state).
func TestEnumValuesConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for g := range errs {
		wg.Go(func() {
			mode, unmatched := []string{"enforce", "shadow"}[g%2], []string{"reject", "forward"}[g/2%2]
			pf, err := Decode("p.yaml", []byte(fmt.Sprintf("policies:\n  - name: p\n    mode: %s\n    unmatched_preflight: %s\n", mode, unmatched)))
			switch {
			case err != nil:
				errs[g] = err
			case EnumName(pf.GetPolicies()[0].GetMode()) != mode || EnumName(pf.GetPolicies()[0].GetUnmatchedPreflight()) != unmatched:
				errs[g] = fmt.Errorf("mode %s, unmatched_preflight %s decoded as %v, %v", mode, unmatched, pf.GetPolicies()[0].GetMode(), pf.GetPolicies()[0].GetUnmatchedPreflight())
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// TestEnumSpellingsFromSchema: every enum of the schema is written in YAML
// as its protobuf value names without the common prefix, in lower case, and
// each spelling decodes back to its value. An enum added to policy.proto
// whose values do not share the zero value's prefix fails here rather than
// getting spellings no one chose.
func TestEnumSpellingsFromSchema(t *testing.T) {
	enums := corsprocv1.File_corsproc_v1_policy_proto.Enums()
	if enums.Len() == 0 {
		t.Fatal("the schema has no enums")
	}
	for i := range enums.Len() {
		ed := enums.Get(i)
		zero := string(ed.Values().ByNumber(0).Name())
		prefix, ok := strings.CutSuffix(zero, "UNSPECIFIED")
		if !ok {
			t.Errorf("%s: the zero value is %s, not ..._UNSPECIFIED", ed.FullName(), zero)
			continue
		}
		for j := range ed.Values().Len() {
			vd := ed.Values().Get(j)
			if vd.Number() == 0 {
				continue
			}
			rest, ok := strings.CutPrefix(string(vd.Name()), prefix)
			if !ok || rest == "" {
				t.Errorf("%s: value %s does not start with %s", ed.FullName(), vd.Name(), prefix)
				continue
			}
			if got := enumSpelling(ed, vd); got != strings.ToLower(rest) {
				t.Errorf("%s: %s is spelled %q, want %q", ed.FullName(), vd.Name(), got, strings.ToLower(rest))
			}
			if back := enumValue(ed, strings.ToLower(rest)); back == nil || back.Number() != vd.Number() {
				t.Errorf("%s: %q does not decode back to %s", ed.FullName(), strings.ToLower(rest), vd.Name())
			}
		}
	}
}
