package policy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// benchPolicy returns a policy file whose one policy allows n exact origins
// plus a subdomain pattern, as a large production allow-list looks.
func benchPolicy(n int) string {
	var b strings.Builder
	b.WriteString("default_policy: web\npolicies:\n  - name: web\n    allow_credentials: true\n    expose_headers: [x-request-id]\n    allowed_origins:\n")
	for i := range n - 1 {
		fmt.Fprintf(&b, "      - https://app%d.example.com\n", i)
	}
	b.WriteString("      - https://*.example.net\n")
	return b.String()
}

// BenchmarkDecide measures one decision per case with 5 and 10,000 allowed
// origins. The allowed origin is the last exact one listed, so a scan would
// show; benchstat compares origins=5 with origins=10000.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{5, 10000} {
		set := mustParse(b, benchPolicy(n))
		allowed := fmt.Sprintf("https://app%d.example.com", n-2)
		cases := []struct {
			name string
			req  policy.Request
			want policy.Outcome
		}{
			{"preflight", policy.Request{Method: "OPTIONS", Origin: allowed, ACRM: "PUT", ACRH: []string{"content-type, x-csrftoken"}}, policy.OutcomePreflightAllowed},
			{"actual_allowed", policy.Request{Method: "GET", Origin: allowed}, policy.OutcomeAllowed},
			{"actual_pattern", policy.Request{Method: "GET", Origin: "https://eu.shop.example.net"}, policy.OutcomeAllowed},
			{"actual_disallowed", policy.Request{Method: "GET", Origin: "https://evil.example.org"}, policy.OutcomeDenied},
			{"no_origin", policy.Request{Method: "GET"}, policy.OutcomeNotCORS},
		}
		for _, c := range cases {
			b.Run(fmt.Sprintf("case=%s/origins=%d", c.name, n), func(b *testing.B) {
				var d policy.Decision
				b.ReportAllocs()
				for b.Loop() {
					set.Decide(&c.req, &d)
				}
				if d.Outcome != c.want {
					b.Fatalf("outcome %v, want %v", d.Outcome, c.want)
				}
			})
		}
	}
}

// BenchmarkCompile measures decoding, validating and compiling a policy file
// with 10,000 origins.
func BenchmarkCompile(b *testing.B) {
	data := []byte(benchPolicy(10000))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policyfile.Parse("bench.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompileRegexes measures decoding, validating and compiling a
// policy file with 1,000 allowed_origin_regexes, where parsing the regexes
// is most of the cost.
func BenchmarkCompileRegexes(b *testing.B) {
	var s strings.Builder
	s.WriteString("default_policy: web\npolicies:\n  - name: web\n    allowed_origin_regexes:\n")
	for i := range 1000 {
		fmt.Fprintf(&s, "      - 'https://[a-z0-9-]+\\.tenant%d\\.example\\.(com|net)(:[0-9]+)?'\n", i)
	}
	data := []byte(s.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policyfile.Parse("bench.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
