package django

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/corsproc/corsproc/policy/policyfile"
)

// The interpreter runs the parsed statements the way Python would for the
// little it understands: literal values, DCH's default tuples, list
// concatenation and extension. Everything else makes the setting unreadable,
// with the reason and line, and is never guessed.

// Bounds on values, so that a hostile file costs no more than its size.
const (
	maxElems  = 10000
	maxStrLen = 16 << 10
)

type vkind uint8

const (
	vNone vkind = iota + 1
	vBool
	vInt
	vFloat
	vStr
	vPattern // re.compile(...): s is the pattern
	vList
	vTuple
	vUnknown // a value only the running Django knows (partial.go): unknown[0] says which
)

// value is a Python value the importer knows exactly.
type value struct {
	kind  vkind
	s     string
	n     int64
	b     bool
	elems []value
	line  int
	// unknown are the parts of a list (or the one of a vUnknown) the
	// importer cannot know: what the environment adds, say.
	unknown []*part
	// dflt is set on a str that is the default of an environment lookup:
	// Django uses it only while the variable is unset.
	dflt     *part
	envShape envShape // vUnknown: the type of the lookup's value
	csv      bool
}

func (v value) copy() value {
	if v.elems != nil {
		v.elems = append([]value(nil), v.elems...)
	}
	if v.unknown != nil {
		v.unknown = append([]*part(nil), v.unknown...)
	}
	return v
}

func typeName(k vkind) string {
	switch k {
	case vNone:
		return "None"
	case vBool:
		return "bool"
	case vInt:
		return "int"
	case vFloat:
		return "float"
	case vStr:
		return "str"
	case vPattern:
		return "re.Pattern"
	case vList:
		return "list"
	case vTuple:
		return "tuple"
	case vUnknown:
		return "value only the running Django knows"
	}
	return "value"
}

// unreadable is a value the importer cannot know without running Python.
type unreadable struct {
	line   int
	reason string // completes "the value ...": "reads the environment (os.environ)"
}

func badf(line int, format string, args ...any) *unreadable {
	return &unreadable{line: line, reason: fmt.Sprintf(format, args...)}
}

// setting is the state of one CORS_* name while the file runs.
type setting struct {
	name  string
	set   bool
	val   value
	bad   *unreadable
	line  int   // the statement that set it
	lines []int // line, then the statements that changed it (+=, .append)
	group int   // settings assigned one list together (A = B = [...]) share a group
}

// run is the result of interpreting the file for one value of DEBUG.
type run struct {
	debug    bool
	settings map[string]*setting
	order    []string // setting names in the order the file first sets them
	warns    []Warning
	debugIfs []int // lines of the if DEBUG statements that set CORS settings
}

type interp struct {
	run
	file    string
	names   map[string]string // local names bound in the file: the DCH default they hold, or ""
	modules map[string]string // local names bound to modules, by module path
	groups  [][]*setting      // settings assigned one list together, by group number - 1
}

func interpret(file string, stmts []*stmt, debug bool) *run {
	in := &interp{
		run:     run{debug: debug, settings: map[string]*setting{}},
		file:    file,
		names:   map[string]string{},
		modules: map[string]string{},
	}
	in.exec(stmts)
	return &in.run
}

// warn reports what the importer did not read: a value the settings may
// give that the policy lacks, to be written in by hand (import exits 1).
func (in *interp) warn(line int, name, fix, format string, args ...any) {
	in.warns = append(in.warns, Warning{File: in.file, Line: line, Setting: name, Message: fmt.Sprintf(format, args...), Fix: fix, LeftOut: true})
}

func (in *interp) get(name string) *setting {
	st, ok := in.settings[name]
	if !ok {
		st = &setting{name: name}
		in.settings[name] = st
		in.order = append(in.order, name)
	}
	return st
}

// rebind records that a local name now holds something other than a DCH
// default or a module.
func (in *interp) rebind(name string) {
	in.names[name] = ""
	delete(in.modules, name)
}

