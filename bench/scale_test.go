package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"
)

// scaleYAML returns a policy file of one of two shapes:
//   - dim "policies": n policies, each bound to its own route (route-<i>)
//     and allowing one origin of its own; requests go to the last one;
//   - dim "origins": one default policy allowing n exact origins (the
//     allowed one is listed last).
func scaleYAML(dim string, n int) string {
	var b strings.Builder
	b.WriteString("policies:\n")
	switch dim {
	case "policies":
		for i := range n {
			fmt.Fprintf(&b, "  - name: p%d\n    match:\n      routes: [route-%d]\n    allowed_origins: [https://app%d.example.com]\n    allow_credentials: true\n", i, i, i)
		}
	case "origins":
		b.WriteString("  - name: web\n    allow_credentials: true\n    allowed_origins:\n")
		for i := range n {
			fmt.Fprintf(&b, "      - https://app%d.example.com\n", i)
		}
		b.WriteString("default_policy: web\n")
	}
	return b.String()
}

// scaleCase is one request of BenchmarkScaleDecide and the decision it must
// get.
type scaleCase struct {
	name   string
	req    policy.Request
	policy string // the policy selected
	want   policy.Outcome
}

// scaleRequests are the requests of BenchmarkScaleDecide: they go to the
// last policy (by route) and come from its last origin, or from an origin
// no policy allows.
func scaleRequests(dim string, n int) []scaleCase {
	route, origin, name := "", fmt.Sprintf("https://app%d.example.com", n-1), "web"
	if dim == "policies" {
		route, name = fmt.Sprintf("route-%d", n-1), fmt.Sprintf("p%d", n-1)
	}
	return []scaleCase{
		{"actual_allowed", policy.Request{Method: "GET", Origin: origin, Route: route, Host: "api.example.com", Path: "/api/x"}, name, policy.OutcomeAllowed},
		{"actual_refused", policy.Request{Method: "GET", Origin: "https://evil.example.org", Route: route, Host: "api.example.com", Path: "/api/x"}, name, policy.OutcomeDenied},
		{"preflight", policy.Request{Method: "OPTIONS", Origin: origin, ACRM: "PUT", ACRH: []string{"content-type"}, Route: route, Host: "api.example.com", Path: "/api/x"}, name, policy.OutcomePreflightAllowed},
	}
}

var scaleSizes = []int{10, 10000}

// BenchmarkScaleDecide measures one decision with sets of 10 and 10,000
// route-bound policies, and with one policy of 10 and 10,000 origins.
//
//	go test -run '^$' -bench ScaleDecide -count 6 . | benchstat -col /n -
func BenchmarkScaleDecide(b *testing.B) {
	for _, dim := range []string{"policies", "origins"} {
		for _, n := range scaleSizes {
			set, err := policyfile.Parse("scale.yaml", []byte(scaleYAML(dim, n)))
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range scaleRequests(dim, n) {
				b.Run(fmt.Sprintf("dim=%s/case=%s/n=%d", dim, c.name, n), func(b *testing.B) {
					r := c.req
					var d policy.Decision
					b.ReportAllocs()
					for b.Loop() {
						set.Decide(&r, &d)
					}
					if d.Policy != c.policy || d.Outcome != c.want {
						b.Fatalf("policy %q, outcome %v; want %q, %v: %+v", d.Policy, d.Outcome, c.policy, c.want, d)
					}
				})
			}
		}
	}
}

// BenchmarkScaleCompile measures decoding, validating and compiling the
// policy file, and reports the memory the compiled set retains (set-bytes:
// the heap it holds after a GC, its copy of the source included).
func BenchmarkScaleCompile(b *testing.B) {
	for _, dim := range []string{"policies", "origins"} {
		for _, n := range scaleSizes {
			data := []byte(scaleYAML(dim, n))
			b.Run(fmt.Sprintf("dim=%s/n=%d", dim, n), func(b *testing.B) {
				size := setBytes(b, data)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := policyfile.Parse("scale.yaml", data); err != nil {
						b.Fatal(err)
					}
				}
				// After the loop: b.Loop's timer reset clears metrics.
				b.ReportMetric(float64(size), "set-bytes")
			})
		}
	}
}

