package bench

import (
	"fmt"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/policy"
)

// adversarialCases are requests a hostile client sends to make a CORS
// implementation spend: floods of commas and names in
// Access-Control-Request-Headers, thousands of its header lines, and very
// long origins. Their cost must stay bounded whatever their size, and stay
// far from what they cost to send.
func adversarialCases(n int) []decisionCase {
	ok := allowedOrigin(n)
	names := make([]string, 5000)
	for i := range names {
		names[i] = fmt.Sprintf("x-h%d", i)
	}
	return []decisionCase{
		{name: "acrh_commas_64k", method: "OPTIONS", origin: ok, acrm: "PUT", acrh: strings.Repeat(",", 64<<10) + "content-type", want: policy.OutcomePreflightRejected},
		{name: "acrh_names_5000", method: "OPTIONS", origin: ok, acrm: "PUT", acrh: strings.Join(names, ", "), want: policy.OutcomePreflightRejected},
		{name: "acrh_lines_5000", method: "OPTIONS", origin: ok, acrm: "PUT", acrhLines: names, want: policy.OutcomePreflightRejected},
		{name: "origin_8k", method: "GET", origin: "https://" + strings.Repeat("a", 8<<10) + ".example.com", want: policy.OutcomeDenied},
		{name: "origin_250_labels", method: "GET", origin: "https://" + strings.Repeat("a.", 120) + "example.com", want: policy.OutcomeDenied},
		{name: "preflight_8k_origin", method: "OPTIONS", origin: "https://" + strings.Repeat("a", 8<<10) + ".example.com", acrm: "PUT", acrh: "content-type", want: policy.OutcomePreflightRejected},
	}
}

// BenchmarkAdversarial runs the adversarial requests through corsproc's
// decision, bare and as middleware, and the peers', with 1,000 allowed
// origins, as BenchmarkDecision does; compare each with BenchmarkDecision's
// preflight and actual_refused.
//
//	go test -run '^$' -bench 'Adversarial' -benchmem -count 6 . | benchstat -col /impl -
func BenchmarkAdversarial(b *testing.B) {
	const n = 1000
	runDecisionCases(b, newDecisionSetup(b, n), adversarialCases(n))
}