func (in *interp) exec(stmts []*stmt) {
	for _, s := range stmts {
		switch s.kind {
		case sAssign:
			in.assign(s)
		case sAugAssign:
			in.augAssign(s)
		case sMethod:
			in.method(s)
		case sDel:
			for _, name := range s.targets {
				if isSetting(name) {
					st := in.get(name)
					st.set, st.val, st.bad, st.line, st.lines, st.group = false, value{}, nil, s.line, nil, 0
				} else {
					in.rebind(name)
				}
			}
		case sImport:
			in.importStmt(s)
		case sIf:
			in.ifStmt(s)
		case sCompound:
			in.compound(s)
		}
		for _, name := range s.unsure {
			if !isSetting(name) {
				in.rebind(name)
				continue
			}
			st := in.get(name)
			st.set, st.line, st.lines, st.group = true, s.line, []int{s.line}, 0
			st.bad = badf(s.line, "is changed by a statement the importer does not follow")
		}
	}
}

func (in *interp) assign(s *stmt) {
	var v value
	var bad *unreadable
	if s.value != nil {
		v, bad = in.evalTop(s.value)
		if bad == nil {
			v, bad = asList(v)
		}
	}
	var targets []*setting
	for _, name := range s.targets {
		if isSetting(name) {
			targets = append(targets, in.get(name))
		} else {
			in.rebind(name)
		}
	}
	group := 0
	if bad == nil && v.kind == vList && len(targets) > 1 {
		in.groups = append(in.groups, targets)
		group = len(in.groups)
	}
	for _, st := range targets {
		st.set, st.line, st.lines, st.group = true, s.line, []int{s.line}, group
		if bad != nil {
			st.val, st.bad = value{}, bad
		} else {
			st.val, st.bad = v.copy(), nil
		}
	}
}

// shared makes every setting sharing st's list unreadable when the list is
// changed in place, and reports whether it did.
func (in *interp) shared(st *setting, line int) bool {
	if st.group == 0 {
		return false
	}
	var members []*setting
	var names []string
	for _, other := range in.groups[st.group-1] {
		if other.group == st.group {
			members = append(members, other)
			names = append(names, other.name)
		}
	}
	for _, other := range members {
		other.bad = badf(line, "is one list shared by %s, changed in place at line %d; the importer does not follow shared lists", strings.Join(names, " and "), line)
		other.group = 0
	}
	return true
}

func (in *interp) augAssign(s *stmt) {
	name := s.targets[0]
	if !isSetting(name) {
		in.rebind(name)
		return
	}
	st := in.get(name)
	if !st.set {
		st.set, st.line, st.lines = true, s.line, []int{s.line}
		st.bad = badf(s.line, "adds to %s, which this file does not set before (it may come from an import)", name)
		return
	}
	st.lines = append(st.lines, s.line)
	if st.bad != nil {
		return
	}
	if s.op != "+=" {
		st.bad = badf(s.line, "is changed with %s", s.op)
		return
	}
	if st.val.kind == vList {
		// What += adds to a list, the list keeps even when the importer
		// cannot know it all (partial.go).
		elems, unknown, bad := in.iterate(in.evalAdded(s.value), s.line)
		if bad != nil {
			st.bad = bad
			return
		}
		if in.shared(st, s.line) {
			return
		}
		st.val.elems = append(st.val.elems, elems...)
		st.val.unknown = append(st.val.unknown, unknown...)
		if bad := checkSize(st.val, s.line); bad != nil {
			st.bad = bad
		}
		return
	}
	rhs, bad := in.evalTop(s.value)
	if bad != nil {
		st.bad = bad
		return
	}
	switch st.val.kind {
	case vTuple:
		// env.tuple(...) extends a tuple as a tuple does: the tuple keeps
		// its values (partial.go).
		if rhs.kind == vUnknown && rhs.envShape == envList {
			rhs = value{kind: vTuple, elems: rhs.elems, unknown: rhs.unknown}
		}
		if rhs.kind == vUnknown {
			st.bad = badf(s.line, "%s", asUnreadable(rhs).reason)
			return
		}
		if rhs.kind != vTuple {
			st.bad = badf(s.line, "adds a %s to a tuple, which Python refuses (TypeError)", typeName(rhs.kind))
			return
		}
		st.val.elems, st.group = append(st.val.elems, rhs.elems...), 0
		st.val.unknown = append(st.val.unknown, rhs.unknown...)
	default:
		v, bad := add(st.val, rhs, s.line)
		if bad == nil && v.kind == vUnknown {
			bad = asUnreadable(v)
		}
		if bad != nil {
			st.bad = bad
			return
		}
		st.val = v
	}
	if bad := checkSize(st.val, s.line); bad != nil {
		st.bad = bad
	}
}

