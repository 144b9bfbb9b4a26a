package importer

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// Source is where a value came from: a file, a 1-based line (0 when the
// source format keeps none), and the key, directive or field that set it
// (add_header Access-Control-Allow-Origin, cors.allow_origin_string_match).
type Source struct {
	File string
	Line int
	Key  string
}

// IsSet reports whether s names anything.
func (s Source) IsSet() bool { return s.File != "" || s.Key != "" }

// Pos is "file:line" (or "file" when the line is unknown).
func (s Source) Pos() string {
	if s.Line > 0 {
		return s.File + ":" + strconv.Itoa(s.Line)
	}
	return s.File
}

// comment is the YAML comment of a key set from s: "key, file:line".
func (s Source) comment() string {
	switch {
	case s.Key == "":
		return s.Pos()
	case s.File == "":
		return s.Key
	}
	return s.Key + ", " + s.Pos()
}

// Value is one scalar or list entry and where it came from.
type Value struct {
	S   string
	Src Source
}

// List is a list key. A List whose Src is not set is absent from the
// source, and takes corsproc's default; one whose Src is set is written,
// even empty.
type List struct {
	Src   Source
	Items []Value
}

// IsSet reports whether the source sets the list.
func (l List) IsSet() bool { return l.Src.IsSet() }

// Add appends v, setting the list's source to v's when it has none.
func (l *List) Add(v Value) {
	if !l.Src.IsSet() {
		l.Src = v.Src
	}
	l.Items = append(l.Items, v)
}

// Strings returns the entries' values.
func (l List) Strings() []string {
	out := make([]string, len(l.Items))
	for i, v := range l.Items {
		out[i] = v.S
	}
	return out
}

// Int is an integer key; it is written only when Src is set.
type Int struct {
	N   int64
	Src Source
}

// Bool is a boolean key; it is written only when Src is set.
type Bool struct {
	V   bool
	Src Source
}

// String is a string key; it is written only when Src is set.
type String struct {
	S   string
	Src Source
}

// OriginKind is how a source matches an origin.
type OriginKind uint8

const (
	// OriginExact is one origin, compared as a string (it is written to
	// allowed_origins; a https://*.example.com pattern is corsproc's own).
	OriginExact OriginKind = iota
	// OriginRegex is an RE2 regex matched against the WHOLE origin, as
	// corsproc matches allowed_origin_regexes. A source whose regexes
	// search (nginx's ~) or anchor one end only must turn them into
	// whole-match form first (wrap in .*(?:…).*), never drop the
	// difference.
	OriginRegex
	// OriginPrefix, OriginSuffix and OriginContains are string matches
	// corsproc has no key for (Envoy's StringMatcher prefix, suffix and
	// contains; Istio's prefix). They are written as the regex that
	// matches the same origins, with a warning, so that corsproc's checks
	// judge what they let in (an unanchored prefix lets in
	// https://app.example.com.evil.invalid).
	OriginPrefix
	OriginSuffix
	OriginContains
	// OriginAny is "*": allow_all_origins.
	OriginAny
	// OriginReflect is a source that echoes back whatever Origin the
	// browser sends (nginx's add_header ... $http_origin with no check):
	// written as allow_all_origins, which corsproc refuses with
	// credentials.
	OriginReflect
)

// Origin is one origin rule of a source.
type Origin struct {
	Kind  OriginKind
	Value string // the origin, regex or string the source matches with
	// IgnoreCase is a case-insensitive match. Browsers send origins in
	// lower case, so an exact origin, prefix, suffix or contains is
	// written in lower case, and a regex with (?i) in front.
	IgnoreCase bool
	Src        Source
}

// Match says which requests a policy governs: all given fields must hold.
type Match struct {
	Routes       List // Envoy route names (xds.route_name)
	Hosts        List // :authority without port; *.example.com allowed
	PathPrefixes List
	// URLsRegex is an RE2 regex matched against the whole path (without
	// the query), as corsproc's match.urls_regex.
	URLsRegex String
}

func (m Match) empty() bool {
	return len(m.Routes.Items) == 0 && len(m.Hosts.Items) == 0 && len(m.PathPrefixes.Items) == 0 && m.URLsRegex.S == ""
}

// Vary is whether a source's CORS answers carry Vary: Origin.
type Vary uint8

