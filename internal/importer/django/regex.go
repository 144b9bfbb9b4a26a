package django

import (
	"errors"
	"fmt"
	"regexp/syntax"
	"strings"
)

// translateRegex rewrites a Python re pattern in RE2 syntax where the two
// differ only in spelling (\Z is \z, \uXXXX is \x{XXXX}, {,n} is {0,n}), and
// says what RE2 lacks when the pattern needs it: lookarounds,
// backreferences, conditionals. The problem completes "the regex ...".
func translateRegex(src string) (string, string) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\\' && i+1 < len(src):
			e := src[i+1]
			switch {
			case e == 'Z' && !inClass:
				b.WriteString(`\z`)
				i++
			case (e == 'u' && i+6 <= len(src) && isHex(src[i+2:i+6])) || (e == 'U' && i+10 <= len(src) && isHex(src[i+2:i+10])):
				n := 4
				if e == 'U' {
					n = 8
				}
				b.WriteString(`\x{` + src[i+2:i+2+n] + `}`)
				i += 1 + n
			case e >= '1' && e <= '9' && !inClass:
				return "", "uses a backreference (\\" + string(e) + "), which RE2 does not support"
			default:
				b.WriteByte(c)
				b.WriteByte(e)
				i++
			}
			continue
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			// A ] right after [ or [^ is a literal.
			b.WriteByte(c)
			if strings.HasPrefix(src[i+1:], "^") {
				b.WriteByte('^')
				i++
			}
			if strings.HasPrefix(src[i+1:], "]") {
				b.WriteByte(']')
				i++
			}
			continue
		case c == '(' && strings.HasPrefix(src[i:], "(?"):
			rest := src[i+2:]
			switch {
			case strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, "!"):
				return "", "uses a lookahead, which RE2 does not support"
			case strings.HasPrefix(rest, "<=") || strings.HasPrefix(rest, "<!"):
				return "", "uses a lookbehind, which RE2 does not support"
			case strings.HasPrefix(rest, "P="):
				return "", "uses a backreference (?P=…), which RE2 does not support"
			case strings.HasPrefix(rest, "("):
				return "", "uses a conditional group (?(…), which RE2 does not support"
			case strings.HasPrefix(rest, ">"):
				return "", "uses an atomic group (?>…), which RE2 does not support"
			}
		case c == '{' && strings.HasPrefix(src[i:], "{,"):
			// Python reads {,n} as {0,n}; RE2 would read it as literal text.
			j := i + 2
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			if j > i+2 && j < len(src) && src[j] == '}' {
				b.WriteString("{0," + src[i+2:j+1])
				i = j
				continue
			}
		}
		b.WriteByte(c)
	}
	out := b.String()
	if _, err := syntax.Parse(out, syntax.Perl); err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return "", fmt.Sprintf("is not RE2 syntax (%s: %q)", se.Code, se.Expr)
		}
		return "", "is not RE2 syntax"
	}
	return out, ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// endAnchored reports whether every match of an RE2 regex ends at the end of
// the text ($ or \z), so that Python's re.match, which anchors only the
// start, accepts the same strings as a whole-string match.
func endAnchored(src string) bool {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return false
	}
	return reEndAnchored(re)
}

func reEndAnchored(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEndText:
		return true
	case syntax.OpCapture:
		return reEndAnchored(re.Sub[0])
	case syntax.OpConcat:
		return len(re.Sub) > 0 && reEndAnchored(re.Sub[len(re.Sub)-1])
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !reEndAnchored(sub) {
				return false
			}
		}
		return true
	}
	return false
}

// topLevelAlternation reports whether a regex has a | outside groups and
// classes, so that appending to it needs a group.
func topLevelAlternation(src string) bool {
	depth, inClass := 0, false
	for i := 0; i < len(src); i++ {
		switch c := src[i]; {
		case c == '\\':
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			if strings.HasPrefix(src[i+1:], "^") {
				i++
			}
			if strings.HasPrefix(src[i+1:], "]") {
				i++
			}
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			return true
		}
	}
	return false
}

// matchesEveryPath reports whether a CORS_URLS_REGEX, as re.match uses it,
// matches every path: DCH's default ^.*$ and its spellings.
func matchesEveryPath(src string) bool {
	s := strings.TrimPrefix(src, "^")
	s = strings.TrimSuffix(strings.TrimSuffix(s, "$"), `\Z`)
	switch s {
	case "", "/", ".*", "(.*)", "(?:.*)", "/?.*", "/.*":
		return true
	}
	return false
}

// fullMatchPath converts a CORS_URLS_REGEX that re.match anchors only at the
// start into one that matches whole paths the same way, by appending .* when
// it is not anchored at the end.
func fullMatchPath(re2 string) (string, bool) {
	if endAnchored(re2) {
		return re2, false
	}
	if topLevelAlternation(re2) {
		return "(?:" + re2 + ").*", true
	}
	return re2 + ".*", true
}
