package django

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// A list setting is often written as literal values extended with what only
// the running Django knows:
//
//	CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
//	CORS_ALLOWED_ORIGINS += os.environ.get("EXTRA_ORIGINS", "").split(",")
//	CORS_ALLOWED_ORIGINS += env.list("MORE_ORIGINS", default=["https://b.example.com"])
//
// The importer keeps every literal value and records what it cannot know as
// an unknown part of the list, with its line: the policy gets the literal
// values, a YAML comment where each unknown part belongs, and a warning that
// says which values were kept and what to add by hand. A default of an
// environment lookup (the value Django uses while the variable is unset) is
// kept too, marked as such.

// part is what a list holds that the importer cannot know: the value of an
// environment lookup, or of an expression it does not evaluate.
type part struct {
	line     int
	lookup   string // the environment lookup, e.g. os.environ.get("EXTRA"); "" when it is not one
	variable string // the environment variable the lookup reads; "" when not known
	reason   string // for another expression: why its value is not known ("refers to the variable X, ...")
}

// String names the part in warnings and comments.
func (p *part) String() string {
	if p.lookup != "" {
		return fmt.Sprintf("%s (line %d)", p.lookup, p.line)
	}
	return fmt.Sprintf("the value at line %d, which %s", p.line, p.reason)
}

// unknownValue is the value of an expression the importer cannot evaluate,
// in a place where it only adds to a list: the list keeps its other values.
func unknownValue(line int, bad *unreadable) value {
	return value{kind: vUnknown, line: line, unknown: []*part{{line: bad.line, reason: bad.reason}}}
}

// envLookupFuncs are the functions that read one environment variable, with
// the shape of what they return: os's, django-environ's (env = environ.Env())
// and python-decouple's (config).
var envLookupFuncs = map[string]envShape{
	"os.environ.get": envString, "os.getenv": envString, "environ.get": envString, "getenv": envString,
	"env": envString, "env.str": envString, "config": envString,
	"env.list": envList, "env.tuple": envList,
}

type envShape uint8

const (
	envOther  envShape = iota // a value of another type (env.bool, env.int, ...)
	envString                 // a str: os.environ.get("X", "default")
	envList                   // a list of str: env.list("X", default=[...])
)

// envCall evaluates a call that reads the environment. ok is false when the
// call is not an environment lookup.
func (in *interp) envCall(e *expr) (value, bool) {
	if e.fn.kind != eName || envHint(e.fn) == "" && envLookupFuncs[e.fn.s] == envOther {
		return value{}, false
	}
	name := e.fn.s
	shape := envLookupFuncs[name]
	p := &part{line: e.line}
	v := value{kind: vUnknown, line: e.line, unknown: []*part{p}}
	var dflt *expr
	var dfltSet bool
	for i, sub := range e.subs {
		switch kw := e.kw[i]; {
		case kw == "" && i == 0 && sub.kind == eStr && sub.unread == "":
			p.variable = sub.s
		case kw == "default" || kw == "" && i == 1 && shape == envString:
			dflt, dfltSet = sub, true
		case kw == "cast" && name == "config" && sub.kind == eCall && sub.fn.kind == eName && (sub.fn.s == "Csv" || strings.HasSuffix(sub.fn.s, ".Csv")):
			shape = envList // decouple's Csv() splits the value on commas
			v.csv = true
		case kw == "cast" && sub.kind == eName && sub.s == "list" && strings.HasPrefix(name, "env"):
			shape = envList
		}
	}
	p.lookup = name + "(" + strconv.Quote(p.variable) + ")"
	if p.variable == "" {
		p.lookup = name + "(…)"
	}
	v.envShape = shape
	if !dfltSet {
		return v, true
	}
	d, bad := in.eval(dflt)
	if bad != nil {
		return v, true
	}
	switch {
	case shape == envString && d.kind == vStr:
		v.elems = []value{{kind: vStr, s: d.s, line: d.line, dflt: p}}
	case shape == envList && v.csv && d.kind == vStr:
		// decouple's Csv() strips spaces and drops empty values.
		for _, s := range strings.Split(d.s, ",") {
			if s = strings.TrimSpace(s); s != "" {
				v.elems = append(v.elems, value{kind: vStr, s: s, line: d.line, dflt: p})
			}
		}
	case shape == envList && (d.kind == vList || d.kind == vTuple):
		for _, el := range d.elems {
			el.dflt = p
			v.elems = append(v.elems, el)
		}
		v.unknown = append(v.unknown, d.unknown...)
	}
	return v, true
}

