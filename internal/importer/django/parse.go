package django

import (
	"fmt"
	"strings"
)

// The parser reads the statement structure of the whole file (blocks,
// assignments, imports, if statements) but parses expressions only where the
// importer needs their value: the right-hand sides of CORS_* settings and the
// conditions of if statements. Other code is skipped by token, so Python the
// importer does not understand is no error as long as it tokenizes.

type stmtKind uint8

const (
	sOther     stmtKind = iota
	sAssign             // names = value; targets holds the simple names
	sAugAssign          // name op= value
	sMethod             // CORS_X.method(args)
	sDel                // del names
	sImport             // import a.b [as c]; from m import names
	sIf                 // if/elif/else
	sCompound           // for, while, try, with, match, def, class: not run
)

type stmt struct {
	kind stmtKind
	line int

	// sAssign, sAugAssign, sDel: the simple names assigned or deleted.
	targets []string
	// unsure holds names an assignment changes in a way the importer does not
	// follow: CORS_X[0] = ..., a, CORS_X = ..., CORS_X.attr = ...
	unsure []string
	value  *expr  // sAssign, sAugAssign; nil when not parsed
	op     string // sAugAssign: "+=", ...; sMethod: the method name
	args   []*expr

	// sImport
	module  string        // "from" module, with leading dots; "" for plain import
	imports []importAlias // imported names (from) or modules (import)
	star    bool

	// sIf
	clauses []clause

	// sCompound
	keyword string
	body    []*stmt // every block of the compound statement, in order
}

type importAlias struct{ name, as string }

type clause struct {
	line int
	cond *expr // nil for else
	body []*stmt
}

type parser struct {
	toks []token
	pos  int
	stmt int // the line of the top-level statement being parsed
}

// parseFile parses the statements of a tokenized file.
func parseFile(toks []token) (stmts []*stmt, err *lineError) {
	p := &parser{toks: toks}
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(*lineError)
			if !ok {
				panic(r)
			}
			stmts, err = nil, pe
		}
	}()
	stmts = p.block(true)
	return stmts, nil
}

func (p *parser) fail(line int, format string, args ...any) {
	panic(&lineError{line: line, msg: fmt.Sprintf(format, args...), stmt: p.stmt})
}

func (p *parser) peek() token { return p.toks[p.pos] }

// block parses statements up to the DEDENT that ends the block (or the end
// of the file at the top level).
func (p *parser) block(top bool) []*stmt {
	var out []*stmt
	for {
		t := p.peek()
		if top && t.kind != tNewline {
			p.stmt = t.line
		}
		switch t.kind {
		case tEOF:
			if !top {
				p.fail(t.line, "unexpected end of file in an indented block")
			}
			return out
		case tDedent:
			if top {
				p.fail(t.line, "unindent does not match any outer indentation level")
			}
			p.pos++
			return out
		case tIndent:
			p.fail(t.line, "unexpected indent")
		case tNewline:
			p.pos++
			continue
		}
		out = append(out, p.statement()...)
	}
}

// line returns the tokens of the logical line at p.pos, without its NEWLINE,
// and moves past it.
func (p *parser) line() []token {
	start := p.pos
	for p.toks[p.pos].kind != tNewline && p.toks[p.pos].kind != tEOF {
		p.pos++
	}
	ts := p.toks[start:p.pos]
	if p.toks[p.pos].kind == tNewline {
		p.pos++
	}
	return ts
}

var compoundKeywords = map[string]bool{
	"if": true, "while": true, "for": true, "try": true, "with": true, "def": true, "class": true, "async": true,
}

// continuations are the clauses that may follow each compound statement.
var continuations = map[string][]string{
	"if":    {"elif", "else"},
	"for":   {"else"},
	"while": {"else"},
	"async": {"else"},
	"try":   {"except", "else", "finally"},
}

func isName(t token, s string) bool { return t.kind == tName && t.text == s }
func isOp(t token, s string) bool   { return t.kind == tOp && t.text == s }