const (
	// VaryUnknown: the source format does not say (no finding).
	VaryUnknown Vary = iota
	// VaryMissing: the answer depends on the Origin but the source adds no
	// Vary: Origin, so a shared cache can serve one origin's answer to
	// another. An audit finding; corsproc always adds it.
	VaryMissing
	// VaryPresent: the source adds Vary: Origin.
	VaryPresent
)

// Policy is one rule set of a source, with where each part came from.
// Only keys whose Src is set are written; the others take corsproc's
// defaults (docs/policy.md).
type Policy struct {
	// Name is a suggested name; Build makes it valid ([a-z0-9._-]+) and
	// unique.
	Name string
	// Src is the block or object that defines the rule set (a location, a
	// virtual host, a VirtualService); conflicts are reported at it.
	Src   Source
	Match Match

	Origins []Origin
	// OriginsSrc is where the origins are set as a whole; when not set,
	// the first origin's Src.
	OriginsSrc Source

	Methods            List
	Headers            List
	Expose             List
	MaxAge             Int
	Credentials        Bool
	PrivateNetwork     Bool
	UnmatchedPreflight String // "reject" or "forward"
	PreflightStatus    Int    // 200 or 204
	Mode               String // "enforce" or "shadow"

	Vary Vary
	// VarySrc is where the source's CORS answer is produced, for the
	// missing-Vary finding.
	VarySrc Source
	// Note, when set, is written as a comment line above the policy's keys.
	Note string
}

// Code classifies a Warning, for audit's report.
type Code string

const (
	CodeDifference    Code = "difference"     // corsproc behaves differently from the source
	CodeLeftOut       Code = "left_out"       // something the source sets is not in the policy
	CodeUnsafeOrigin  Code = "unsafe_origin"  // an origin rule corsproc refuses
	CodeOrigin        Code = "origin"         // an origin rule corsproc warns about
	CodeMissingVary   Code = "missing_vary"   // CORS answers that depend on the Origin without Vary: Origin
	CodePreflightAuth Code = "preflight_auth" // preflights reach an authentication step before CORS answers them
	CodeConflict      Code = "conflict"       // several definitions for one host, path or route
	CodeRefused       Code = "refused"        // corsproc refuses the generated policy (not an origin rule)
	CodeCorsproc      Code = "corsproc"       // corsproc warns about the generated policy
)

// Warning is one thing the user must know about an import or audit, with
// the decision it asks for in Fix.
type Warning struct {
	File    string
	Line    int    // 1-based line in the source file; 0 for the whole file
	Setting string // the setting, directive or field concerned
	Policy  string // the policy concerned, when one is
	Message string
	Fix     string // what to do; "" when nothing needs doing
	// Error is set when corsproc refuses the generated policy for what
	// this warning says (the problem is in Result.LoadError too).
	Error bool
	// Code classifies the warning; "" for the Django importer's own.
	Code Code
	// Unsafe is set when the source, as it stands, does something unsafe:
	// audit exits 1 on it.
	Unsafe bool
	// LeftOut is set when something the source configures is not carried
	// into the policy: import exits 1 on it.
	LeftOut bool
}

// String renders the warning as one line:
//
//	nginx.conf:12: add_header Access-Control-Allow-Origin: "..." ...; fix: ...
func (w Warning) String() string {
	var b strings.Builder
	b.WriteString(w.File)
	if w.Line > 0 {
		b.WriteString(":" + strconv.Itoa(w.Line))
	}
	b.WriteString(": ")
	if w.Setting != "" {
		b.WriteString(w.Setting)
		if w.Policy != "" {
			b.WriteString(" (policy " + w.Policy + ")")
		}
		b.WriteString(": ")
	} else if w.Policy != "" {
		b.WriteString("policy " + w.Policy + ": ")
	}
	b.WriteString(w.Message)
	if w.Fix != "" {
		b.WriteString("; fix: ")
		b.WriteString(w.Fix)
	}
	return b.String()
}

// At makes a Warning at src.
func At(src Source, code Code, message, fix string) Warning {
	return Warning{File: src.File, Line: src.Line, Setting: src.Key, Code: code, Message: message, Fix: fix}
}

// LeftOutAt is the warning for something the source configures that is not
// carried into the policy (CodeLeftOut, LeftOut: import exits 1).
func LeftOutAt(src Source, message, fix string) Warning {
	w := At(src, CodeLeftOut, message, fix)
	w.LeftOut = true
	return w
}

