// Package django imports the CORS settings of a Django settings file, as
// django-cors-headers (DCH) reads them, into a corsproc policy file.
//
// It never runs Python. A small tokenizer and parser read the file's
// structure, and an interpreter follows the subset of Python settings are
// written in: assignments of literals (strings in every quoting, True and
// False, integers and their +, - and *), lists and tuples with
// star-unpacking and concatenation, list(), +=, .append() and .extend(),
// and DCH's default_headers and default_methods. A value it cannot know
// without running Python (an environment lookup, a function call, an
// f-string, another variable) is never guessed: in a list the file spells
// out, the rest of the list is kept and the unknown part marked in the
// YAML (partial.go), and a whole value of that kind is left out; either way
// a LeftOut warning says what to write by hand.
//
// Blocks under if DEBUG: (or if not DEBUG:) become two policies when the CORS
// settings differ: django, for DEBUG = False, and django-debug; with
// Options.Profile, one policy, django, for the one profile. Every warning
// names a decision: where DCH and corsproc behave differently, what was
// left out, with the settings line; the generated file is checked with
// policyfile.Parse before it is returned.
package django

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/corsproc/corsproc/internal/importer"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// MaxFileSize is the largest settings file Import reads.
const MaxFileSize = 1 << 20

// The names of the generated policies.
const (
	PolicyName      = "django"
	DebugPolicyName = "django-debug"
)

// Result is a generated policy file and what the importer has to say about
// it.
type Result struct {
	// YAML is the policy file: a comment saying where it came from,
	// default_policy when one policy may govern every request, and only the
	// keys that differ from corsproc's defaults (which are DCH's).
	YAML []byte
	// Warnings are in settings-file order. Each says where DCH and corsproc
	// differ, what the importer left out, or what corsproc says about the
	// generated file.
	Warnings []Warning
	// Policies are the names of the generated policies, in file order.
	Policies []string
	// DefaultPolicy is the file's default_policy; "" when the settings
	// restrict CORS to some paths (CORS_URLS_REGEX).
	DefaultPolicy string
	// LoadError is set when corsproc refuses the generated file because the
	// settings hold something corsproc never allows (an unescaped "." in an
	// origin regex, say). Its problems are among the Warnings too, at their
	// settings lines; YAML is still returned, to be corrected by hand.
	LoadError  *policy.ValidationError
	noSettings bool // the file sets no CORS_* setting
}

// Warning is one thing the user must know about the import: the warning
// every importer reports (internal/importer), whose Setting is the Django
// setting concerned (CORS_ALLOWED_ORIGINS) and whose Policy is set when the
// file has a DEBUG split and only one policy is concerned.
type Warning = importer.Warning

// Incomplete reports whether the generated policy needs a hand before it
// governs what DCH did: corsproc refuses it, or the policy lacks a value,
// or part of one, that the settings give and the importer could not read
// (a warning is LeftOut). import exits 1 then.
func (r *Result) Incomplete() bool {
	if r.LoadError != nil {
		return true
	}
	for _, w := range r.Warnings {
		if w.LeftOut {
			return true
		}
	}
	return false
}

// maxRecoveries is the number of syntax errors Import steps over before it
// stops reading the file. Each costs a pass over the file, so the bound keeps
// a file of MaxFileSize bytes made of broken statements from taking minutes.
const maxRecoveries = 32

// Import reads a Django settings file without executing Python and returns
// the equivalent corsproc policy file. filename names the file in the
// generated YAML and in warnings. The error is a *SyntaxError when the file
// is not Python the importer can tokenize; settings it cannot read are
// warnings, not errors. A statement that is not Python is left out with a
// warning and the rest of the file is read, 32 times at most: after that,
// the file is read only up to the statement holding the next error.
func Import(filename string, src []byte) (*Result, error) {
	return ImportWith(filename, src, Options{})
}

// Profile is the value of DEBUG the settings are evaluated for.
type Profile uint8

const (
	// BothProfiles evaluates the settings for DEBUG = False and True:
	// one policy, or, when the CORS settings differ, policy django for
	// False and django-debug for True.
	BothProfiles Profile = iota
	// ProductionProfile evaluates them for DEBUG = False only, and
	// DebugProfile for DEBUG = True only: one policy, named django.
	ProductionProfile
	DebugProfile
)

// Options change what Import does.
type Options struct {
	Profile Profile
}

