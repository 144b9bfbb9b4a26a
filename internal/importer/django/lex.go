package django

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on what the tokenizer accepts. CPython has the same kinds of limits
// (100 indentation levels, 200 nested brackets); they keep a hostile file
// from costing more than its size.
const (
	maxIndentLevels = 100
	maxBracketDepth = 200
	maxFStringDepth = 20
)

type tokKind uint8

const (
	tEOF tokKind = iota
	tNewline
	tIndent
	tDedent
	tName
	tNumber
	tString
	tOp
)

// token is one Python token, kept small: a settings file of MaxFileSize
// bytes can hold a token for every other byte. Strings carry their decoded
// value; the parser joins adjacent ones ("a" "b").
type token struct {
	text  string // the name, operator or number as written; a string's decoded value, or why it has none
	line  int
	kind  tokKind
	flags strFlags
}

// strFlags describe a string token.
type strFlags uint8

const (
	fBytes  strFlags = 1 << iota // b"..."
	fFormat                      // f"..." or t"...": computed at run time
	fUnread                      // text says why the value cannot be known: \N{...}
)

// SyntaxError reports a settings file that is not Python the importer can
// tokenize: an unterminated string, unbalanced brackets, bad indentation.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: invalid Python: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: invalid Python: %s", e.File, e.Msg)
}

// lineError is where and why the tokenizer or the parser stopped.
type lineError struct {
	line int
	msg  string
	// stmt is the line of the top-level statement the error is in: the
	// lines before it hold whole statements, which tokenize and parse. 0 when
	// unknown (a null byte or invalid UTF-8 is found before tokenizing).
	stmt int
}

type bracket struct {
	ch   byte
	line int
}

type lexer struct {
	src     string
	pos     int
	line    int
	toks    []token
	parens  []bracket
	indents []int
	bol     bool // at the beginning of a logical line
	stmt    int  // the line of the last logical line that started in the first column
}

// tokenize splits src into tokens, with NEWLINE, INDENT and DEDENT as
// Python's tokenizer makes them. It reads every byte at most a bounded
// number of times.
func tokenize(src string) (toks []token, err *lineError) {
	if i := strings.IndexByte(src, 0); i >= 0 {
		return nil, &lineError{line: lineAt(src, i), msg: "source code cannot contain null bytes"}
	}
	if !utf8.ValidString(src) {
		for i, r := range src {
			if r == utf8.RuneError {
				if _, size := utf8.DecodeRuneInString(src[i:]); size <= 1 {
					return nil, &lineError{line: lineAt(src, i), msg: "the file is not valid UTF-8 (save it as UTF-8)"}
				}
			}
		}
	}
	src = strings.TrimPrefix(src, "\uFEFF")
	lx := &lexer{src: src, line: 1, indents: []int{0}, bol: true, stmt: 1}
	defer func() {
		if r := recover(); r != nil {
			le, ok := r.(*lineError)
			if !ok {
				panic(r)
			}
			le.stmt = lx.stmt
			toks, err = nil, le
		}
	}()
	lx.run()
	return lx.toks, nil
}

func lineAt(src string, i int) int { return 1 + strings.Count(src[:i], "\n") }

func (lx *lexer) fail(line int, format string, args ...any) {
	panic(&lineError{line: line, msg: fmt.Sprintf(format, args...)})
}

func (lx *lexer) emit(kind tokKind, text string, line int) {
	lx.toks = append(lx.toks, token{kind: kind, text: text, line: line})
}

func (lx *lexer) run() {
	src := lx.src
	for {
		if lx.bol && len(lx.parens) == 0 {
			if !lx.indentation() {
				break
			}
			if len(lx.indents) == 1 {
				lx.stmt = lx.line
			}
		}
		if lx.pos >= len(src) {
			break
		}
		c := src[lx.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\f':
			lx.pos++
		case c == '#':
			lx.skipComment()
		case c == '\\':
			n := newlineLen(src, lx.pos+1)
			if n == 0 {
				if lx.pos+1 >= len(src) {
					lx.fail(lx.line, "unexpected end of file after line continuation character")
				}
				lx.fail(lx.line, "unexpected character after line continuation character")
			}
			lx.pos += 1 + n
			lx.line++
		case c == '\n' || c == '\r':
			lx.pos += newlineLen(src, lx.pos)
			if len(lx.parens) == 0 {
				lx.emit(tNewline, "", lx.line)
				lx.bol = true
			}
			lx.line++
		case c == '"' || c == '\'':
			lx.string("")
		case isDigit(c) || c == '.' && lx.pos+1 < len(src) && isDigit(src[lx.pos+1]):
			lx.number()
		case c < utf8.RuneSelf && (isASCIILetter(c) || c == '_'), c >= utf8.RuneSelf:
			lx.name()
		default:
			lx.op()
		}
	}
	if len(lx.parens) > 0 {
		b := lx.parens[len(lx.parens)-1]
		lx.fail(b.line, "'%c' was never closed", b.ch)
	}
	if n := len(lx.toks); n > 0 && lx.toks[n-1].kind != tNewline && lx.toks[n-1].kind != tDedent {
		lx.emit(tNewline, "", lx.line)
	}
	for len(lx.indents) > 1 {
		lx.indents = lx.indents[:len(lx.indents)-1]
		lx.emit(tDedent, "", lx.line)
	}
	lx.emit(tEOF, "", lx.line)
}