func (p *parser) statement() []*stmt {
	first := p.peek()
	ts := p.line()
	if len(ts) == 0 {
		return nil
	}
	switch {
	case first.kind == tName && (first.text == "elif" || first.text == "else" || first.text == "except" || first.text == "finally"):
		p.fail(first.line, "'%s' without a statement it belongs to", first.text)
	case first.kind == tName && compoundKeywords[first.text],
		first.kind == tName && isOp(ts[len(ts)-1], ":"): // match, case
		return []*stmt{p.compound(ts)}
	case isOp(ts[len(ts)-1], ":") && !isOp(first, "@"):
		p.fail(first.line, "invalid syntax: a statement cannot start with %s", describe(first))
	}
	return simpleStatements(ts)
}

// headerColon returns the index of the colon that ends a compound
// statement's header: the first one outside brackets.
func headerColon(ts []token) int {
	depth := 0
	for i, t := range ts {
		depth += bracketStep(t)
		if depth == 0 && isOp(t, ":") {
			return i
		}
	}
	return -1
}

// bracketStep is how the token t changes the bracket depth: +1 for an
// opening bracket, -1 for a closing one, 0 for any other token.
func bracketStep(t token) int {
	if t.kind == tOp {
		switch t.text {
		case "(", "[", "{":
			return 1
		case ")", "]", "}":
			return -1
		}
	}
	return 0
}

// clauseBody parses the body of the clause whose header is ts: an indented
// block, or simple statements after the colon on the same line.
func (p *parser) clauseBody(ts []token) ([]token, []*stmt) {
	kw := ts[0]
	colon := headerColon(ts)
	if colon < 0 {
		p.fail(kw.line, "expected ':' after the '%s' statement", kw.text)
	}
	header := ts[1:colon]
	if colon < len(ts)-1 {
		return header, simpleStatements(ts[colon+1:])
	}
	if p.peek().kind != tIndent {
		p.fail(p.peek().line, "expected an indented block after the '%s' statement on line %d", kw.text, kw.line)
	}
	p.pos++
	return header, p.block(false)
}

func (p *parser) compound(ts []token) *stmt {
	kw := ts[0]
	keyword := kw.text
	header, body := p.clauseBody(ts)
	if keyword != "if" {
		s := &stmt{kind: sCompound, line: kw.line, keyword: keyword, body: body}
		for p.continues(keyword) {
			_, more := p.clauseBody(p.line())
			s.body = append(s.body, more...)
		}
		return s
	}
	s := &stmt{kind: sIf, line: kw.line}
	s.clauses = append(s.clauses, clause{line: kw.line, cond: parseExprTokens(header), body: body})
	for p.continues("if") {
		cts := p.line()
		header, body := p.clauseBody(cts)
		c := clause{line: cts[0].line, body: body}
		if cts[0].text == "elif" {
			c.cond = parseExprTokens(header)
		}
		s.clauses = append(s.clauses, c)
		if cts[0].text == "else" {
			break
		}
	}
	return s
}

// continues reports whether the next statement is a clause of the compound
// statement keyword (elif, else, except, finally).
func (p *parser) continues(keyword string) bool {
	t := p.peek()
	if t.kind != tName {
		return false
	}
	for _, c := range continuations[keyword] {
		if t.text == c {
			return true
		}
	}
	return false
}

// splitTop splits ts at the operator sep outside brackets. With stopAtLambda,
// splitting ends at the first lambda (its default values use "=").
func splitTop(ts []token, sep string, stopAtLambda bool) [][]token {
	var out [][]token
	depth, start := 0, 0
	for i, t := range ts {
		if stopAtLambda && depth == 0 && isName(t, "lambda") {
			break
		}
		depth += bracketStep(t)
		if depth == 0 && isOp(t, sep) {
			out = append(out, ts[start:i])
			start = i + 1
		}
	}
	return append(out, ts[start:])
}

func simpleStatements(ts []token) []*stmt {
	var out []*stmt
	for _, part := range splitTop(ts, ";", false) {
		if len(part) > 0 {
			out = append(out, simpleStatement(part))
		}
	}
	return out
}

var augOps = map[string]bool{
	"+=": true, "-=": true, "*=": true, "/=": true, "//=": true, "%=": true, "**=": true,
	">>=": true, "<<=": true, "&=": true, "|=": true, "^=": true, "@=": true,
}

// isSetting reports whether a name is one the importer follows: a CORS_*
// setting.
func isSetting(name string) bool { return strings.HasPrefix(name, "CORS_") }