var listMutators = map[string]bool{
	"append": true, "extend": true, "insert": true, "remove": true, "pop": true, "clear": true, "sort": true, "reverse": true,
	"__iadd__": true,
}

func (in *interp) method(s *stmt) {
	name, method, call := s.targets[0], s.op, s.value
	st := in.get(name)
	if !st.set {
		st.set, st.line, st.lines = true, s.line, []int{s.line}
		st.bad = badf(s.line, "calls %s.%s(), but this file does not set %s before (it may come from an import)", name, method, name)
		return
	}
	st.lines = append(st.lines, s.line)
	if st.bad != nil {
		return
	}
	if st.val.kind != vList {
		if listMutators[method] {
			st.bad = badf(s.line, "calls .%s() on a %s, which Python refuses (AttributeError)", method, typeName(st.val.kind))
		}
		return // other methods of immutable values change nothing
	}
	// What .append(), .extend() and .insert() add to a list, the list
	// keeps even when the importer cannot know it all (partial.go).
	positional := func(n int) ([]value, *unreadable) {
		if len(s.args) != n {
			return nil, badf(s.line, "calls .%s() with %d arguments", method, len(s.args))
		}
		var out []value
		for i, a := range s.args {
			if call.kw[i] != "" || a.kind == eStar {
				return nil, badf(s.line, "calls .%s() with arguments the importer does not read", method)
			}
			out = append(out, in.evalAdded(a))
		}
		return out, nil
	}
	var add []value
	var unknown []*part
	at := len(st.val.elems)
	switch method {
	case "append":
		args, bad := positional(1)
		if bad != nil {
			st.bad = bad
			return
		}
		add, unknown = elements(args[0])
	case "extend":
		args, bad := positional(1)
		if bad == nil {
			add, unknown, bad = in.iterate(args[0], s.line)
		}
		if bad != nil {
			st.bad = bad
			return
		}
	case "insert":
		args, bad := positional(2)
		if bad == nil && args[0].kind != vInt {
			bad = badf(s.line, "calls .insert() with an index that is not an int")
		}
		if bad != nil {
			st.bad = bad
			return
		}
		// Python clamps the index to the list.
		i, n := args[0].n, int64(len(st.val.elems))
		if i < 0 {
			i += n
		}
		at = int(min(max(i, 0), n))
		add, unknown = elements(args[1])
	default:
		if listMutators[method] {
			st.bad = badf(s.line, "is changed with .%s(), which the importer does not follow", method)
		}
		return
	}
	if in.shared(st, s.line) {
		return
	}
	st.val.elems = append(st.val.elems[:at], append(add, st.val.elems[at:]...)...)
	st.val.unknown = append(st.val.unknown, unknown...)
	if bad := checkSize(st.val, s.line); bad != nil {
		st.bad = bad
	}
}

func (in *interp) importStmt(s *stmt) {
	if s.module == "" {
		for _, a := range s.imports {
			if a.as != "" {
				in.rebind(a.as)
				in.modules[a.as] = a.name
			} else {
				head, _, _ := strings.Cut(a.name, ".")
				in.rebind(head)
				in.modules[head] = head
			}
		}
		return
	}
	if s.star {
		if s.module == dchDefaults {
			in.names["default_headers"], in.names["default_methods"] = "default_headers", "default_methods"
			delete(in.modules, "default_headers")
			delete(in.modules, "default_methods")
			return
		}
		in.warn(s.line, "", "check the CORS_* settings of "+s.module+" too; the importer reads one file",
			"from %s import * may set or change CORS settings the importer does not see", s.module)
		return
	}
	for _, a := range s.imports {
		local := a.as
		if local == "" {
			local = a.name
		}
		switch {
		case s.module == dchDefaults && (a.name == "default_headers" || a.name == "default_methods"):
			delete(in.modules, local)
			in.names[local] = a.name
		case s.module == "corsheaders" && a.name == "defaults":
			in.rebind(local)
			in.modules[local] = dchDefaults
		default:
			in.rebind(local)
		}
	}
}