// indentation measures the indentation of the next non-blank line and emits
// INDENT or DEDENTs. It returns false at the end of the file.
func (lx *lexer) indentation() bool {
	src := lx.src
	for {
		col := lx.leadingSpace()
		if lx.pos >= len(src) {
			return false
		}
		switch src[lx.pos] {
		case '#':
			lx.skipComment()
			continue
		case '\n', '\r':
			lx.pos += newlineLen(src, lx.pos)
			lx.line++
			continue
		}
		// A statement that starts with a line continuation is measured here,
		// at its first physical line, as Python measures it.
		lx.bol = false
		top := lx.indents[len(lx.indents)-1]
		switch {
		case col > top:
			if len(lx.indents) > maxIndentLevels {
				lx.fail(lx.line, "too many levels of indentation")
			}
			lx.indents = append(lx.indents, col)
			lx.emit(tIndent, "", lx.line)
		case col < top:
			for col < lx.indents[len(lx.indents)-1] {
				lx.indents = lx.indents[:len(lx.indents)-1]
				lx.emit(tDedent, "", lx.line)
			}
			if col != lx.indents[len(lx.indents)-1] {
				lx.fail(lx.line, "unindent does not match any outer indentation level")
			}
		}
		return true
	}
}

// leadingSpace moves past the spaces, tabs and form feeds at the start of a
// line and returns the column they reach, a tab going to the next multiple
// of 8 as in CPython.
func (lx *lexer) leadingSpace() int {
	col := 0
	for ; lx.pos < len(lx.src); lx.pos++ {
		switch lx.src[lx.pos] {
		case ' ':
			col++
		case '\t':
			col = (col/8 + 1) * 8
		case '\f':
			col = 0
		default:
			return col
		}
	}
	return col
}

func (lx *lexer) skipComment() {
	for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' && lx.src[lx.pos] != '\r' {
		lx.pos++
	}
}

// newlineLen returns the length of the line ending at src[i], or 0.
func newlineLen(src string, i int) int {
	switch {
	case i >= len(src):
		return 0
	case src[i] == '\n':
		return 1
	case src[i] == '\r' && i+1 < len(src) && src[i+1] == '\n':
		return 2
	case src[i] == '\r':
		return 1
	}
	return 0
}

func isDigit(c byte) bool       { return c >= '0' && c <= '9' }
func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isIdentRune(r rune, first bool) bool {
	if r < utf8.RuneSelf {
		c := byte(r)
		return isASCIILetter(c) || c == '_' || !first && isDigit(c)
	}
	return unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_ID_Start, r) ||
		!first && (unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r) ||
			unicode.Is(unicode.Pc, r) || unicode.Is(unicode.Other_ID_Continue, r))
}

func (lx *lexer) name() {
	src, start := lx.src, lx.pos
	for lx.pos < len(src) {
		r, size := utf8.DecodeRuneInString(src[lx.pos:])
		if !isIdentRune(r, lx.pos == start) {
			break
		}
		lx.pos += size
	}
	if lx.pos == start {
		r, _ := utf8.DecodeRuneInString(src[lx.pos:])
		lx.fail(lx.line, "invalid character %q (U+%04X)", r, r)
	}
	word := src[start:lx.pos]
	if lx.pos < len(src) && (src[lx.pos] == '"' || src[lx.pos] == '\'') && isStringPrefix(word) {
		lx.string(strings.ToLower(word))
		return
	}
	lx.emit(tName, word, lx.line)
}

func isStringPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "r", "u", "b", "f", "t", "br", "rb", "fr", "rf", "tr", "rt":
		return true
	}
	return false
}