// envIndex evaluates os.environ["X"].
func envIndex(e *expr) (value, bool) {
	base := e.subs[0]
	if base.kind != eName || base.s != "os.environ" && base.s != "environ" {
		return value{}, false
	}
	p := &part{line: e.line, variable: e.s, lookup: base.s + "[" + strconv.Quote(e.s) + "]"}
	if e.s == "" {
		p.lookup = base.s + "[…]"
	}
	return value{kind: vUnknown, line: e.line, envShape: envString, unknown: []*part{p}}, true
}

// split is str.split(sep) on a known string, or on the value of an
// environment lookup: its default, split, is kept. Empty values, which
// "".split(",") gives and which match no origin, are dropped.
func (in *interp) split(e *expr) (value, *unreadable) {
	obj, bad := in.eval(e.fn.subs[0])
	if bad != nil {
		return value{}, bad
	}
	if len(e.subs) > 1 || len(e.subs) == 1 && e.kw[0] != "" && e.kw[0] != "sep" {
		return value{}, badf(e.line, "calls .split() with arguments the importer does not read")
	}
	sep := ""
	if len(e.subs) == 1 {
		s, bad := in.eval(e.subs[0])
		if bad != nil {
			return value{}, bad
		}
		if s.kind != vStr || s.s == "" {
			return value{}, badf(e.line, "calls .split() with a separator the importer does not read")
		}
		sep = s.s
	}
	splitStr := func(s string) []string {
		if sep == "" {
			return strings.Fields(s)
		}
		return strings.Split(s, sep)
	}
	switch {
	case obj.kind == vStr:
		v := value{kind: vList, line: e.line, elems: []value{}}
		for _, s := range splitStr(obj.s) {
			v.elems = append(v.elems, value{kind: vStr, s: s, line: obj.line})
		}
		return v, checkSize(v, e.line)
	case obj.kind == vUnknown && obj.envShape == envString:
		v := value{kind: vUnknown, line: e.line, envShape: envList, unknown: obj.unknown}
		for _, el := range obj.elems {
			for _, s := range splitStr(el.s) {
				if s != "" {
					v.elems = append(v.elems, value{kind: vStr, s: s, line: el.line, dflt: el.dflt})
				}
			}
		}
		return v, nil
	}
	return value{}, badf(e.line, "calls .split() on a %s", typeName(obj.kind))
}

// asList turns a list-shaped value of the environment, at the top of a
// setting, into a list the file extends: its defaults and its part. Other
// values of the environment make the setting unreadable, as before.
func asList(v value) (value, *unreadable) {
	if v.kind != vUnknown {
		return v, nil
	}
	if v.envShape == envList {
		return value{kind: vList, line: v.line, elems: v.elems, unknown: v.unknown}, nil
	}
	p := v.unknown[0]
	if p.lookup != "" {
		return value{}, badf(p.line, "%s", envReason(p.lookup))
	}
	return value{}, badf(p.line, "%s", p.reason)
}

// elements is what a display element ([x]) or .append(x) adds to a list:
// the value itself, or, for one the importer does not know, its part and
// the default Django uses while the variable is unset.
func elements(v value) ([]value, []*part) {
	if v.kind != vUnknown {
		return []value{v}, nil
	}
	if v.envShape == envString {
		return v.elems, v.unknown
	}
	return nil, v.unknown
}

// partials warns about each list key the importer read in part: which
// values the policy keeps, and what to add by hand.
func (c *converter) partials() {
	p := c.p
	for _, l := range []struct {
		key, noun string
		items     []item
		src       source
	}{
		{"allowed_origins", "origins", p.origins, p.originsSrc},
		{"allowed_origin_regexes", "regexes", p.regexes, p.regexesSrc},
		{"allow_methods", "methods", p.methods, p.methodsSrc},
		{"allow_headers", "headers", p.headers, p.headersSrc},
		{"expose_headers", "headers", p.expose, p.exposeSrc},
	} {
		if len(l.src.unknown) == 0 {
			continue
		}
		c.partial(l.key, l.noun, l.items, l.src)
	}
}