func simpleStatement(ts []token) *stmt {
	first := ts[0]
	s := &stmt{kind: sOther, line: first.line}
	if first.kind == tName {
		switch first.text {
		case "import", "from":
			return importStatement(ts)
		case "del":
			s.kind = sDel
			for _, part := range splitTop(ts[1:], ",", false) {
				if len(part) == 1 && part[0].kind == tName {
					s.targets = append(s.targets, part[0].text)
				} else {
					s.unsure = append(s.unsure, baseNames(part)...)
				}
			}
			return s
		case "pass", "break", "continue", "return", "raise", "global", "nonlocal", "assert":
			return s
		}
	}
	// Augmented assignment: the first top-level augmented operator.
	depth := 0
	for i, t := range ts {
		depth += bracketStep(t)
		if depth == 0 && t.kind == tOp && augOps[t.text] {
			target := ts[:i]
			if len(target) == 1 && target[0].kind == tName {
				s.kind, s.op, s.targets = sAugAssign, t.text, []string{target[0].text}
				if isSetting(target[0].text) {
					s.value = parseExprTokens(ts[i+1:])
				}
			} else {
				s.unsure = baseNames(target)
			}
			return s
		}
	}
	parts := splitTop(ts, "=", true)
	if len(parts) > 1 {
		s.kind = sAssign
		parse := false
		for i, target := range parts[:len(parts)-1] {
			if i == 0 {
				// An annotated assignment: NAME: type = value.
				if c := headerColon(target); c >= 0 {
					target = target[:c]
				}
			}
			if len(target) == 1 && target[0].kind == tName {
				s.targets = append(s.targets, target[0].text)
				parse = parse || isSetting(target[0].text)
			} else {
				s.unsure = append(s.unsure, baseNames(target)...)
			}
		}
		if parse {
			s.value = parseExprTokens(parts[len(parts)-1])
		}
		return s
	}
	// CORS_X.append(...) and other method calls on a setting.
	// A bare name or an annotation without a value (CORS_X: list) changes
	// nothing; another call on a setting is not followed.
	if first.kind == tName && isSetting(first.text) {
		e := parseExprTokens(ts)
		if e.kind == eCall && e.fn.kind == eName && strings.HasPrefix(e.fn.s, first.text+".") {
			method := strings.TrimPrefix(e.fn.s, first.text+".")
			s.kind, s.targets, s.op, s.args, s.value = sMethod, []string{first.text}, method, e.subs, e
		}
	}
	return s
}

// baseNames returns the names an assignment target changes: those outside
// brackets not after a dot (CORS_X in CORS_X[0] or CORS_X.y), and every name
// of a parenthesized or bracketed target list.
func baseNames(ts []token) []string {
	var out []string
	depth := 0
	list := len(ts) > 0 && (isOp(ts[0], "(") || isOp(ts[0], "["))
	for i, t := range ts {
		depth += bracketStep(t)
		if t.kind == tName && (depth == 0 || list) && (i == 0 || !isOp(ts[i-1], ".")) {
			out = append(out, t.text)
		}
	}
	return out
}

func importStatement(ts []token) *stmt {
	s := &stmt{kind: sImport, line: ts[0].line}
	i := 1
	dotted := func() string {
		var b strings.Builder
		for i < len(ts) {
			t := ts[i]
			if t.kind == tName && t.text != "import" && t.text != "as" || isOp(t, ".") || isOp(t, "...") {
				b.WriteString(t.text)
				i++
				continue
			}
			break
		}
		return b.String()
	}
	aliases := func() {
		for i < len(ts) {
			if isOp(ts[i], "(") || isOp(ts[i], ")") || isOp(ts[i], ",") {
				i++
				continue
			}
			if isOp(ts[i], "*") {
				s.star = true
				i++
				continue
			}
			name := dotted()
			if name == "" {
				return
			}
			a := importAlias{name: name}
			if i+1 < len(ts) && isName(ts[i], "as") && ts[i+1].kind == tName {
				a.as = ts[i+1].text
				i += 2
			}
			s.imports = append(s.imports, a)
		}
	}
	if ts[0].text == "from" {
		s.module = dotted()
		if i < len(ts) && isName(ts[i], "import") {
			i++
			aliases()
		}
		return s
	}
	aliases()
	return s
}

