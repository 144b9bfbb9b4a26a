package origins

import (
	"math/bits"
	"net/netip"
	"strings"
)

// MaxLen bounds the Origin values corsproc parses: a host name is at
// most 253 bytes, so anything longer is not an origin a browser sends.
const MaxLen = 512

// Origin is a serialized origin split into parts that alias the input.
type Origin struct {
	Scheme, Host, Port string // Port is "" when the origin has none
	// TLD is the host's last label, a trailing dot aside ("" for an IPv6
	// literal): a host whose TLD no subdomain pattern ends in is not
	// looked up in them.
	TLD string
}

// Parse parses a request's Origin strictly: it must be exactly what a
// browser serializes, scheme "://" host [":" port], all lower case, with no
// path, query, fragment, userinfo or default port. It never allocates.
//
// Every request whose Origin is not an exact entry is parsed here, refused
// ones included, so it reads eight bytes at a time where it can: "https://"
// and "http://" are one comparison, and the host name is checked a word at
// a time (see hostNameEnd).
func Parse(s string, o *Origin) bool {
	if len(s) > MaxLen {
		return false
	}
	i := 0 // the length of the scheme
	if len(s) >= 8 {
		switch w := load64(s, 0); {
		case w == httpsPrefix:
			i = 5
		case w&(1<<56-1) == httpPrefix:
			i = 4
		}
	}
	if i == 0 {
		i = schemeLen(s)
		if i == 0 || len(s) < i+3 || s[i] != ':' || s[i+1] != '/' || s[i+2] != '/' {
			return false
		}
	}
	o.Scheme = s[:i]
	i += 3
	var end int
	if i < len(s) && s[i] == '[' {
		end = i + strings.IndexByte(s[i:], ']') + 1
		if end <= i || !IsIPv6Literal(s[i+1:end-1]) {
			return false
		}
		o.Host, o.TLD = s[i:end], ""
	} else {
		var lastDot int
		var ok bool
		end, lastDot, ok = hostNameEnd(s, i)
		if !ok {
			return false
		}
		o.Host = s[i:end]
		switch {
		case lastDot < 0:
			o.TLD = o.Host
		case lastDot == end-1: // a trailing dot
			o.TLD = LastLabel(o.Host)
		default:
			o.TLD = s[lastDot+1 : end]
		}
	}
	if end == len(s) {
		o.Port = ""
		return true
	}
	if s[end] != ':' || !IsPort(s[end+1:]) || IsDefaultPort(o.Scheme, s[end+1:]) {
		return false
	}
	o.Port = s[end+1:]
	return true
}

// httpsPrefix and httpPrefix are "https://" and "http://" as load64 reads
// them.
const (
	httpsPrefix = 0x2f2f3a7370747468
	httpPrefix  = 0x2f2f3a70747468
)

// load64 returns the eight bytes of s from i as a little-endian word; the
// compiler makes it one load.
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// loadTail returns the bytes of s from i to its end, fewer than eight, as
// the low bytes of a little-endian word whose other bytes are zero.
func loadTail(s string, i int) uint64 {
	if len(s) >= 8 {
		// The last eight bytes, shifted so that those before i drop out.
		return load64(s, len(s)-8) >> (8 * (8 - (len(s) - i)))
	}
	var w uint64
	for j := len(s) - 1; j >= i; j-- {
		w = w<<8 | uint64(s[j])
	}
	return w
}

// schemeLen returns the length of the scheme s starts with: a lower-case
// letter, then letters, digits, '+', '-' and '.'; 0 if there is none.
func schemeLen(s string) int {
	if s == "" || !isLowerAlpha(s[0]) {
		return 0
	}
	i := 1
	for i < len(s) && schemeByte[s[i]] {
		i++
	}
	return i
}

// IsScheme reports whether s is a scheme: a lower-case letter, then
// letters, digits, '+', '-' and '.'.
func IsScheme(s string) bool { return s != "" && schemeLen(s) == len(s) }

// IsHostName accepts lower-case ASCII host names and IPv4 addresses as
// browsers serialize them: labels of 1 to 63 letters, digits, '-' and '_',
// and perhaps a trailing dot; 253 bytes at most.
func IsHostName(s string) bool {
	end, _, ok := hostNameEnd(s, 0)
	return ok && end == len(s)
}