const dchDefaults = "corsheaders.defaults"

// DCH's defaults, as corsheaders.defaults defines them: corsproc's defaults
// are DCH's. Read only.
var dchDefaultValues = map[string][]string{
	"default_headers": policyfile.DefaultAllowHeaders,
	"default_methods": policyfile.DefaultAllowMethods,
}

// resolveDefault reports which DCH default a name refers to: a name
// imported from corsheaders.defaults (or default_headers and
// default_methods, when the file binds them to nothing else), or the dotted
// corsheaders.defaults.default_headers.
func (in *interp) resolveDefault(name string) (string, bool) {
	head, rest, dotted := strings.Cut(name, ".")
	if !dotted {
		which, bound := in.names[name]
		if !bound {
			_, ok := dchDefaultValues[name]
			return name, ok
		}
		return which, which != ""
	}
	full := name
	if mod, ok := in.modules[head]; ok {
		full = mod + "." + rest
	} else if _, bound := in.names[head]; bound {
		return "", false
	}
	which, ok := strings.CutPrefix(full, dchDefaults+".")
	if _, known := dchDefaultValues[which]; ok && known {
		return which, true
	}
	return "", false
}

// ifStmt runs the clause whose condition holds. Conditions on DEBUG take
// the value this run is for; a clause whose condition the importer cannot
// decide ends the statement, with a warning if it skips CORS settings.
func (in *interp) ifStmt(s *stmt) {
	debugIf := false
	for i, c := range s.clauses {
		if c.cond == nil {
			in.exec(c.body)
			break
		}
		holds, known, onDebug := in.cond(c.cond)
		debugIf = debugIf || onDebug
		if !known {
			var bodies [][]*stmt
			for _, rest := range s.clauses[i:] {
				bodies = append(bodies, rest.body)
			}
			names := settingsIn(bodies...)
			if len(names) > 0 {
				what := "if"
				if i > 0 {
					what = "elif"
				}
				skipped := "the block"
				if len(s.clauses[i:]) > 1 {
					skipped = "the block and the elif/else blocks after it"
				}
				in.warn(c.line, strings.Join(names, ", "), "check which branch runs in production and write its settings into the policy by hand",
					"the %s condition is not one the importer understands (it knows DEBUG and not DEBUG): it skipped %s, which set %s",
					what, skipped, strings.Join(names, ", "))
			}
			for _, rest := range s.clauses[i:] {
				in.starImports(rest.body)
			}
			break
		}
		if holds {
			in.exec(c.body)
			break
		}
	}
	if debugIf {
		var bodies [][]*stmt
		for _, c := range s.clauses {
			bodies = append(bodies, c.body)
		}
		if len(settingsIn(bodies...)) > 0 {
			in.debugIfs = append(in.debugIfs, s.line)
		}
	}
}

// cond evaluates an if condition: DEBUG, not DEBUG, DEBUG is True, True,
// False. onDebug reports whether it tests DEBUG.
func (in *interp) cond(e *expr) (holds, known, onDebug bool) {
	switch e.kind {
	case eTrue:
		return true, true, false
	case eFalse:
		return false, true, false
	case eName:
		if e.s == "DEBUG" {
			return in.debug, true, true
		}
	case eUnary:
		if e.s == "not" {
			h, k, d := in.cond(e.subs[0])
			return !h, k, d
		}
	case eCompare:
		l, r := e.subs[0], e.subs[1]
		if r.kind == eName && r.s == "DEBUG" {
			l, r = r, l
		}
		if l.kind != eName || l.s != "DEBUG" || r.kind != eTrue && r.kind != eFalse {
			break
		}
		want := r.kind == eTrue
		switch e.s {
		case "is", "==":
			return in.debug == want, true, true
		case "is not", "!=":
			return in.debug != want, true, true
		}
	}
	return false, false, false
}