// RuleSet is what a source importer reads: policies in selection order
// (corsproc selects the first policy whose match holds, so a source with
// longest-prefix or most-specific-first rules orders them so), and the
// importer's own warnings.
type RuleSet struct {
	// Source names the importer: nginx, envoy, istio, gateway-api.
	Source string
	// Files are the files read, for the generated file's header comment.
	Files    []string
	Policies []*Policy
	Warnings []Warning
	// DefaultPolicy, when set, is the index in Policies of the policy that
	// governs every request nothing else selects (a policy with an empty
	// Match); -1 or an index with a Match for none.
	DefaultPolicy int
}

// Result is a generated policy file and what the importer has to say
// about it.
type Result struct {
	YAML     []byte
	Warnings []Warning
	Policies []string // names of the generated policies, in file order
	// DefaultPolicy is the file's default_policy, "" for none.
	DefaultPolicy string
	// Set is the generated file as corsproc loads it, nil when LoadError.
	Set *policy.Set
	// LoadError is set when corsproc refuses the generated file; its
	// problems are among the Warnings too, at their source lines. YAML is
	// still returned, to be corrected by hand.
	LoadError *policy.ValidationError
}

// Incomplete reports whether the generated policy needs a hand before it
// governs what the source did: corsproc refuses it, something was left
// out, or a conflict asks for a decision.
func (r *Result) Incomplete() bool {
	if r.LoadError != nil {
		return true
	}
	for _, w := range r.Warnings {
		if w.LeftOut || w.Code == CodeConflict {
			return true
		}
	}
	return false
}

// Unsafe reports whether any warning finds the source unsafe.
func (r *Result) Unsafe() bool {
	for _, w := range r.Warnings {
		if w.Unsafe {
			return true
		}
	}
	return false
}