// string scans a string literal starting at the quote, with the given
// (lower-case) prefix.
func (lx *lexer) string(prefix string) {
	line := lx.line
	raw := strings.Contains(prefix, "r")
	var flags strFlags
	if strings.Contains(prefix, "b") {
		flags |= fBytes
	}
	if strings.ContainsAny(prefix, "ft") {
		flags |= fFormat
	}
	body := lx.scanString(0, flags&fFormat != 0)
	var value string
	switch {
	case flags&fFormat != 0:
		value = body
	case raw || flags&fBytes != 0:
		value = normalizeNewlines(body)
	default:
		var unread string
		var bad *lineError
		value, unread, bad = decodeEscapes(body, line)
		if bad != nil {
			panic(bad)
		}
		if unread != "" {
			value, flags = unread, flags|fUnread
		}
	}
	lx.toks = append(lx.toks, token{kind: tString, text: value, line: line, flags: flags})
}

// scanString moves past a string literal whose opening quote is at lx.pos
// and returns its body as written. In f-strings it skips replacement fields,
// which may hold strings of their own (Python 3.12).
func (lx *lexer) scanString(depth int, fstr bool) string {
	if depth > maxFStringDepth {
		lx.fail(lx.line, "f-string nested too deeply")
	}
	src, line := lx.src, lx.line
	q := src[lx.pos]
	tripleAt := func(i int) bool { return i+2 < len(src) && src[i] == q && src[i+1] == q && src[i+2] == q }
	triple := tripleAt(lx.pos)
	if triple {
		lx.pos += 3
	} else {
		lx.pos++
	}
	start := lx.pos
	unterminated := func() {
		if triple {
			lx.fail(line, "unterminated triple-quoted string literal")
		}
		lx.fail(line, "unterminated string literal")
	}
	for {
		if lx.pos >= len(src) {
			unterminated()
		}
		c := src[lx.pos]
		switch {
		case c == '\\':
			if lx.pos+1 >= len(src) {
				unterminated()
			}
			if n := newlineLen(src, lx.pos+1); n > 0 {
				lx.pos += 1 + n
				lx.line++
				continue
			}
			lx.pos += 2
		case c == '\n' || c == '\r':
			if !triple {
				unterminated()
			}
			lx.pos += newlineLen(src, lx.pos)
			lx.line++
		case c == q && (!triple || tripleAt(lx.pos)):
			body := src[start:lx.pos]
			if triple {
				lx.pos += 3
			} else {
				lx.pos++
			}
			return body
		case fstr && c == '{':
			if lx.pos+1 < len(src) && src[lx.pos+1] == '{' {
				lx.pos += 2
				continue
			}
			lx.pos++
			lx.replacementField(depth, triple, unterminated)
		default:
			lx.pos++
		}
	}
}

// replacementField skips an f-string's {expression!conv:spec} up to its
// closing brace.
func (lx *lexer) replacementField(depth int, triple bool, unterminated func()) {
	src := lx.src
	nest := 0
	for {
		if lx.pos >= len(src) {
			unterminated()
		}
		c := src[lx.pos]
		switch {
		case c == '"' || c == '\'':
			lx.scanString(depth+1, true)
		case c == '\n' || c == '\r':
			if !triple {
				unterminated()
			}
			lx.pos += newlineLen(src, lx.pos)
			lx.line++
		case c == '{' || c == '(' || c == '[':
			nest++
			lx.pos++
		case c == ')' || c == ']':
			nest--
			lx.pos++
		case c == '}':
			lx.pos++
			if nest == 0 {
				return
			}
			nest--
		default:
			lx.pos++
		}
	}
}