// Expressions.

type exprKind uint8

const (
	eOpaque  exprKind = iota // something the importer does not evaluate; reason says what
	eStr                     // s
	eBytes                   // a bytes literal
	eFString                 // an f-string
	eNum                     // s as written
	eTrue
	eFalse
	eNone
	eName    // s: a name or dotted name (os.environ)
	eCall    // fn(subs...); kw marks keyword arguments
	eIndex   // subs[0][...]; s is the key when it is one string literal
	eAttr    // subs[0].s: an attribute of a computed value
	eList    // [subs...]
	eTuple   // (subs...)
	eStar    // *subs[0]
	eBinary  // subs[0] op subs[1]
	eUnary   // op subs[0]
	eCompare // subs[0] op subs[1] (op may be "is not", "not in")
)

type expr struct {
	kind   exprKind
	line   int
	s      string // value, name or operator
	unread string // eStr: why its value cannot be known
	fn     *expr
	subs   []*expr
	kw     []string // eCall: keyword of each argument, "" for positional
	height int
}

// maxExprHeight bounds the depth of an expression tree, so that evaluating
// it cannot exhaust the stack (CPython refuses such expressions too), and
// maxExprDepth the parser's own recursion (- - - 1, not not x).
const (
	maxExprHeight = 200
	maxExprDepth  = 1000
)

type exprParser struct {
	ts    []token
	i     int
	depth int
}

// enter counts a level of recursion; leave it with defer p.leave().
func (p *exprParser) enter() {
	p.depth++
	if p.depth > maxExprDepth {
		p.fail("is nested too deeply")
	}
}

func (p *exprParser) leave() { p.depth-- }

type exprFail struct{ reason string }

// parseExprTokens parses an expression (a tuple without parentheses
// included). What it cannot parse becomes an eOpaque node saying why.
func parseExprTokens(ts []token) (e *expr) {
	line := 0
	if len(ts) > 0 {
		line = ts[0].line
	}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(*exprFail)
			if !ok {
				panic(r)
			}
			e = &expr{kind: eOpaque, line: line, s: f.reason}
		}
	}()
	if len(ts) == 0 {
		return &expr{kind: eOpaque, line: line, s: "is missing"}
	}
	p := &exprParser{ts: ts}
	e = p.starExprs(len(ts))
	if p.i < len(ts) {
		p.fail("is not an expression the importer reads (unexpected %s)", describe(ts[p.i]))
	}
	return e
}

func describe(t token) string {
	switch t.kind {
	case tString:
		return "string"
	case tNumber:
		return "number " + t.text
	}
	return fmt.Sprintf("%q", t.text)
}

func (p *exprParser) fail(format string, args ...any) {
	panic(&exprFail{fmt.Sprintf(format, args...)})
}

func (p *exprParser) at(end int) (token, bool) {
	if p.i >= end {
		return token{}, false
	}
	return p.ts[p.i], true
}

func (p *exprParser) isOp(end int, ops ...string) bool {
	t, ok := p.at(end)
	if !ok || t.kind != tOp {
		return false
	}
	for _, op := range ops {
		if t.text == op {
			return true
		}
	}
	return false
}

func (p *exprParser) isName(end int, name string) bool {
	t, ok := p.at(end)
	return ok && t.kind == tName && t.text == name
}

func (p *exprParser) mk(kind exprKind, line int, s string, subs ...*expr) *expr {
	e := &expr{kind: kind, line: line, s: s, subs: subs, height: 1}
	for _, sub := range subs {
		e.height = max(e.height, sub.height+1)
	}
	if e.height > maxExprHeight {
		p.fail("is nested too deeply")
	}
	return e
}

// matching returns the index of the bracket closing the one at i.
func (p *exprParser) matching(i int) int {
	depth := 0
	for j := i; j < len(p.ts); j++ {
		step := bracketStep(p.ts[j])
		depth += step
		if step < 0 && depth == 0 {
			return j
		}
	}
	p.fail("has an unclosed bracket")
	return 0
}