// compound skips a for, while, try, with or match statement, warning when
// it sets CORS settings. def and class bodies do not set module settings.
func (in *interp) compound(s *stmt) {
	if s.keyword == "def" || s.keyword == "class" {
		return
	}
	if names := settingsIn(s.body); len(names) > 0 {
		in.warn(s.line, strings.Join(names, ", "), "check what the statement does and write the result into the policy by hand",
			"set inside a %s statement, which the importer does not run; the policy ignores what it does", s.keyword)
	}
	in.starImports(s.body)
}

// starImports warns about star imports in blocks the importer skips.
func (in *interp) starImports(stmts []*stmt) {
	for _, s := range stmts {
		switch {
		case s.kind == sImport && s.star && s.module != dchDefaults:
			in.warn(s.line, "", "check the CORS_* settings of "+s.module+" too; the importer reads one file",
				"from %s import * may set or change CORS settings the importer does not see", s.module)
		case s.kind == sIf:
			for _, c := range s.clauses {
				in.starImports(c.body)
			}
		case s.kind == sCompound && s.keyword != "def" && s.keyword != "class":
			in.starImports(s.body)
		}
	}
}

// settingsIn lists the CORS settings that statements set or change, in
// order.
func settingsIn(stmts ...[]*stmt) []string {
	var out []string
	seen := map[string]bool{}
	var walk func([]*stmt)
	add := func(name string) {
		if isSetting(name) && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	walk = func(stmts []*stmt) {
		for _, s := range stmts {
			switch s.kind {
			case sIf:
				for _, c := range s.clauses {
					walk(c.body)
				}
			case sCompound:
				if s.keyword != "def" && s.keyword != "class" {
					walk(s.body)
				}
			case sAssign, sAugAssign, sMethod, sDel:
				for _, name := range s.targets {
					add(name)
				}
			}
			for _, name := range s.unsure {
				add(name)
			}
		}
	}
	for _, b := range stmts {
		walk(b)
	}
	return out
}

// evalTop evaluates a setting's value; when it cannot, a reference to the
// environment anywhere in the expression is the reason given.
func (in *interp) evalTop(e *expr) (value, *unreadable) {
	v, bad := in.eval(e)
	if bad != nil {
		if h := envHint(e); h != "" {
			bad = badf(bad.line, "%s", envReason(h))
		}
		return value{}, bad
	}
	return v, nil
}

// envHint finds a read of the environment: os.environ, os.getenv, and the
// env()/config() helpers of django-environ and python-decouple.
func envHint(e *expr) string {
	if e == nil {
		return ""
	}
	isEnv := func(name string) bool {
		head, _, _ := strings.Cut(name, ".")
		return envNames[head] || name == "os.environ" || name == "os.getenv" || strings.HasPrefix(name, "os.environ.")
	}
	switch e.kind {
	case eName:
		if isEnv(e.s) {
			return e.s
		}
	case eCall:
		if e.fn.kind == eName && isEnv(e.fn.s) {
			return e.fn.s + "(…)"
		}
		if h := envHint(e.fn); h != "" {
			return h
		}
	case eIndex:
		if e.subs[0].kind == eName && isEnv(e.subs[0].s) {
			return e.subs[0].s + "[…]"
		}
	}
	for _, sub := range e.subs {
		if h := envHint(sub); h != "" {
			return h
		}
	}
	return ""
}

// evalAdded evaluates what is added to a list: a value the importer cannot
// know becomes an unknown part of the list (partial.go) instead of making
// the whole list unreadable.
func (in *interp) evalAdded(e *expr) value {
	v, bad := in.eval(e)
	if bad != nil {
		if h := envHint(e); h != "" {
			bad = badf(bad.line, "%s", envReason(h))
		}
		return unknownValue(e.line, bad)
	}
	return v
}

// asUnreadable is why a value only the running Django knows cannot be
// used where a known value is needed.
func asUnreadable(v value) *unreadable {
	p := v.unknown[0]
	if p.lookup != "" {
		return badf(p.line, "%s", envReason(p.lookup))
	}
	return badf(p.line, "%s", p.reason)
}

func (in *interp) eval(e *expr) (value, *unreadable) {
	switch e.kind {
	case eOpaque:
		return value{}, badf(e.line, "%s", e.s)
	case eStr:
		if e.unread != "" {
			return value{}, badf(e.line, "%s", e.unread)
		}
		return value{kind: vStr, s: e.s, line: e.line}, nil
	case eBytes:
		return value{}, badf(e.line, "is a bytes literal, not a str")
	case eFString:
		return value{}, badf(e.line, "is an f-string, which Python computes when it runs")
	case eNum:
		return number(e)
	case eTrue, eFalse:
		return value{kind: vBool, b: e.kind == eTrue, line: e.line}, nil
	case eNone:
		return value{kind: vNone, line: e.line}, nil
	case eName:
		if which, ok := in.resolveDefault(e.s); ok {
			v := value{kind: vTuple, line: e.line}
			for _, s := range dchDefaultValues[which] {
				v.elems = append(v.elems, value{kind: vStr, s: s, line: e.line})
			}
			return v, nil
		}
		if strings.Contains(e.s, ".") {
			return value{}, badf(e.line, "refers to %s, which the importer does not follow", e.s)
		}
		return value{}, badf(e.line, "refers to the variable %s, which the importer does not follow", e.s)
	case eCall:
		return in.call(e)
	case eIndex:
		if v, ok := envIndex(e); ok {
			return v, nil
		}
		if base := e.subs[0]; base.kind == eName {
			return value{}, badf(e.line, "reads %s[…]", base.s)
		}
		return value{}, badf(e.line, "reads an item of a computed value")
	case eAttr:
		return value{}, badf(e.line, "reads an attribute .%s of a computed value", e.s)
	case eList, eTuple:
		v := value{kind: vList, line: e.line}
		if e.kind == eTuple {
			v.kind = vTuple
		}
		for _, sub := range e.subs {
			// An entry the importer cannot know is an unknown part of the
			// list; the list keeps its other entries (partial.go).
			var elems []value
			var unknown []*part
			if sub.kind == eStar {
				var bad *unreadable
				elems, unknown, bad = in.iterate(in.evalAdded(sub.subs[0]), sub.line)
				if bad != nil {
					return value{}, bad
				}
			} else {
				elems, unknown = elements(in.evalAdded(sub))
			}
			v.elems = append(v.elems, elems...)
			v.unknown = append(v.unknown, unknown...)
			if bad := checkSize(v, e.line); bad != nil {
				return value{}, bad
			}
		}
		if v.elems == nil {
			v.elems = []value{}
		}
		return v, nil
	case eStar:
		return value{}, badf(e.line, "uses a starred expression outside a list or tuple")
	case eBinary:
		if e.s == "+" {
			// A list plus what the importer cannot know keeps the list
			// (partial.go).
			l, r := in.evalAdded(e.subs[0]), in.evalAdded(e.subs[1])
			return add(l, r, e.line)
		}
		l, bad := in.eval(e.subs[0])
		if bad != nil {
			return value{}, bad
		}
		r, bad := in.eval(e.subs[1])
		if bad != nil {
			return value{}, bad
		}
		if l.kind == vUnknown {
			return value{}, asUnreadable(l)
		}
		if r.kind == vUnknown {
			return value{}, asUnreadable(r)
		}
		return arith(e.s, l, r, e.line)
	case eUnary:
		x, bad := in.eval(e.subs[0])
		if bad != nil {
			return value{}, bad
		}
		if x.kind == vUnknown {
			return value{}, asUnreadable(x)
		}
		if x.kind != vInt || e.s == "not" {
			return value{}, badf(e.line, "is computed with %q", e.s)
		}
		switch e.s {
		case "-":
			return arith("-", value{kind: vInt}, x, e.line)
		case "~":
			x.n = ^x.n
		}
		x.line = e.line
		return x, nil
	case eCompare:
		return value{}, badf(e.line, "is a comparison")
	}
	return value{}, badf(e.line, "is not an expression the importer reads")
}

func number(e *expr) (value, *unreadable) {
	s := strings.ToLower(e.s)
	invalid := badf(e.line, "is not a valid Python number (%s)", e.s)
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0o") || strings.HasPrefix(s, "0b") {
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return value{}, badf(e.line, "is too large (%s)", e.s)
			}
			return value{}, invalid
		}
		return value{kind: vInt, n: n, line: e.line}, nil
	}
	if strings.ContainsAny(s, ".ej") {
		return value{kind: vFloat, s: e.s, line: e.line}, nil
	}
	if strings.HasSuffix(s, "_") || strings.Contains(s, "__") || len(s) > 1 && s[0] == '0' && strings.Trim(s, "0_") != "" {
		return value{}, invalid
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil {
		return value{}, badf(e.line, "is too large (%s)", e.s)
	}
	return value{kind: vInt, n: n, line: e.line}, nil
}

