package bench

import (
	"testing"

	"github.com/corsproc/corsproc/policy"
)

// decisionGroup is a set of cases of BenchmarkDecision or
// BenchmarkAdversarial with the number of allowed origins they run with.
type decisionGroup struct {
	n     int
	cases []decisionCase
}

// decisionGroups are the cases BenchmarkDecision and BenchmarkAdversarial
// run.
func decisionGroups() []decisionGroup {
	return []decisionGroup{
		{5, decisionCases(5)},
		{1000, decisionCases(1000)},
		{1000, adversarialCases(1000)},
	}
}

// TestDecisionCases runs every case of BenchmarkDecision and
// BenchmarkAdversarial once through corsproc's decision and each middleware,
// with the checks the benchmarks make: `go test` runs no benchmark, and a
// setup that answers wrongly must not wait for someone to time it.
func TestDecisionCases(t *testing.T) {
	for _, g := range decisionGroups() {
		s := newDecisionSetup(t, g.n)
		for _, c := range g.cases {
			t.Run(decisionName("corsproc", c, g.n), func(t *testing.T) {
				var d policy.Decision
				s.set.Decide(c.policyRequest(), &d)
				checkDecision(t, c, &d)
			})
			for _, impl := range s.impls {
				t.Run(decisionName(impl.name, c, g.n), func(t *testing.T) {
					w := newResponseWriter()
					impl.h.ServeHTTP(w, c.httpRequest())
					checkAnswer(t, c, w)
				})
			}
		}
	}
}

// TestDecideAllocations checks that corsproc's decision allocates nothing in
// any case of BenchmarkDecision and BenchmarkAdversarial, preflights and
// hostile requests included, as docs/performance.md states.
func TestDecideAllocations(t *testing.T) {
	for _, g := range decisionGroups() {
		s := newDecisionSetup(t, g.n)
		for _, c := range g.cases {
			r := c.policyRequest()
			var d policy.Decision
			if n := testing.AllocsPerRun(100, func() { s.set.Decide(r, &d) }); n != 0 {
				t.Errorf("case=%s/origins=%d: %v allocations per decision, want 0", c.name, g.n, n)
			}
			checkDecision(t, c, &d)
		}
	}
}