// Build merges rs's policies (one policy per distinct rule set for each
// host, path and route; conflicts are warned), writes the policy file with
// a source comment on every key, checks it with policyfile.Parse, and maps
// each of corsproc's diagnostics back to the source line of the key it
// concerns. The error is for a failure of the check itself, never for what
// the sources hold.
func Build(rs *RuleSet) (*Result, error) {
	pols := make([]*Policy, 0, len(rs.Policies))
	for _, p := range rs.Policies {
		if p != nil {
			pols = append(pols, p)
		}
	}
	var def *Policy
	if rs.DefaultPolicy >= 0 && rs.DefaultPolicy < len(rs.Policies) {
		def = rs.Policies[rs.DefaultPolicy]
	}
	warns := slices.Clone(rs.Warnings)
	pols, cw := resolveConflicts(pols, &def)
	warns = append(warns, cw...)
	for _, p := range pols {
		warns = append(warns, dropForbidden(p)...)
	}
	names(pols)
	for _, p := range pols {
		warns = append(warns, policyWarnings(p)...)
	}
	defName := ""
	if def != nil && def.Match.empty() {
		defName = def.Name
	}
	yaml, prov := render(rs, pols, defName)
	res := &Result{YAML: yaml, DefaultPolicy: defName}
	for _, p := range pols {
		res.Policies = append(res.Policies, p.Name)
	}
	file := rs.Source + ".yaml"
	var diags []policy.Diagnostic
	set, err := policyfile.Parse(file, yaml)
	if err != nil {
		ve, ok := err.(*policy.ValidationError)
		if !ok {
			return nil, fmt.Errorf("checking the generated policy: %w", err)
		}
		res.LoadError = ve
		diags = ve.Diagnostics
	} else {
		res.Set = set
		diags = set.Warnings()
	}
	for _, d := range diags {
		warns = append(warns, fromDiagnostic(d, pols, prov))
	}
	slices.SortStableFunc(warns, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	for i := range warns {
		// One warning, one line, whatever the values quoted in it hold.
		warns[i].Message = strings.ReplaceAll(warns[i].Message, "\n", `\n`)
		warns[i].Fix = strings.ReplaceAll(warns[i].Fix, "\n", `\n`)
	}
	// A definition read by several policies (an nginx map used in two
	// blocks) is reported once.
	seen := map[Warning]bool{}
	res.Warnings = slices.DeleteFunc(warns, func(w Warning) bool {
		dup := seen[w]
		seen[w] = true
		return dup
	})
	return res, nil
}

// dropForbidden leaves out of a policy the request headers and methods
// browsers never ask for (policy.IsForbiddenRequestHeader,
// policy.IsForbiddenMethod), which corsproc refuses in a policy: a source
// listing them allowed nothing more for a browser.
func dropForbidden(p *Policy) []Warning {
	var out []Warning
	drop := func(l *List, forbidden func(string) bool, what string) {
		l.Items = slices.DeleteFunc(l.Items, func(v Value) bool {
			if !forbidden(v.S) {
				return false
			}
			out = append(out, At(v.Src, CodeDifference, fmt.Sprintf("%q is left out: it is a forbidden %s, which browsers never ask a preflight for, and corsproc refuses it in a policy", v.S, what), ""))
			return true
		})
	}
	drop(&p.Headers, policy.IsForbiddenRequestHeader, "request header")
	drop(&p.Methods, policy.IsForbiddenMethod, "method")
	return out
}

// policyWarnings are the findings on a policy as its source wrote it,
// before corsproc's own checks: the origin forms corsproc has no key for,
// and a missing Vary: Origin.
func policyWarnings(p *Policy) []Warning {
	var out []Warning
	for _, o := range p.Origins {
		var how string
		switch o.Kind {
		case OriginPrefix:
			how = "starts with"
		case OriginSuffix:
			how = "ends with"
		case OriginContains:
			how = "contains"
		default:
			continue
		}
		re := originRegex(o)
		w := At(o.Src, CodeDifference, fmt.Sprintf("%q matches every origin that %s it, which corsproc has no key for: it is written as the regex %q, which matches the same origins, and corsproc judges what it lets in",
			o.Value, how, re), "prefer the exact origins, or an https://*.example.com pattern")
		w.Policy = p.Name
		out = append(out, w)
	}
	if p.MaxAge.Src.IsSet() && (p.MaxAge.N > maxMaxAge || p.MaxAge.N < 0) {
		w := At(p.MaxAge.Src, CodeDifference, fmt.Sprintf("a preflight max age of %d seconds is written as %d: no browser caches a preflight longer (Firefox caps it at 86400, Chromium at 7200), and corsproc accepts 0 to 86400",
			p.MaxAge.N, min(max(p.MaxAge.N, 0), maxMaxAge)), "")
		w.Policy = p.Name
		out = append(out, w)
	}
	if p.Vary == VaryMissing && dependsOnOrigin(p) {
		src := p.VarySrc
		if !src.IsSet() {
			src = p.Src
		}
		w := At(src, CodeMissingVary, "the CORS answer depends on the request's Origin, but the source adds no Vary: Origin, so a shared cache can serve one origin's answer to another (corsproc always adds it)", "")
		w.Policy, w.Unsafe = p.Name, true
		out = append(out, w)
	}
	return out
}

// maxMaxAge is the largest preflight_max_age corsproc accepts: Firefox's
// cap (Chromium's is 7200), so no browser caches a preflight longer.
const maxMaxAge = 86400

func dependsOnOrigin(p *Policy) bool {
	for _, o := range p.Origins {
		if o.Kind != OriginAny {
			return true
		}
	}
	return false
}

// originRegex is the RE2 regex, matched against the whole origin, that
// matches the origins o matches.
func originRegex(o Origin) string {
	v := o.Value
	if o.Kind == OriginRegex {
		if o.IgnoreCase {
			return "(?i)" + v
		}
		return v
	}
	if o.IgnoreCase {
		v = strings.ToLower(v)
	}
	q := regexp.QuoteMeta(v)
	switch o.Kind {
	case OriginPrefix:
		return q + ".*"
	case OriginSuffix:
		return ".*" + q
	case OriginContains:
		return ".*" + q + ".*"
	}
	return v
}

// ruleKey describes a policy's rules, sources aside, so that two
// definitions can be compared.
func ruleKey(p *Policy) string {
	var b strings.Builder
	for _, o := range p.Origins {
		fmt.Fprintf(&b, "o%d:%t:%q;", o.Kind, o.IgnoreCase, o.Value)
	}
	for _, l := range []List{p.Methods, p.Headers, p.Expose} {
		fmt.Fprintf(&b, "l%t:%q;", l.IsSet(), l.Strings())
	}
	fmt.Fprintf(&b, "%t%d %t%t %t%t %t%q %t%d %q", p.MaxAge.Src.IsSet(), p.MaxAge.N, p.Credentials.Src.IsSet(), p.Credentials.V,
		p.PrivateNetwork.Src.IsSet(), p.PrivateNetwork.V, p.UnmatchedPreflight.Src.IsSet(), p.UnmatchedPreflight.S,
		p.PreflightStatus.Src.IsSet(), p.PreflightStatus.N, p.Mode.S)
	return b.String()
}

// matchKey describes what a policy's match selects.
func matchKey(m Match) string {
	norm := func(l List) []string {
		s := l.Strings()
		for i := range s {
			s[i] = strings.ToLower(s[i])
		}
		slices.Sort(s)
		return slices.Compact(s)
	}
	return fmt.Sprintf("%q|%q|%q|%q", norm(m.Routes), norm(m.Hosts), norm(m.PathPrefixes), m.URLsRegex.S)
}

// resolveConflicts handles several definitions for the same match (item:
// conflicts and merges). Identical rule sets become one policy, with a
// note naming every definition. Different rule sets for one match each
// keep a policy: the first in selection order keeps the match, as the one
// corsproc would select; the others lose it (selected only by name, with
// x-corsproc-policy) and a conflict warning asks the user to decide. A
// route name bound in two different matches is reported the same way,
// since corsproc binds a route to one policy.
func resolveConflicts(pols []*Policy, def **Policy) ([]*Policy, []Warning) {
	var warns []Warning
	byMatch := map[string]*Policy{}
	out := pols[:0:0]
	for _, p := range pols {
		if p.Match.empty() {
			// A policy for every request besides the default_policy is
			// another definition for every host.
			if d := *def; d != nil && d != p && d.Match.empty() {
				if ruleKey(d) == ruleKey(p) {
					warns = append(warns, At(p.Src, CodeDifference, fmt.Sprintf("every host is given the same rules here as at %s: one policy holds both", d.Src.Pos()), ""))
					d.Note = joinNote(d.Note, "also defined at "+p.Src.Pos())
					continue
				}
				w := At(p.Src, CodeConflict, fmt.Sprintf("every host is given different CORS rules here and at %s: the policy from %s is the default_policy; this one is selected only by name (x-corsproc-policy)", d.Src.Pos(), d.Src.Pos()),
					"decide which rules govern the requests no other policy selects: delete the policy you do not want, or give this one a match")
				w.Unsafe = true
				warns = append(warns, w)
				p.Note = joinNote(p.Note, fmt.Sprintf("conflicts with %s for every host: selected only by name", d.Src.Pos()))
			}
			out = append(out, p)
			continue
		}
		k := matchKey(p.Match)
		first, dup := byMatch[k]
		if !dup {
			byMatch[k] = p
			out = append(out, p)
			continue
		}
		what := describeMatch(p.Match)
		if ruleKey(first) == ruleKey(p) {
			w := At(p.Src, CodeDifference, fmt.Sprintf("%s is defined again here with the same rules as at %s: one policy holds both", what, first.Src.Pos()), "")
			warns = append(warns, w)
			first.Note = joinNote(first.Note, "also defined at "+p.Src.Pos())
			if *def == p {
				*def = first
			}
			continue
		}
		w := At(p.Src, CodeConflict, fmt.Sprintf("%s is defined with different CORS rules here and at %s: the policy from %s keeps the match; this one is kept without a match, selected only by name (x-corsproc-policy)",
			what, first.Src.Pos(), first.Src.Pos()), "decide which rules govern it: delete the policy you do not want, or give each a match of its own")
		w.Unsafe = true // which rules a browser gets depends on which definition wins
		warns = append(warns, w)
		p.Note = joinNote(p.Note, fmt.Sprintf("conflicts with %s for %s: selected only by name", first.Src.Pos(), what))
		p.Match = Match{}
		if *def == p {
			*def = nil
		}
		out = append(out, p)
	}
	// A route is bound to one policy.
	routes := map[string]*Policy{}
	for _, p := range out {
		var keep []Value
		for _, r := range p.Match.Routes.Items {
			first, dup := routes[r.S]
			if !dup || first == p {
				routes[r.S] = p
				keep = append(keep, r)
				continue
			}
			w := At(r.Src, CodeConflict, fmt.Sprintf("route %q has CORS rules here and at %s: corsproc binds a route to one policy, that of %s; this policy is kept without the route",
				r.S, first.Src.Pos(), first.Src.Pos()), "decide which rules govern the route, and delete or rename the other")
			w.Unsafe = true
			warns = append(warns, w)
			p.Note = joinNote(p.Note, fmt.Sprintf("route %s left out: it is bound to the policy from %s", r.S, first.Src.Pos()))
		}
		if len(keep) < len(p.Match.Routes.Items) {
			p.Match.Routes.Items = keep
			if len(keep) == 0 {
				p.Match.Routes = List{}
			}
		}
	}
	return out, warns
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func describeMatch(m Match) string {
	var parts []string
	if len(m.Routes.Items) > 0 {
		parts = append(parts, "route "+strings.Join(m.Routes.Strings(), ", "))
	}
	if len(m.Hosts.Items) > 0 {
		parts = append(parts, "host "+strings.Join(m.Hosts.Strings(), ", "))
	}
	if len(m.PathPrefixes.Items) > 0 {
		parts = append(parts, "path prefix "+strings.Join(m.PathPrefixes.Strings(), ", "))
	}
	if m.URLsRegex.S != "" {
		parts = append(parts, "paths matching "+m.URLsRegex.S)
	}
	return strings.Join(parts, " and ")
}

// names gives every policy a valid, unique name.
func names(pols []*Policy) {
	used := map[string]bool{}
	for i, p := range pols {
		n := sanitizeName(p.Name)
		if n == "" {
			n = "policy-" + strconv.Itoa(i+1)
		}
		base := n
		for k := 2; used[n]; k++ {
			n = base + "-" + strconv.Itoa(k)
		}
		used[n] = true
		p.Name = n
	}
}

// sanitizeName turns s into a policy name: [a-z0-9._-]+, other runs
// becoming one "-", at most 63 bytes.
func sanitizeName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
			continue
		}
		dash = r == '-'
	}
	n := strings.Trim(b.String(), "-.")
	if len(n) > 63 {
		n = strings.Trim(n[:63], "-.")
	}
	return n
}

