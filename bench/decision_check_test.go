package bench

import (
	"maps"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
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

// TestCorsprocHTTP checks that corsproc-http, corsproc's decision as
// middleware, answers every case of the benchmarks as the decision says, with
// the benchmark policy and with it in shadow mode and forwarding failed
// preflights: the headers written by http.Header's Add (appended headers)
// and Set (the others), onto headers an outer handler set, unless the
// decision changes nothing; the status of a preflight corsproc answers, which
// next never sees.
func TestCorsprocHTTP(t *testing.T) {
	type httpCase struct {
		name string
		r    *http.Request
		want *policy.Request // what the middleware must decide
	}
	var cases []httpCase
	for _, g := range decisionGroups() {
		for _, c := range g.cases {
			cases = append(cases, httpCase{c.name, c.httpRequest(), c.policyRequest()})
		}
	}
	preflight := decisionCase{name: "duplicate_acrm", method: "OPTIONS", origin: allowedOrigin(1000), acrm: "PUT", acrh: "content-type"}
	dupOrigin := decisionCase{name: "duplicate_origin", method: "GET", origin: allowedOrigin(1000)}
	pna := preflight
	pna.name = "private_network"
	// Preflight headers on requests that are not preflights: the
	// middleware skips them, and must decide as if it had read them.
	getACRM := decisionCase{name: "get_with_acrm", method: "GET", origin: allowedOrigin(1000), acrm: "PUT", acrh: "content-type"}
	noOrigin := decisionCase{name: "options_no_origin", method: "OPTIONS", acrm: "PUT", acrh: "content-type"}
	for _, c := range []httpCase{
		{dupOrigin.name, dupOrigin.httpRequest(), dupOrigin.policyRequest()},
		{preflight.name, preflight.httpRequest(), preflight.policyRequest()},
		{pna.name, pna.httpRequest(), pna.policyRequest()},
		{getACRM.name, getACRM.httpRequest(), getACRM.policyRequest()},
		{noOrigin.name, noOrigin.httpRequest(), noOrigin.policyRequest()},
	} {
		switch c.name {
		case "duplicate_origin":
			c.r.Header.Add("Origin", "https://evil.example.org")
			c.want.DuplicateOrigin = true
		case "duplicate_acrm":
			c.r.Header.Add("Access-Control-Request-Method", "GET")
			c.want.DuplicateACRM = true
		case "private_network":
			c.r.Header.Set("Access-Control-Request-Private-Network", "true")
			c.want.ACRPN = "true"
		}
		cases = append(cases, c)
	}

	// The policy of 1,000 origins allows every allowed origin of the cases.
	base := corsprocYAML(benchOrigins(1000))
	outer := http.Header{"Vary": {"Accept-Encoding"}, "Access-Control-Allow-Origin": {"https://stale.example"}}
	for _, mode := range []string{"", "mode: shadow", "unmatched_preflight: forward"} {
		set, err := policyfile.Parse("bench.yaml", []byte(strings.Replace(base, "    allow_credentials:", "    "+mode+"\n    allow_credentials:", 1)))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			for _, pre := range []http.Header{{}, outer} {
				var d policy.Decision
				set.Decide(c.want, &d)
				want := pre.Clone()
				if d.RespondImmediately() || d.NeedsResponse() {
					for _, h := range d.Headers() {
						if h.Append {
							want.Add(h.Name, h.Value)
						} else {
							want.Set(h.Name, h.Value)
						}
					}
				}
				wantStatus, wantNext := 0, 1
				if d.RespondImmediately() {
					wantStatus, wantNext = d.Status, 0
				}

				nexts := 0
				h := newCorsprocHTTP(set, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { nexts++ }))
				w := newResponseWriter()
				maps.Copy(w.h, pre.Clone())
				h.ServeHTTP(w, c.r)
				if !reflect.DeepEqual(w.h, want) || w.status != wantStatus || nexts != wantNext {
					t.Errorf("%q case=%s, outer headers %v: headers %v, status %d, next called %d times; want %v, %d, %d (outcome %v)",
						mode, c.name, pre, w.h, w.status, nexts, want, wantStatus, wantNext, d.Outcome)
				}
			}
		}
	}
}