// Word-at-a-time constants: a one and a high bit in every byte.
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// bytesIn returns the high bit of each byte of x whose value lies in
// [lo, hi]. Every byte of x must be below 0x80, so that no sum carries into
// the next byte; the constants fold when lo and hi are constants.
func bytesIn(x uint64, lo, hi byte) uint64 {
	return (x + (0x80-uint64(lo))*lowBits) &^ (x + (0x7f-uint64(hi))*lowBits) & highBits
}

// hostNameEnd reads the host name s holds from i, up to a ':' or the end. It
// returns the index where the host ends, the index of its last dot (-1 for
// none), and whether it is well formed (see IsHostName).
//
// It reads eight bytes at a time: in each word, one mask marks the bytes
// that may be in a host name and another the dots. A host ends at the first
// byte that may not; a dot right after a dot (or first) is an empty label.
// Labels are counted one by one only in hosts over 63 bytes, the only ones
// that can hold an overlong label.
func hostNameEnd(s string, i int) (end, lastDot int, ok bool) {
	start, lastDot := i, -1
	prevDots := uint64(1) << 63 // as if a dot came before the host
	for i < len(s) {
		var w uint64
		if len(s)-i >= 8 {
			w = load64(s, i)
		} else {
			w = loadTail(s, i) // the zero bytes after the end stop the host
		}
		ascii := w &^ highBits
		valid := (bytesIn(ascii, 'a', 'z') | bytesIn(ascii, '0', '9') |
			bytesIn(ascii, '-', '.') | bytesIn(ascii, '_', '_')) &^ w
		dots := bytesIn(ascii, '.', '.') &^ w
		n := 8 // host bytes in w
		if stop := ^valid & highBits; stop != 0 {
			n = bits.TrailingZeros64(stop) >> 3
			dots &= 1<<(8*n) - 1
		}
		if (dots<<8|prevDots>>56)&dots != 0 {
			return i, lastDot, false // an empty label
		}
		if dots != 0 {
			lastDot = i + (63-bits.LeadingZeros64(dots))>>3
		}
		prevDots, i = dots, i+n
		if n < 8 {
			if i < len(s) && s[i] != ':' {
				return i, lastDot, false // a byte no host name holds
			}
			break
		}
	}
	n := i - start
	return i, lastDot, n > 0 && n <= 253 && (n <= 63 || labelsFit(s[start:i]))
}

// labelsFit reports whether every label of host is at most 63 bytes.
func labelsFit(host string) bool {
	for host != "" {
		label, rest, _ := strings.Cut(host, ".")
		if len(label) > 63 {
			return false
		}
		host = rest
	}
	return true
}

// schemeByte holds the bytes of a scheme after its first letter.
var schemeByte = func() (s [256]bool) {
	for c := range 256 {
		b := byte(c)
		s[c] = isLowerAlpha(b) || isDigit(b) || b == '+' || b == '-' || b == '.'
	}
	return s
}()

// IsIPv6Literal reports whether s, without its brackets, is an IPv6
// address as browsers serialize it: lower case, compressed, with no zone.
func IsIPv6Literal(s string) bool {
	if s == "" || len(s) > 45 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && !(c >= 'a' && c <= 'f') && c != ':' && c != '.' {
			return false
		}
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && a.Zone() == "" && a.String() == s
}

// IsPort reports whether s is a port as browsers serialize it: 1 to 65535
// in decimal, with no leading zero.
func IsPort(s string) bool {
	if s == "" || len(s) > 5 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n > 0 && n <= 65535
}

// IsDefaultPort reports whether port is scheme's default port, which a
// serialized origin leaves out.
func IsDefaultPort(scheme, port string) bool {
	switch scheme {
	case "http", "ws":
		return port == "80"
	case "https", "wss":
		return port == "443"
	}
	return false
}

func isLowerAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }

// LastLabel returns the last label of a host name, a trailing dot aside.
func LastLabel(host string) string {
	host = strings.TrimSuffix(host, ".")
	return host[strings.LastIndexByte(host, '.')+1:]
}