// starExprs parses a comma-separated list up to end: a tuple if it has a
// comma.
func (p *exprParser) starExprs(end int) *expr {
	line := p.ts[p.i].line
	first := p.starOrTest(end)
	if !p.isOp(end, ",") {
		if first.kind == eStar {
			p.fail("uses a starred expression outside a list or tuple")
		}
		return first
	}
	elems := []*expr{first}
	for p.isOp(end, ",") {
		p.i++
		if p.i >= end {
			break
		}
		elems = append(elems, p.starOrTest(end))
	}
	return p.mk(eTuple, line, "", elems...)
}

func (p *exprParser) starOrTest(end int) *expr {
	if p.isOp(end, "*") {
		line := p.ts[p.i].line
		p.i++
		return p.mk(eStar, line, "", p.binary(end, 0))
	}
	return p.test(end)
}

func (p *exprParser) test(end int) *expr {
	p.enter()
	defer p.leave()
	t, ok := p.at(end)
	if !ok {
		p.fail("is incomplete")
	}
	if isName(t, "lambda") {
		// Skip the parameters up to the colon, then the body.
		depth := 0
		for p.i++; p.i < end; p.i++ {
			depth += bracketStep(p.ts[p.i])
			if depth == 0 && isOp(p.ts[p.i], ":") {
				break
			}
		}
		p.i++
		body := p.test(end)
		return p.mk(eOpaque, t.line, "is a lambda", body)
	}
	if t.kind == tName && p.i+1 < end && isOp(p.ts[p.i+1], ":=") {
		p.i += 2
		value := p.test(end)
		return p.mk(eOpaque, t.line, "is an assignment expression (:=)", value)
	}
	e := p.orTest(end)
	if p.isName(end, "if") {
		p.i++
		cond := p.orTest(end)
		if !p.isName(end, "else") {
			p.fail("is an incomplete conditional expression")
		}
		p.i++
		alt := p.test(end)
		return p.mk(eOpaque, t.line, "depends on a condition (x if c else y)", e, cond, alt)
	}
	return e
}

func (p *exprParser) orTest(end int) *expr { return p.boolOp(end, "or", p.andTest) }

func (p *exprParser) andTest(end int) *expr { return p.boolOp(end, "and", p.notTest) }

// boolOp parses operands joined by the keyword kw ("or" or "and"). Python's
// boolean operators yield one of their operands, which the importer does not
// evaluate, so each join is opaque.
func (p *exprParser) boolOp(end int, kw string, operand func(end int) *expr) *expr {
	e := operand(end)
	for p.isName(end, kw) {
		line := p.ts[p.i].line
		p.i++
		e = p.mk(eOpaque, line, "is computed with '"+kw+"'", e, operand(end))
	}
	return e
}

func (p *exprParser) notTest(end int) *expr {
	p.enter()
	defer p.leave()
	if p.isName(end, "not") {
		line := p.ts[p.i].line
		p.i++
		return p.mk(eUnary, line, "not", p.notTest(end))
	}
	return p.comparison(end)
}

func (p *exprParser) comparison(end int) *expr {
	e := p.binary(end, 0)
	for {
		t, ok := p.at(end)
		if !ok {
			return e
		}
		var op string
		switch {
		case t.kind == tOp && (t.text == "<" || t.text == ">" || t.text == "==" || t.text == ">=" || t.text == "<=" || t.text == "!="):
			op = t.text
		case isName(t, "in"):
			op = "in"
		case isName(t, "is"):
			op = "is"
			if p.i+1 < end && isName(p.ts[p.i+1], "not") {
				op = "is not"
				p.i++
			}
		case isName(t, "not") && p.i+1 < end && isName(p.ts[p.i+1], "in"):
			op = "not in"
			p.i++
		default:
			return e
		}
		p.i++
		e = p.mk(eCompare, t.line, op, e, p.binary(end, 0))
	}
}

// binaryLevels are Python's binary operators from the loosest binding.
var binaryLevels = [][]string{
	{"|"}, {"^"}, {"&"}, {"<<", ">>"}, {"+", "-"}, {"*", "/", "//", "%", "@"},
}

func (p *exprParser) binary(end, level int) *expr {
	if level == len(binaryLevels) {
		return p.factor(end)
	}
	e := p.binary(end, level+1)
	for p.isOp(end, binaryLevels[level]...) {
		t := p.ts[p.i]
		p.i++
		e = p.mk(eBinary, t.line, t.text, e, p.binary(end, level+1))
	}
	return e
}