func (c *converter) partial(key, noun string, items []item, src source) {
	var literal []string
	var lookups []*part // those whose defaults the policy keeps, in order
	defaults := map[*part][]string{}
	for _, it := range items {
		if it.dflt == nil {
			literal = append(literal, it.s)
			continue
		}
		if defaults[it.dflt] == nil {
			lookups = append(lookups, it.dflt)
		}
		defaults[it.dflt] = append(defaults[it.dflt], it.s)
	}
	var kept, remove []string
	if len(literal) > 0 {
		kept = append(kept, fmt.Sprintf("the %s the file lists (%s)", noun, quoteList(literal)))
	}
	if len(lookups) > maxNamed {
		lookups = lookups[:maxNamed] // the YAML marks every one
	}
	for _, d := range lookups {
		kept = append(kept, fmt.Sprintf("%s, the default of %s, which Django uses only while %s is unset",
			quoteList(defaults[d]), d, variableName(d)))
		remove = append(remove, fmt.Sprintf("remove %s where %s is set", quoteList(defaults[d]), variableName(d)))
	}
	keeps := "keeps no " + noun
	if len(kept) > 0 {
		keeps = "keeps " + strings.Join(kept, "; and ")
	}
	var unknown, vars, values []string
	seen := map[*part]bool{}
	more := 0
	for _, u := range src.unknown {
		if len(seen) == maxNamed {
			more++
			continue
		}
		if seen[u] {
			continue
		}
		seen[u] = true
		unknown = append(unknown, u.String())
		switch {
		case u.lookup == "":
			values = append(values, fmt.Sprintf("the %s of the value at line %d", noun, u.line))
		case !slices.Contains(vars, variableName(u)):
			vars = append(vars, variableName(u))
		}
	}
	if more > 0 {
		unknown = append(unknown, fmt.Sprintf("%d more, which the policy's comments name", more))
		values = append(values, fmt.Sprintf("what the %d more hold", more))
	}
	var add []string
	if len(vars) > 0 {
		add = append(add, fmt.Sprintf("the %s %s %s where Django runs", noun, joinAnd(vars), map[bool]string{true: "holds", false: "hold"}[len(vars) == 1]))
	}
	add = append(add, values...)
	fix := fmt.Sprintf("add to %s by hand %s, where the policy's comments say", key, joinAnd(add))
	if len(remove) > 0 {
		fix += "; " + strings.Join(remove, "; ")
	}
	c.warns = append(c.warns, Warning{File: c.file, Line: src.unknown[0].line, Setting: src.setting, LeftOut: true,
		Message: fmt.Sprintf("read in part: the policy %s; it lacks what the importer cannot know: %s", keeps, joinAnd(unknown)),
		Fix:     fix})
}

// joinAnd joins "a", "b" and "c" as "a, b and c".
func joinAnd(ss []string) string {
	if len(ss) < 2 {
		return strings.Join(ss, "")
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " and " + ss[len(ss)-1]
}

// variableName names the environment variable a lookup reads.
func variableName(p *part) string {
	if p.variable != "" {
		return p.variable
	}
	return "the variable it reads"
}

// maxNamed bounds what one warning names: the kept values, the lookups.
// The policy file holds and marks every one.
const maxNamed = 10

func quoteList(ss []string) string {
	var q []string
	for i, s := range ss {
		if i == maxNamed {
			q = append(q, fmt.Sprintf("and %d more", len(ss)-maxNamed))
			break
		}
		q = append(q, strconv.Quote(s))
	}
	return strings.Join(q, ", ")
}

// entryComment is the YAML comment of a list entry that is the default of
// an environment lookup.
func entryComment(it item) string {
	if it.dflt == nil {
		return ""
	}
	return fmt.Sprintf("default of %s: only while %s is unset", it.dflt, variableName(it.dflt))
}

// partComment is the YAML comment that marks where an unknown part of a
// list belongs.
func partComment(p *part) string {
	if p.lookup != "" {
		return fmt.Sprintf("+ what %s holds where Django runs: add it here by hand", p)
	}
	return fmt.Sprintf("+ %s: add it here by hand", p)
}