// render writes the policy file and returns the source of every key and
// list entry by field path (policies[0].allowed_origins[1]).
func render(rs *RuleSet, pols []*Policy, def string) ([]byte, map[string]Source) {
	prov := map[string]Source{}
	var b strings.Builder
	from := strings.Join(rs.Files, ", ")
	if len(rs.Files) > 5 {
		from = strings.Join(rs.Files[:5], ", ") + fmt.Sprintf(" and %d more files", len(rs.Files)-5)
	}
	fmt.Fprintf(&b, "# Generated by corsproc import %s from %s.\n", CommentSafe(rs.Source), CommentSafe(from))
	b.WriteString("# Review the warnings printed with it; docs/policy.md describes every key.\n")
	if def != "" {
		fmt.Fprintf(&b, "default_policy: %s\n", YAMLString(def))
	}
	if len(pols) == 0 {
		b.WriteString("policies: []\n")
		return []byte(b.String()), prov
	}
	b.WriteString("policies:\n")
	for i, p := range pols {
		path := fmt.Sprintf("policies[%d]", i)
		prov[path] = p.Src
		fmt.Fprintf(&b, "  - name: %s", YAMLString(p.Name))
		if c := p.Src.comment(); c != "" {
			b.WriteString("  # " + CommentSafe(c))
		}
		b.WriteByte('\n')
		if p.Note != "" {
			fmt.Fprintf(&b, "    # %s\n", CommentSafe(p.Note))
		}
		if !p.Match.empty() {
			b.WriteString("    match:\n")
			prov[path+".match"] = p.Src
			for _, f := range []struct {
				name string
				l    List
			}{{"routes", p.Match.Routes}, {"hosts", p.Match.Hosts}, {"path_prefixes", p.Match.PathPrefixes}} {
				if len(f.l.Items) > 0 {
					writeList(&b, prov, "      ", path+".match", f.name, f.l, true)
				}
			}
			if m := p.Match.URLsRegex; m.S != "" {
				WriteScalar(&b, "      ", "urls_regex", YAMLString(m.S), m.Src.comment())
				prov[path+".match.urls_regex"] = m.Src
			}
		}
		writeOrigins(&b, prov, path, p)
		for _, f := range []struct {
			name string
			l    List
		}{{"allow_methods", p.Methods}, {"allow_headers", p.Headers}, {"expose_headers", p.Expose}} {
			if f.l.IsSet() {
				writeList(&b, prov, "    ", path, f.name, f.l, true)
			}
		}
		if p.MaxAge.Src.IsSet() {
			key(&b, prov, path, "preflight_max_age", strconv.FormatInt(min(max(p.MaxAge.N, 0), maxMaxAge), 10), p.MaxAge.Src)
		}
		if p.Credentials.Src.IsSet() {
			key(&b, prov, path, "allow_credentials", strconv.FormatBool(p.Credentials.V), p.Credentials.Src)
		}
		if p.PrivateNetwork.Src.IsSet() {
			key(&b, prov, path, "allow_private_network", strconv.FormatBool(p.PrivateNetwork.V), p.PrivateNetwork.Src)
		}
		if p.PreflightStatus.Src.IsSet() {
			key(&b, prov, path, "preflight_status", strconv.FormatInt(p.PreflightStatus.N, 10), p.PreflightStatus.Src)
		}
		if p.UnmatchedPreflight.Src.IsSet() {
			key(&b, prov, path, "unmatched_preflight", YAMLString(p.UnmatchedPreflight.S), p.UnmatchedPreflight.Src)
		}
		if p.Mode.Src.IsSet() {
			key(&b, prov, path, "mode", YAMLString(p.Mode.S), p.Mode.Src)
		}
	}
	return []byte(b.String()), prov
}