func (p *exprParser) factor(end int) *expr {
	p.enter()
	defer p.leave()
	if p.isOp(end, "-", "+", "~") {
		t := p.ts[p.i]
		p.i++
		return p.mk(eUnary, t.line, t.text, p.factor(end))
	}
	return p.power(end)
}

func (p *exprParser) power(end int) *expr {
	p.enter()
	defer p.leave()
	if p.isName(end, "await") {
		line := p.ts[p.i].line
		p.i++
		return p.mk(eOpaque, line, "awaits a coroutine", p.power(end))
	}
	e := p.primary(end)
	if p.isOp(end, "**") {
		t := p.ts[p.i]
		p.i++
		e = p.mk(eBinary, t.line, "**", e, p.factor(end))
	}
	return e
}

func (p *exprParser) primary(end int) *expr {
	e := p.atom(end)
	for {
		t, ok := p.at(end)
		if !ok || t.kind != tOp {
			return e
		}
		switch t.text {
		case ".":
			p.i++
			name, ok := p.at(end)
			if !ok || name.kind != tName {
				p.fail("has a '.' without a name after it")
			}
			p.i++
			if e.kind == eName {
				e = &expr{kind: eName, line: e.line, s: e.s + "." + name.text, height: 1}
			} else {
				e = p.mk(eAttr, t.line, name.text, e)
			}
		case "(":
			e = p.call(e, end)
		case "[":
			close := p.matching(p.i)
			if h := tokenEnvHint(p.ts[p.i:close]); h != "" {
				p.i = close + 1
				e = p.mk(eOpaque, t.line, envReason(h), e)
				continue
			}
			key := ""
			if close == p.i+2 && p.ts[p.i+1].kind == tString && p.ts[p.i+1].flags&(fBytes|fFormat|fUnread) == 0 {
				key = p.ts[p.i+1].text
			}
			p.i = close + 1
			e = p.mk(eIndex, t.line, key, e)
		default:
			return e
		}
	}
}

func (p *exprParser) call(fn *expr, end int) *expr {
	openAt := p.i
	open := p.ts[p.i]
	close := p.matching(p.i)
	p.i++
	c := p.mk(eCall, open.line, "", fn)
	c.fn = fn
	c.subs = nil
	for p.i < close {
		kw := ""
		var arg *expr
		switch {
		case p.isOp(close, "*", "**"):
			star := p.ts[p.i]
			p.i++
			arg = p.mk(eStar, star.line, star.text, p.test(close))
		case p.i+1 < close && p.ts[p.i].kind == tName && isOp(p.ts[p.i+1], "="):
			kw = p.ts[p.i].text
			p.i += 2
			arg = p.test(close)
		default:
			arg = p.test(close)
			if p.isName(close, "for") || p.isName(close, "async") {
				arg = p.skipped(openAt, close, "is a generator expression")
				p.i = close
			}
		}
		c.subs = append(c.subs, arg)
		c.kw = append(c.kw, kw)
		c.height = max(c.height, arg.height+1)
		if p.i < close {
			if !p.isOp(close, ",") {
				p.fail("has a malformed argument list")
			}
			p.i++
		}
	}
	p.i = close + 1
	return c
}

func (p *exprParser) atom(end int) *expr {
	t, ok := p.at(end)
	if !ok {
		p.fail("is incomplete")
	}
	switch t.kind {
	case tNumber:
		p.i++
		return &expr{kind: eNum, line: t.line, s: t.text, height: 1}
	case tString:
		return p.strings(end)
	case tName:
		p.i++
		switch t.text {
		case "True":
			return &expr{kind: eTrue, line: t.line, height: 1}
		case "False":
			return &expr{kind: eFalse, line: t.line, height: 1}
		case "None":
			return &expr{kind: eNone, line: t.line, height: 1}
		case "for", "if", "else", "in", "is", "and", "or", "not", "import", "from", "as", "def", "class", "return",
			"while", "with", "try", "except", "finally", "raise", "del", "pass", "break", "continue", "global",
			"nonlocal", "assert", "elif", "lambda", "yield", "await":
			p.i--
			p.fail("is not an expression the importer reads (unexpected %q)", t.text)
		}
		return &expr{kind: eName, line: t.line, s: t.text, height: 1}
	case tOp:
		switch t.text {
		case "...":
			p.i++
			return &expr{kind: eOpaque, line: t.line, s: "is Ellipsis (...)", height: 1}
		case "(", "[":
			return p.display(end)
		case "{":
			open, close := p.i, p.matching(p.i)
			p.i = close + 1
			return p.skipped(open, close, "is a dict or set")
		}
	}
	p.fail("is not an expression the importer reads (unexpected %s)", describe(t))
	return nil
}

