package importer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The policy file is written by hand, so that it reads like one a person
// wrote: block lists, a comment naming where each key came from, and quotes
// only where YAML needs them.
//
// yaml/v3's encoder (yaml.Node with LineComment) would build the same
// structure in as many lines, but writes a file that is worse to review:
// one space before a comment (yamllint's default asks for two), invisible
// characters such as U+00A0 and U+2028 unescaped, on, yes and y unquoted
// (booleans to YAML 1.1 readers), and a key's line comment put on the line
// of the key after it when the value is a flow sequence. So the file is
// written here, and YAMLString is checked against yaml/v3's reader
// (TestYAMLString, FuzzYAMLString).

// WriteScalar writes "indent name: value  # comment" and a newline; the
// comment is left out when empty.
func WriteScalar(b *strings.Builder, indent, name, value, comment string) {
	fmt.Fprintf(b, "%s%s: %s", indent, name, value)
	if comment != "" {
		b.WriteString("  # " + CommentSafe(comment))
	}
	b.WriteByte('\n')
}

// WriteFlowList writes a list key on one line ("name: [a, b]  # comment")
// and reports true, or writes nothing and reports false when the line would
// be longer than maxLen bytes (the caller then writes a block list).
func WriteFlowList(b *strings.Builder, indent, name string, values []string, comment string, maxLen int) bool {
	flow := make([]string, len(values))
	for j, v := range values {
		flow[j] = YAMLString(v)
	}
	line := "[" + strings.Join(flow, ", ") + "]"
	if len(name)+len(line) > maxLen {
		return false
	}
	WriteScalar(b, indent, name, line, comment)
	return true
}

// WriteBlockList writes a list key with one entry per line. comments, when
// not nil, holds a comment for each entry ("" for none).
func WriteBlockList(b *strings.Builder, indent, name string, values []string, comment string, comments []string) {
	if len(values) == 0 {
		WriteScalar(b, indent, name, "[]", comment)
		return
	}
	fmt.Fprintf(b, "%s%s:", indent, name)
	if comment != "" {
		b.WriteString("  # " + CommentSafe(comment))
	}
	b.WriteByte('\n')
	for j, v := range values {
		fmt.Fprintf(b, "%s  - %s", indent, YAMLString(v))
		if comments != nil && comments[j] != "" {
			b.WriteString("  # " + CommentSafe(comments[j]))
		}
		b.WriteByte('\n')
	}
}

// CommentSafe makes s safe inside a YAML comment: s as it is when every
// rune is printable, or Go-quoted.
func CommentSafe(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(s)
		}
	}
	return s
}

// YAMLString returns s as a YAML scalar that reads back as the string s:
// plain when nothing in it means anything to YAML, single-quoted when it is
// printable, double-quoted with escapes otherwise.
func YAMLString(s string) string {
	if plainSafe(s) {
		return s
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0xfeff || r >= 0x80 && !unicode.IsPrint(r) || r == utf8.RuneError {
			return strconv.Quote(s)
		}
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func plainSafe(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~":
		return false
	}
	if c := s[0]; !isASCIILetter(c) && c != '/' {
		return false
	}
	if s[len(s)-1] == ':' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isASCIILetter(c) && !isDigit(c) && !strings.ContainsRune("-._/:~+*@=", rune(c)) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool       { return c >= '0' && c <= '9' }
func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