func key(b *strings.Builder, prov map[string]Source, path, name, value string, src Source) {
	WriteScalar(b, "    ", name, value, src.comment())
	prov[path+"."+name] = src
}

// writeList writes a list, on one line when its entries share its line,
// otherwise one per line, each with its own source.
func writeList(b *strings.Builder, prov map[string]Source, indent, path, name string, l List, flow bool) {
	prov[path+"."+name] = l.Src
	values := l.Strings()
	same := true
	for j, v := range l.Items {
		prov[fmt.Sprintf("%s.%s[%d]", path, name, j)] = v.Src
		if v.Src != l.Src {
			same = false
		}
	}
	if flow && same && WriteFlowList(b, indent, name, values, l.Src.comment(), 110) {
		return
	}
	comments := make([]string, len(l.Items))
	for j, v := range l.Items {
		if !same {
			comments[j] = v.Src.comment()
		}
	}
	WriteBlockList(b, indent, name, values, l.Src.comment(), comments)
}

// writeOrigins writes the origins as allowed_origins,
// allowed_origin_regexes and allow_all_origins.
func writeOrigins(b *strings.Builder, prov map[string]Source, path string, p *Policy) {
	var exact, regexes List
	var all Source
	osrc := p.OriginsSrc
	for _, o := range p.Origins {
		if !osrc.IsSet() {
			osrc = o.Src
		}
		switch o.Kind {
		case OriginExact:
			v := o.Value
			if o.IgnoreCase {
				v = strings.ToLower(v)
			}
			exact.Items = append(exact.Items, Value{v, o.Src})
		case OriginAny, OriginReflect:
			if !all.IsSet() {
				all = o.Src
			}
		default:
			regexes.Items = append(regexes.Items, Value{originRegex(o), o.Src})
		}
	}
	if len(exact.Items) > 0 {
		exact.Src = osrc
		writeList(b, prov, "    ", path, "allowed_origins", exact, false)
	}
	if len(regexes.Items) > 0 {
		regexes.Src = osrc
		writeList(b, prov, "    ", path, "allowed_origin_regexes", regexes, false)
	}
	if all.IsSet() {
		key(b, prov, path, "allow_all_origins", "true", all)
	}
}

// fromDiagnostic turns corsproc's diagnostic on the generated file into a
// warning at the source line the key came from.
func fromDiagnostic(d policy.Diagnostic, pols []*Policy, prov map[string]Source) Warning {
	w := Warning{Fix: d.Fix}
	if rest, ok := strings.CutPrefix(d.Path, "policies["); ok {
		if end := strings.IndexByte(rest, ']'); end > 0 {
			if n, err := strconv.Atoi(rest[:end]); err == nil && n >= 0 && n < len(pols) {
				w.Policy = pols[n].Name
			}
		}
	}
	for p := d.Path; ; {
		if src, ok := prov[p]; ok {
			w.File, w.Line, w.Setting = src.File, src.Line, src.Key
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	origin := strings.Contains(d.Path, "origin")
	if d.Severity == policy.SeverityError {
		w.Message = "corsproc refuses the generated policy: " + d.Message
		w.Error = true
		w.Code = CodeRefused
		if origin {
			w.Code, w.Unsafe = CodeUnsafeOrigin, true
		}
	} else {
		w.Message = "corsproc warns: " + d.Message
		w.Code = CodeCorsproc
		if origin {
			w.Code = CodeOrigin
		}
	}
	return w
}