func (in *interp) call(e *expr) (value, *unreadable) {
	if e.fn.kind == eAttr && e.fn.s == "split" {
		return in.split(e)
	}
	if e.fn.kind != eName {
		return value{}, badf(e.line, "calls a computed function")
	}
	if v, ok := in.envCall(e); ok {
		return v, nil
	}
	name := e.fn.s
	for i, kw := range e.kw {
		if kw != "" && !(name == "re.compile" && kw == "flags") || e.subs[i].kind == eStar {
			return value{}, badf(e.line, "calls %s() with arguments the importer does not read", name)
		}
	}
	switch name {
	case "list", "tuple":
		v := value{kind: vList, line: e.line, elems: []value{}}
		if name == "tuple" {
			v.kind = vTuple
		}
		if len(e.subs) > 1 {
			return value{}, badf(e.line, "calls %s() with %d arguments, which Python refuses (TypeError)", name, len(e.subs))
		}
		if len(e.subs) == 1 {
			elems, unknown, bad := in.iterate(in.evalAdded(e.subs[0]), e.line)
			if bad != nil {
				return value{}, bad
			}
			v.elems = append(v.elems, elems...)
			v.unknown = append(v.unknown, unknown...)
		}
		return v, nil
	case "re.compile":
		if len(e.subs) < 1 || len(e.subs) > 2 {
			return value{}, badf(e.line, "calls re.compile() with %d arguments", len(e.subs))
		}
		pat, bad := in.eval(e.subs[0])
		if bad != nil {
			return value{}, bad
		}
		if pat.kind == vUnknown {
			return value{}, asUnreadable(pat)
		}
		if pat.kind != vStr {
			return value{}, badf(e.line, "calls re.compile() on a %s", typeName(pat.kind))
		}
		v := value{kind: vPattern, s: pat.s, line: e.line}
		if len(e.subs) == 2 {
			f := e.subs[1]
			if f.kind != eName || f.s != "re.I" && f.s != "re.IGNORECASE" {
				return value{}, badf(e.line, "calls re.compile() with flags other than re.IGNORECASE")
			}
			v.s = "(?i)" + v.s
		}
		return v, nil
	}
	return value{}, badf(e.line, "calls %s(), which the importer does not run", name)
}