// ImportWith is Import with options: with a Profile other than
// BothProfiles, the settings are evaluated for that value of DEBUG alone,
// and the file holds one policy, named django, whichever the profile, so
// that the files of both profiles select it the same way.
func ImportWith(filename string, src []byte, opts Options) (*Result, error) {
	if len(src) > MaxFileSize {
		return nil, fmt.Errorf("%s: file is %d bytes, more than the %d the importer reads", filename, len(src), MaxFileSize)
	}
	// Python the importer cannot parse does not stop it: the broken
	// statement is reported and left out, and the rest of the file is read,
	// up to maxRecoveries times. After that, the file is read only up to the
	// statement holding the next error.
	lines := strings.SplitAfter(string(src), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	total := len(lines)
	var skipped []Warning
	var first, stopErr *SyntaxError
	stop := 0 // the line (1-based) from which the file is not read; 0 when it is read to the end
	for {
		res, lerr, err := importText(filename, strings.Join(lines, ""), opts.Profile)
		if err != nil {
			return nil, err
		}
		if lerr == nil {
			if stop > 0 {
				skipped = slices.DeleteFunc(skipped, func(w Warning) bool { return w.Line >= stop })
				skipped = append(skipped, Warning{File: filename, Line: stop,
					Message: fmt.Sprintf("invalid Python (%s, line %d) after %d syntax errors: the importer stops reading here, and lines %d to %d, the rest of the file, are left out",
						stopErr.Msg, stopErr.Line, maxRecoveries, stop, total),
					Fix: "correct the file and import it again, or copy the settings of those lines into the policy by hand", LeftOut: true})
			}
			if len(skipped) > 0 && res.noSettings {
				// Nothing could be read at all: the file is not Python.
				return nil, first
			}
			res.Warnings = append(skipped, res.Warnings...)
			slices.SortStableFunc(res.Warnings, func(a, b Warning) int { return cmp.Compare(a.Line, b.Line) })
			return res, nil
		}
		serr := &SyntaxError{File: filename, Line: lerr.line, Msg: lerr.msg}
		if first == nil {
			first = serr
		}
		if len(skipped) < maxRecoveries && stop == 0 {
			from, to := brokenStatement(lines, serr.Line)
			if from >= to {
				return nil, first
			}
			skipped = append(skipped, Warning{File: filename, Line: serr.Line,
				Message: fmt.Sprintf("invalid Python (%s): lines %d to %d are left out and the rest of the file is read", serr.Msg, from+1, to),
				Fix:     "correct the file, or copy the settings of those lines into the policy by hand", LeftOut: true})
			for i := from; i < to; i++ {
				lines[i] = "\n" // keep the line numbers of what follows
			}
			continue
		}
		// Leave out the statement holding the error and everything after it.
		// What comes before it tokenizes (and parses, after an error of the
		// parser), so this takes at most three rounds: a null byte or invalid
		// UTF-8, whose statement is not known, then an error of the
		// tokenizer, then one of the parser.
		if stopErr == nil {
			stopErr = serr
		}
		from := restOfFile(lines, lerr)
		if from < 0 {
			return nil, first
		}
		stop, lines = from+1, lines[:from]
	}
}

// restOfFile returns the line (0-based) from which to leave out the file
// after the syntax error e: the line of the statement holding it, or the
// last line with something on it when nothing from there on has. It
// returns -1 when no line has anything on it.
func restOfFile(lines []string, e *lineError) int {
	from := e.line
	if e.stmt > 0 && e.stmt < from {
		from = e.stmt
	}
	from = min(max(from-1, 0), len(lines))
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) != "" {
			return min(from, i)
		}
	}
	return -1
}

// brokenStatement returns the lines [from, to) to leave out for a syntax
// error at line (1-based): from the error line to the next line that starts
// a new top-level statement (a name or keyword in the first column).
func brokenStatement(lines []string, line int) (from, to int) {
	from = min(max(line-1, 0), len(lines))
	// Blank lines left by earlier rounds are not content; start at the
	// first line that holds something.
	for from < len(lines) && strings.TrimSpace(lines[from]) == "" {
		from++
	}
	if from == len(lines) {
		// The error is at the end of the file (a block header with no
		// body, say): leave out the last line that holds something.
		for from--; from >= 0 && strings.TrimSpace(lines[from]) == ""; from-- {
		}
		if from < 0 {
			return 0, 0
		}
		return from, from + 1
	}
	to = from + 1
	for to < len(lines) {
		l := lines[to]
		if l != "" && (l[0] == '_' || l[0] >= 'a' && l[0] <= 'z' || l[0] >= 'A' && l[0] <= 'Z') {
			break
		}
		to++
	}
	return from, to
}