// BenchmarkScaleStages splits BenchmarkScaleCompile into its two stages:
// decoding the YAML into the policy schema (policyfile.Decode) and validating
// and compiling the decoded policies, then swapping the set in
// (policy.Compile and processor.Server.Swap).
func BenchmarkScaleStages(b *testing.B) {
	for _, dim := range []string{"policies", "origins"} {
		for _, n := range scaleSizes {
			data := []byte(scaleYAML(dim, n))
			b.Run(fmt.Sprintf("stage=decode/dim=%s/n=%d", dim, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := policyfile.Decode("scale.yaml", data); err != nil {
						b.Fatal(err)
					}
				}
			})
			pf, err := policyfile.Decode("scale.yaml", data)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("stage=compile+swap/dim=%s/n=%d", dim, n), func(b *testing.B) {
				srv := processor.New(nil, processor.Options{Registerer: prometheus.NewRegistry()})
				b.ReportAllocs()
				for b.Loop() {
					set, err := policy.Compile(policy.Source{Name: "scale.yaml", Files: []policy.Input{{File: "scale.yaml", Schema: pf}}})
					if err != nil {
						b.Fatal(err)
					}
					srv.Swap(set)
				}
			})
		}
	}
}

// setBytes returns the heap a compiled set of data retains.
func setBytes(tb testing.TB, data []byte) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	set, err := policyfile.Parse("scale.yaml", data)
	if err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(set)
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return after.HeapAlloc - before.HeapAlloc
}

// BenchmarkScaleReload measures what a reload does before and when it
// swaps: policyfile.Load of the file from disk (read, decode, validate,
// compile) and processor.Server.Swap.
func BenchmarkScaleReload(b *testing.B) {
	for _, dim := range []string{"policies", "origins"} {
		for _, n := range scaleSizes {
			path := filepath.Join(b.TempDir(), "policy.yaml")
			if err := os.WriteFile(path, []byte(scaleYAML(dim, n)), 0o644); err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("dim=%s/n=%d", dim, n), func(b *testing.B) {
				srv := processor.New(nil, processor.Options{Registerer: prometheus.NewRegistry()})
				b.ReportAllocs()
				for b.Loop() {
					set, err := policyfile.Load(path)
					if err != nil {
						b.Fatal(err)
					}
					srv.Swap(set)
				}
			})
		}
	}
}

// BenchmarkScaleReloadFiles is BenchmarkScaleReload of 10,000 route-bound
// policies split evenly over a policy directory of 1 to 100 files: the
// files are parsed concurrently (docs/policy.md), so a very large set loads
// faster split.
func BenchmarkScaleReloadFiles(b *testing.B) {
	const n = 10000
	for _, files := range []int{1, 2, 10, 100} {
		dir := b.TempDir()
		per := n / files
		for f := range files {
			var s strings.Builder
			s.WriteString("policies:\n")
			for i := f * per; i < (f+1)*per; i++ {
				fmt.Fprintf(&s, "  - name: p%d\n    match:\n      routes: [route-%d]\n    allowed_origins: [https://app%d.example.com]\n    allow_credentials: true\n", i, i, i)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%03d.yaml", f)), []byte(s.String()), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("files=%d/n=%d", files, n), func(b *testing.B) {
			srv := processor.New(nil, processor.Options{Registerer: prometheus.NewRegistry()})
			b.ReportAllocs()
			for b.Loop() {
				set, err := policyfile.Load(dir)
				if err != nil {
					b.Fatal(err)
				}
				if len(set.Names()) != n {
					b.Fatalf("loaded %d policies, want %d", len(set.Names()), n)
				}
				srv.Swap(set)
			}
		})
	}
}