// iterate returns the items Python gets by iterating v (for *v, list(v),
// l += v, l.extend(v)), and the parts of them the importer cannot know.
func (in *interp) iterate(v value, line int) ([]value, []*part, *unreadable) {
	switch v.kind {
	case vList, vTuple:
		return v.elems, v.unknown, nil
	case vUnknown:
		if v.envShape == envList {
			return v.elems, v.unknown, nil
		}
		return nil, v.unknown, nil
	case vStr:
		return nil, nil, badf(line, "iterates over the string %q, which gives its characters one by one (write [%q])", v.s, v.s)
	}
	return nil, nil, badf(line, "iterates over a %s, which Python refuses (TypeError)", typeName(v.kind))
}

func checkSize(v value, line int) *unreadable {
	switch {
	case len(v.elems) > maxElems || len(v.unknown) > maxElems:
		return badf(line, "has more than %d entries", maxElems)
	case len(v.s) > maxStrLen:
		return badf(line, "is longer than %d bytes", maxStrLen)
	}
	return nil
}

// add is Python's + on the values the importer knows.
func add(l, r value, line int) (value, *unreadable) {
	var v value
	switch {
	case l.kind == vStr && r.kind == vStr:
		if len(l.s)+len(r.s) > maxStrLen {
			return value{}, badf(line, "is longer than %d bytes", maxStrLen)
		}
		v = value{kind: vStr, s: l.s + r.s}
	case l.kind == vInt && r.kind == vInt:
		return arith("+", l, r, line)
	case (l.kind == vList || l.kind == vTuple) && r.kind == l.kind:
		v = value{kind: l.kind, elems: make([]value, 0, len(l.elems)+len(r.elems))}
		v.elems = append(append(v.elems, l.elems...), r.elems...)
		v.unknown = append(append([]*part(nil), l.unknown...), r.unknown...)
	case (l.kind == vList || l.kind == vTuple) && r.kind == vUnknown || l.kind == vUnknown && (r.kind == vList || r.kind == vTuple):
		// A list plus what only the running Django knows: the list keeps
		// its values, and the defaults of an environment lookup.
		kind := l.kind
		if kind == vUnknown {
			kind = r.kind
		}
		v = value{kind: kind}
		for _, x := range []value{l, r} {
			if x.kind != vUnknown || x.envShape == envList {
				v.elems = append(v.elems, x.elems...)
			}
			v.unknown = append(v.unknown, x.unknown...)
		}
	case l.kind == vUnknown || r.kind == vUnknown:
		// Two lookups, or a string and a lookup: unknown, of the lookups'
		// shape when both have it.
		v = value{kind: vUnknown, envShape: envOther}
		if l.kind == vUnknown && r.kind == vUnknown && l.envShape == envList && r.envShape == envList {
			v.envShape = envList
			v.elems = append(append(v.elems, l.elems...), r.elems...)
		}
		v.unknown = append(append(v.unknown, l.unknown...), r.unknown...)
	default:
		return value{}, badf(line, "adds a %s and a %s, which Python refuses (TypeError)", typeName(l.kind), typeName(r.kind))
	}
	v.line = line
	if bad := checkSize(v, line); bad != nil {
		return value{}, bad
	}
	return v, nil
}