// importText imports one version of the file; a *lineError says where the
// importer stopped.
func importText(filename, src string, profile Profile) (*Result, *lineError, error) {
	toks, lerr := tokenize(src)
	var stmts []*stmt
	if lerr == nil {
		stmts, lerr = parseFile(toks)
	}
	if lerr != nil {
		return nil, lerr, nil
	}
	res, err := build(filename, stmts, profile)
	return res, nil, err
}

// build turns parsed statements into the policy file and its warnings.
func build(filename string, stmts []*stmt, profile Profile) (*Result, error) {
	prod, debug := interpret(filename, stmts, false), interpret(filename, stmts, true)
	split := fingerprint(prod) != fingerprint(debug)
	label := ""
	switch profile {
	case ProductionProfile:
		debug, split, label = prod, false, "DEBUG = False (--debug=false)"
	case DebugProfile:
		prod, split, label = debug, false, "DEBUG = True (--debug=true)"
	}
	prod.warns = append(prod.warns, unknownSettings(filename, prod)...)
	debug.warns = append(debug.warns, unknownSettings(filename, debug)...)

	p, convWarns := convert(filename, prod, PolicyName)
	p.label = label
	pols := []*pol{p}
	var warns []Warning
	if split {
		d, debugWarns := convert(filename, debug, DebugPolicyName)
		pols = append(pols, d)
		more := splitWarnings(filename, prod, debug, p, d)
		warns = merge(append(append(prod.warns, convWarns...), matchWarnings(p)...),
			append(append(debug.warns, debugWarns...), matchWarnings(d)...), PolicyName, DebugPolicyName)
		warns = append(warns, more...)
	} else {
		warns = merge(append(append(prod.warns, convWarns...), matchWarnings(p)...), debug.warns, "", "")
	}
	noSettings := len(prod.order) == 0 && len(debug.order) == 0
	if noSettings {
		warns = append(warns, Warning{File: filename, Message: "the file sets no CORS_* setting, so the policy has DCH's defaults, which allow no origin",
			Fix: "check that this is the settings file that configures django-cors-headers"})
	}
	def := ""
	if !p.noDefault {
		def = PolicyName
	}
	yaml, prov := render(filename, pols, def, split)
	res := &Result{YAML: yaml, DefaultPolicy: def, noSettings: noSettings}
	for _, p := range pols {
		res.Policies = append(res.Policies, p.name)
	}
	var diags []policy.Diagnostic
	set, err := policyfile.Parse(filename, yaml)
	if err != nil {
		ve, ok := err.(*policy.ValidationError)
		if !ok {
			return nil, fmt.Errorf("%s: checking the generated policy: %w", filename, err)
		}
		res.LoadError = ve
		diags = ve.Diagnostics
	} else {
		diags = set.Warnings()
	}
	for _, d := range diags {
		if noSettings && d.Severity == policy.SeverityWarning {
			continue // the policy allows no origin: said above
		}
		if w, ok := fromDiagnostic(filename, d, pols, prov, split); ok {
			warns = append(warns, w)
		}
	}
	slices.SortStableFunc(warns, func(a, b Warning) int { return cmp.Compare(a.Line, b.Line) })
	for i := range warns {
		// One warning, one line, whatever the values quoted in it hold.
		warns[i].Message = strings.ReplaceAll(warns[i].Message, "\n", `\n`)
		warns[i].Fix = strings.ReplaceAll(warns[i].Fix, "\n", `\n`)
	}
	res.Warnings = warns
	return res, nil
}

// merge joins the warnings of the two runs (DEBUG False and True): a warning
// both give concerns both policies; one only a run gives concerns its
// policy.
func merge(prod, debug []Warning, prodName, debugName string) []Warning {
	type key struct {
		line             int
		setting, msg, fx string
	}
	k := func(w Warning) key { return key{w.Line, w.Setting, w.Message, w.Fix} }
	inProd, inDebug := map[key]bool{}, map[key]bool{}
	for _, w := range prod {
		inProd[k(w)] = true
	}
	for _, w := range debug {
		inDebug[k(w)] = true
	}
	var out []Warning
	seen := map[key]bool{}
	for _, w := range prod {
		if seen[k(w)] {
			continue
		}
		seen[k(w)] = true
		if !inDebug[k(w)] {
			w.Policy = prodName
		}
		out = append(out, w)
	}
	for _, w := range debug {
		if seen[k(w)] || inProd[k(w)] {
			continue
		}
		seen[k(w)] = true
		w.Policy = debugName
		out = append(out, w)
	}
	return out
}