// skipped returns the node for the tokens from open to close, which the
// parser skips: the environment they read, if any, is the reason.
func (p *exprParser) skipped(open, close int, reason string) *expr {
	if h := tokenEnvHint(p.ts[open:close]); h != "" {
		reason = envReason(h)
	}
	return &expr{kind: eOpaque, line: p.ts[open].line, s: reason, height: 1}
}

// tokenEnvHint finds a read of the environment in tokens the parser skips.
func tokenEnvHint(ts []token) string {
	for i := 0; i+1 < len(ts); i++ {
		t, next := ts[i], ts[i+1]
		if t.kind != tName {
			continue
		}
		if t.text == "os" && isOp(next, ".") && i+2 < len(ts) && (ts[i+2].text == "environ" || ts[i+2].text == "getenv") {
			return "os." + ts[i+2].text
		}
		if envNames[t.text] && (i == 0 || !isOp(ts[i-1], ".")) && (isOp(next, "(") || isOp(next, ".") || isOp(next, "[")) {
			return t.text
		}
	}
	return ""
}

// envNames are the names that read the environment: os's, and the helpers
// of django-environ (env = environ.Env()) and python-decouple (config).
var envNames = map[string]bool{"environ": true, "getenv": true, "env": true, "config": true, "Env": true}

func envReason(hint string) string {
	return "reads the environment (" + hint + "), which only the running Django knows"
}

// strings joins adjacent string literals ("a" "b").
func (p *exprParser) strings(end int) *expr {
	first := p.ts[p.i]
	e := &expr{kind: eStr, line: first.line, height: 1}
	var b strings.Builder
	bytes := first.flags & fBytes
	for {
		t, ok := p.at(end)
		if !ok || t.kind != tString {
			break
		}
		p.i++
		if t.flags&fBytes != bytes {
			p.fail("mixes bytes and str literals")
		}
		switch {
		case t.flags&fFormat != 0:
			e.kind = eFString
		case t.flags&fUnread != 0:
			if e.unread == "" {
				e.unread = t.text
			}
			continue
		}
		b.WriteString(t.text)
	}
	if bytes != 0 {
		e.kind = eBytes
	}
	e.s = b.String()
	return e
}

// display parses a parenthesized expression, a tuple or a list.
func (p *exprParser) display(end int) *expr {
	openAt := p.i
	open := p.ts[p.i]
	close := p.matching(p.i)
	p.i++
	kind := eList
	what := "a list comprehension"
	if open.text == "(" {
		kind, what = eTuple, "a generator expression"
	}
	if p.i == close {
		p.i++
		return &expr{kind: kind, line: open.line, height: 1}
	}
	if open.text == "(" && p.isName(close, "yield") {
		p.i = close + 1
		return &expr{kind: eOpaque, line: open.line, s: "is a yield expression", height: 1}
	}
	var elems []*expr
	comma := false
	for p.i < close {
		elems = append(elems, p.starOrTest(close))
		if p.isName(close, "for") || p.isName(close, "async") {
			p.i = close + 1
			return p.skipped(openAt, close, "is "+what)
		}
		if p.i < close {
			if !p.isOp(close, ",") {
				p.fail("is not an expression the importer reads (unexpected %s)", describe(p.ts[p.i]))
			}
			comma = true
			p.i++
		}
	}
	p.i = close + 1
	if kind == eTuple && !comma {
		if elems[0].kind == eStar {
			p.fail("uses a starred expression outside a list or tuple")
		}
		return elems[0] // parenthesized
	}
	return p.mk(kind, open.line, "", elems...)
}