// arith is Python's +, - and * on integers, which is what settings write
// a number of seconds with (60 * 60 * 24). The result must fit in an int64
// (a preflight max age is far smaller). Other operators (//, %, **, /, ...)
// and other values leave the setting out with a warning: a settings file
// does not need them, and computing them as Python does (floor division of
// negative numbers, unbounded integers) would not pay for itself.
func arith(op string, l, r value, line int) (value, *unreadable) {
	if l.kind != vInt || r.kind != vInt {
		switch {
		case op == "%" && l.kind == vStr:
			return value{}, badf(line, "formats a string with %%")
		case op == "*" && (l.kind == vList || l.kind == vTuple || l.kind == vStr || r.kind == vList || r.kind == vTuple || r.kind == vStr):
			return value{}, badf(line, "repeats a sequence with *")
		}
		return value{}, badf(line, "is computed with %s on a %s and a %s", op, typeName(l.kind), typeName(r.kind))
	}
	a, b := l.n, r.n
	var n int64
	ok := true
	switch op {
	case "+":
		n = a + b
		ok = (b >= 0) == (n >= a)
	case "-":
		n = a - b
		ok = (b >= 0) == (n <= a)
	case "*":
		n = a * b
		ok = a == 0 || n/a == b && !(a == -1 && b == math.MinInt64)
	default:
		return value{}, badf(line, "is computed with %s; the importer computes whole numbers with +, - and * only (write the number)", op)
	}
	if !ok {
		return value{}, badf(line, "is too large")
	}
	return value{kind: vInt, n: n, line: line}, nil
}
