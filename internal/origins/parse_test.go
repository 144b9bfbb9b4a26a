package origins

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// refParse restates Parse's contract the plain way, with
// strings' functions and no word-at-a-time reading: the tests below hold
// Parse to it.
func refParse(s string) (Origin, bool) {
	if len(s) > MaxLen {
		return Origin{}, false
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !refScheme(scheme) {
		return Origin{}, false
	}
	var host, port string
	hasPort := false
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return Origin{}, false
		}
		a, err := netip.ParseAddr(rest[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" || a.String() != rest[1:end] {
			return Origin{}, false
		}
		host, rest = rest[:end+1], rest[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return Origin{}, false
			}
			port, hasPort = rest[1:], true
		}
	} else {
		host, port, hasPort = strings.Cut(rest, ":")
		if !refHostName(host) {
			return Origin{}, false
		}
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port || IsDefaultPort(scheme, port) {
			return Origin{}, false
		}
	}
	o := Origin{Scheme: scheme, Host: host, Port: port}
	if host[0] != '[' {
		labels := strings.Split(strings.TrimSuffix(host, "."), ".")
		o.TLD = labels[len(labels)-1]
	}
	return o, true
}

func refScheme(s string) bool {
	for i, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

// refHostName is IsHostName's contract: 1 to 253 bytes of labels of 1 to
// 63 bytes of a-z, 0-9, '-' and '_', perhaps with a trailing dot.
func refHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// checkParse fails t unless Parse and IsHostName agree with
// the plain restatements on s.
func checkParse(t *testing.T, s string) {
	t.Helper()
	var got Origin
	ok := Parse(s, &got)
	want, wantOK := refParse(s)
	if ok != wantOK || ok && got != want {
		t.Fatalf("Parse(%q) = %+v, %v; want %+v, %v", s, got, ok, want, wantOK)
	}
	if got, want := IsHostName(s), refHostName(s); got != want {
		t.Fatalf("IsHostName(%q) = %v, want %v", s, got, want)
	}
}

var parseCases = []string{
	"https://app.example.com", "http://localhost", "http://localhost:3000", "https://a.b",
	"https://evil.example.org", "https://app.example.com.", "https://a", "http://a:1",
	"https://x.example.org:8443", "https://[::1]", "https://[::1]:8080", "https://[::ffff:1.2.3.4]",
	"https://127.0.0.1", "https://_dmarc.example.com", "https://xn--bcher-kva.example",
	"chrome-extension://abcdefghijklmnop", "web+app://x", "h://x", "ws://a.b:80", "wss://a.b:444",
	// Refused.
	"", "https", "https:", "https:/", "https://", "https://:443", "http://", "HTTPS://a.b", "1https://a.b",
	"https:/a.b", "https://A.b", "https://a.b/", "https://a.b/path", "https://u@a.b", "https://a.b:443",
	"http://a.b:80", "https://a.b:", "https://a.b:0", "https://a.b:08443", "https://a.b:65536",
	"https://a.b:1:2", "https://a..b", "https://.a.b", "https://a.b..", "https://.", "https://a b",
	"https://\xffa.b", "https://a.b\xae", "https://a.\xaeb", "https://a\x00b", "https://a.b ",
	"https://[::1", "https://[::1]x", "https://[::1]:", "https://[0:0::1]", "https://[fe80::1%eth0]",
	"https://" + strings.Repeat("a", 63) + ".b", "https://" + strings.Repeat("a", 64) + ".b",
	"https://b." + strings.Repeat("a", 63), "https://b." + strings.Repeat("a", 64),
	"https://" + strings.Repeat("a.", 126) + "b", "https://" + strings.Repeat("a.", 127),
	"https://" + strings.Repeat("a.", 127) + "b", "https://" + strings.Repeat("a", 600),
	"a://", "a://b", "a://b.", "a://b:1", "a://bc", "file://", "null",
}

func TestParseOrigin(t *testing.T) {
	for _, s := range parseCases {
		checkParse(t, s)
		// Each case again at every offset of the 8-byte words the host
		// is read in, and cut short at every length.
		for pad := 1; pad < 8; pad++ {
			if scheme, rest, ok := strings.Cut(s, "://"); ok {
				checkParse(t, scheme+"://"+strings.Repeat("a", pad)+"."+rest)
			}
		}
		for n := range len(s) {
			checkParse(t, s[:n])
		}
	}
}

// TestParseOriginRandom compares Parse with refParse on origins
// built from the bytes that matter to a host name, at every length.
func TestParseOriginRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abz09-_.:.a.a/[]A\xae\xff@ "
	schemes := []string{"https://", "http://", "ws://", "h://", "https:/", ""}
	for range 100_000 {
		var b strings.Builder
		b.WriteString(schemes[rng.IntN(len(schemes))])
		for range rng.IntN(80) {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		if rng.IntN(4) == 0 {
			b.WriteString(":" + strconv.Itoa(rng.IntN(70000)))
		}
		checkParse(t, b.String())
	}
}

func FuzzParseOrigin(f *testing.F) {
	for _, s := range parseCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkParse(t, s) })
}

func TestWordPrefixes(t *testing.T) {
	if got := load64("https://", 0); got != httpsPrefix {
		t.Errorf("httpsPrefix = %#x, want %#x", uint64(httpsPrefix), got)
	}
	if got := load64("http://x", 0) & (1<<56 - 1); got != httpPrefix {
		t.Errorf("httpPrefix = %#x, want %#x", uint64(httpPrefix), got)
	}
}

func TestLoadTail(t *testing.T) {
	for _, s := range []string{"", "a", "abcdefg", "abcdefgh", "abcdefghijklmno"} {
		for i := max(0, len(s)-7); i <= len(s); i++ {
			var want uint64
			for j := len(s) - 1; j >= i; j-- {
				want = want<<8 | uint64(s[j])
			}
			if got := loadTail(s, i); got != want {
				t.Errorf("loadTail(%q, %d) = %#x, want %#x", s, i, got, want)
			}
		}
	}
}
