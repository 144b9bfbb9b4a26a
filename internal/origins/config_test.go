package origins

import (
	"strconv"
	"strings"
	"testing"
)

// The fix of an allowed_origins entry that writes another entry writes one
// that is accepted: following it never leads to the next error (the fix of
// "HTTPS://Shop.Example.com/" was "https://Shop.Example.com/", refused next
// for its case).
func TestParseConfigFixesPass(t *testing.T) {
	for _, entry := range []string{
		"HTTPS://Shop.Example.com/",
		"HTTPS://Shop.Example.com",
		"https://user@Shop.Example.com:443/path",
		"https://Shop.Example.com:443",
		"https://Bücher.Example/",
		"HTTP://[0:0::1]:80/",
		"https://*.Example.COM/",
		"https://app.example.com:",
	} {
		_, p := ParseConfig(entry)
		if p == nil {
			t.Errorf("%q: no problem", entry)
			continue
		}
		rest, ok := strings.CutPrefix(p.Fix, "write ")
		if !ok {
			t.Errorf("%q: fix %q writes no entry", entry, p.Fix)
			continue
		}
		quoted, err := strconv.QuotedPrefix(rest)
		if err != nil {
			t.Fatalf("%q: fix %q: %v", entry, p.Fix, err)
		}
		value, _ := strconv.Unquote(quoted)
		if _, p2 := ParseConfig(value); p2 != nil {
			t.Errorf("%q: the fix writes %q, which is refused: %s; fix: %s", entry, value, p2.Msg, p2.Fix)
		}
	}
}
