package origins

import (
	"regexp"
	"regexp/syntax"
	"testing"
)

// TestProbeAddressesStable: a regex whose address hosts need one port of
// many is judged the same way every run. probeAddresses tries three of the
// ports of the origins found; it took them in a map's order, so a regex
// with more ports was refused or let through by chance.
func TestProbeAddressesStable(t *testing.T) {
	const src = `https://(a\.example\.com:1234|b\.example\.com:5678|c\.example\.com:9012|d\.example\.com:3456|e\.example\.com:7890|[0-9.]+:1234)`
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		t.Fatal(err)
	}
	anchored := regexp.MustCompile(`^(?:` + src + `)$`)
	for range 30 {
		f := analyzeOriginRegex(re, anchored)
		if f.arbitrary == "" {
			t.Fatalf("%s: no arbitrary host found, want one on an IP address (port 1)", src)
		}
	}
}