// splitWarnings explains the DEBUG split, and keeps the debug policy from
// being selected by a match in production.
func splitWarnings(file string, prod, debug *run, p, d *pol) []Warning {
	line := 0
	for _, l := range append(append([]int(nil), prod.debugIfs...), debug.debugIfs...) {
		if line == 0 || l < line {
			line = l
		}
	}
	how := "is the default_policy"
	if p.noDefault {
		how = "is selected by its match"
	}
	// Each environment gets the file of its profile, with the one policy
	// under the same name; forcing the debug policy by name serves a
	// laptop that has this file (docs/migrating-from-django.md).
	fix := fmt.Sprintf("write one file per environment: corsproc import django --debug=false for production and --debug=true for development each write one policy, named %s; or, with this file, select %s by name in development: corsproc dev --policy-name %s, or the x-corsproc-policy metadata on the Envoy route",
		p.name, d.name, d.name)
	out := []Warning{{
		File: file, Line: line, Setting: "DEBUG",
		Message: fmt.Sprintf("the CORS settings depend on DEBUG: policy %s holds them for DEBUG = False and %s; policy %s holds them for DEBUG = True and is selected only by name",
			p.name, how, d.name),
		Fix: fix,
	}}
	// Selection by match comes before default_policy and runs in file order:
	// a match on the debug policy that the production policy's does not
	// shadow would select it in production.
	if d.urlsRegex != "" && d.urlsRegex != p.urlsRegex {
		out = append(out, Warning{
			File: file, Line: d.urlsSrc.line(), Setting: d.urlsSrc.setting, Policy: d.name,
			Message: fmt.Sprintf("policy %s gets no match: it would select the policy in production for the paths policy %s's match does not cover", d.name, p.name),
			Fix:     fmt.Sprintf("where %s is deployed on its own, give it match: {urls_regex: %s}", d.name, yamlString(d.urlsRegex)),
		})
		d.urlsRegex, d.urlsSrc, d.matchWarning = "", source{}, nil
		d.matchComment = "CORS_URLS_REGEX left out: this policy is selected by name only"
	}
	return out
}

func matchWarnings(p *pol) []Warning {
	if p.matchWarning == nil {
		return nil
	}
	return []Warning{*p.matchWarning}
}

// fromDiagnostic turns corsproc's diagnostic on the generated file into a
// warning at the settings line the key came from.
func fromDiagnostic(file string, d policy.Diagnostic, pols []*pol, prov map[string]source, split bool) (Warning, bool) {
	w := Warning{File: file, Fix: d.Fix}
	idx := -1
	if rest, ok := strings.CutPrefix(d.Path, "policies["); ok {
		if end := strings.IndexByte(rest, ']'); end > 0 {
			if n, err := strconv.Atoi(rest[:end]); err == nil && n < len(pols) {
				idx = n
			}
		}
	}
	if idx >= 0 {
		p := pols[idx]
		if split {
			w.Policy = p.name
		}
		// The explicit alternative to allowing every origin with
		// credentials lists none on purpose, and says so already.
		if d.Severity == policy.SeverityWarning && p.originsNote != "" && d.Path == fmt.Sprintf("policies[%d].allowed_origins", idx) {
			return w, false
		}
	}
	for p := d.Path; ; {
		if src, ok := prov[p]; ok {
			w.Line, w.Setting = src.line(), src.setting
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	if d.Severity == policy.SeverityError {
		w.Message = "corsproc refuses the generated policy: " + d.Message
		w.Error = true
	} else {
		w.Message = "corsproc warns: " + d.Message
	}
	return w, true
}

// fingerprint describes the DCH settings of a run, lines aside, so that two
// runs can be compared.
func fingerprint(r *run) string {
	var b strings.Builder
	var names []string
	for name, key := range knownSettings {
		if key != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		st := r.settings[name]
		b.WriteString(name)
		switch {
		case st == nil || !st.set:
			b.WriteString(" unset")
		case st.bad != nil:
			fmt.Fprintf(&b, " unreadable %d %q", st.bad.line, st.bad.reason)
		default:
			b.WriteByte(' ')
			writeValue(&b, st.val)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func writeValue(b *strings.Builder, v value) {
	fmt.Fprintf(b, "%d:%q:%d:%t", v.kind, v.s, v.n, v.b)
	// What only the running Django knows counts too: a lookup that only
	// DEBUG adds makes the profiles differ.
	if v.dflt != nil {
		fmt.Fprintf(b, "<default %d %q %q>", v.dflt.line, v.dflt.lookup, v.dflt.reason)
	}
	for _, p := range v.unknown {
		fmt.Fprintf(b, "<unknown %d %q %q>", p.line, p.lookup, p.reason)
	}
	if v.elems != nil {
		b.WriteByte('[')
		for _, el := range v.elems {
			writeValue(b, el)
			b.WriteByte(',')
		}
		b.WriteByte(']')
	}
}