func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// decodeEscapes decodes the backslash escapes of a str literal's body as
// Python does. An escape Python does not know keeps its backslash (so "\."
// in a regex stays "\."). unread is set when the value cannot be known
// without Python (\N{...} names a character by its Unicode name).
func decodeEscapes(body string, line int) (value, unread string, err *lineError) {
	body = normalizeNewlines(body)
	if !strings.Contains(body, `\`) {
		return body, "", nil
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '\n' {
			line++
		}
		if c != '\\' || i+1 >= len(body) {
			b.WriteByte(c)
			continue
		}
		i++
		e := body[i]
		switch e {
		case '\n':
			line++
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i
			for j < len(body) && j < i+3 && body[j] >= '0' && body[j] <= '7' {
				j++
			}
			n, _ := strconv.ParseUint(body[i:j], 8, 32)
			b.WriteRune(rune(n))
			i = j - 1
		case 'x', 'u', 'U':
			width := 2
			switch e {
			case 'u':
				width = 4
			case 'U':
				width = 8
			}
			hex := body[i+1 : min(i+1+width, len(body))]
			// Base 16 takes neither a sign nor underscores, as Python's
			// escapes do not.
			n, perr := strconv.ParseUint(hex, 16, 32)
			if len(hex) < width || perr != nil {
				return "", "", &lineError{line: line, msg: fmt.Sprintf(`truncated \%c escape in a string`, e)}
			}
			if n > unicode.MaxRune {
				return "", "", &lineError{line: line, msg: `illegal Unicode character in a \U escape`}
			}
			b.WriteRune(rune(n))
			i += width
		case 'N':
			if i+1 < len(body) && body[i+1] == '{' {
				if end := strings.IndexByte(body[i:], '}'); end > 0 {
					unread = fmt.Sprintf(`names a character with \N%s`, body[i+1:i+end+1])
					i += end
					continue
				}
			}
			return "", "", &lineError{line: line, msg: `malformed \N character escape in a string`}
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), unread, nil
}

func (lx *lexer) number() {
	src, start := lx.src, lx.pos
	if src[lx.pos] == '0' && lx.pos+1 < len(src) && strings.IndexByte("xXoObB", src[lx.pos+1]) >= 0 {
		lx.pos += 2
		for lx.pos < len(src) && (isDigit(src[lx.pos]) || isASCIILetter(src[lx.pos]) && strings.IndexByte("abcdefABCDEF", src[lx.pos]) >= 0 || src[lx.pos] == '_') {
			lx.pos++
		}
	} else {
		for lx.pos < len(src) && (isDigit(src[lx.pos]) || src[lx.pos] == '_') {
			lx.pos++
		}
		if lx.pos < len(src) && src[lx.pos] == '.' {
			lx.pos++
			for lx.pos < len(src) && (isDigit(src[lx.pos]) || src[lx.pos] == '_') {
				lx.pos++
			}
		}
		if lx.pos < len(src) && (src[lx.pos] == 'e' || src[lx.pos] == 'E') {
			j := lx.pos + 1
			if j < len(src) && (src[j] == '+' || src[j] == '-') {
				j++
			}
			if j < len(src) && isDigit(src[j]) {
				lx.pos = j
				for lx.pos < len(src) && (isDigit(src[lx.pos]) || src[lx.pos] == '_') {
					lx.pos++
				}
			}
		}
		if lx.pos < len(src) && (src[lx.pos] == 'j' || src[lx.pos] == 'J') {
			lx.pos++
		}
	}
	lx.emit(tNumber, src[start:lx.pos], lx.line)
}

// operators, longest first.
var operators = []string{
	"**=", "//=", ">>=", "<<=", "...",
	"**", "//", ">>", "<<", "<=", ">=", "==", "!=", "->", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@=", ":=",
	"+", "-", "*", "/", "%", "@", "&", "|", "^", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ":", ".", ";", "=", "!",
}

// operatorsByByte holds the operators by their first byte, longest first.
var operatorsByByte = func() (m [256][]string) {
	for _, op := range operators {
		m[op[0]] = append(m[op[0]], op)
	}
	return m
}()

var closers = map[byte]byte{')': '(', ']': '[', '}': '{'}

func (lx *lexer) op() {
	src := lx.src
	for _, op := range operatorsByByte[src[lx.pos]] {
		if !strings.HasPrefix(src[lx.pos:], op) {
			continue
		}
		c := op[0]
		switch c {
		case '(', '[', '{':
			if len(lx.parens) >= maxBracketDepth {
				lx.fail(lx.line, "too many nested parentheses")
			}
			lx.parens = append(lx.parens, bracket{c, lx.line})
		case ')', ']', '}':
			if len(lx.parens) == 0 {
				lx.fail(lx.line, "unmatched '%c'", c)
			}
			open := lx.parens[len(lx.parens)-1]
			if open.ch != closers[c] {
				if open.line != lx.line {
					lx.fail(lx.line, "closing parenthesis '%c' does not match opening parenthesis '%c' on line %d", c, open.ch, open.line)
				}
				lx.fail(lx.line, "closing parenthesis '%c' does not match opening parenthesis '%c'", c, open.ch)
			}
			lx.parens = lx.parens[:len(lx.parens)-1]
		}
		lx.emit(tOp, op, lx.line)
		lx.pos += len(op)
		return
	}
	r, _ := utf8.DecodeRuneInString(src[lx.pos:])
	lx.fail(lx.line, "invalid character %q (U+%04X)", r, r)
}
