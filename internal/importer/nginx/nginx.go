// Package nginx reads the CORS an nginx configuration sets with add_header
// into the importer's rule set (internal/importer): the
// Access-Control-Allow-* , -Expose-Headers and -Max-Age headers of http,
// server and location blocks (with always or not), the
// if ($request_method = OPTIONS) { ... return 204; } preflight idiom,
// if ($http_origin ~* regex) blocks, and map $http_origin $var { ... }
// allow lists with exact and regex entries. Policies are matched by host
// (server_name) and path (location). The files are parsed with gonginx;
// docs/migrating.md describes the mapping and every difference.
//
// nginx's behaviour is taken from its source (its main branch, read in
// 2026):
// src/http/modules/ngx_http_headers_filter_module.c,
// ngx_http_headers_filter: add_header without always adds the header
// only to 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 responses,
// and an empty value adds nothing; ngx_http_headers_merge_conf: a block
// with any add_header of its own inherits none of the enclosing block's.
// The regexes of map, if and location are PCRE, searched, not anchored:
// ngx_regex_exec (src/core/ngx_regex.c) calls pcre2_match without
// PCRE2_ANCHORED; ~* compiles them with PCRE2_CASELESS, ~ without
// (ngx_regex_compile, NGX_REGEX_CASELESS). Read at release 1.31.4.
package nginx

import (
	"fmt"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"

	"github.com/tufanbarisyildirim/gonginx/config"
	"github.com/tufanbarisyildirim/gonginx/parser"

	"github.com/corsproc/corsproc/internal/importer"
)

// Read parses the nginx files and returns their CORS rule sets. A file
// included by another one of files (include cors.conf;) is read where it
// is included, not on its own. The error is for a file nginx syntax
// cannot describe.
func Read(files []importer.File) (*importer.RuleSet, error) {
	r := &reader{rs: &importer.RuleSet{Source: "nginx", DefaultPolicy: -1}, parsed: map[string]*parsedFile{}, maps: map[string]*originMap{}, rank: map[*importer.Policy][3]int{}}
	for _, f := range files {
		r.rs.Files = append(r.rs.Files, f.Name)
		c, err := parse(f)
		if err != nil {
			return nil, err
		}
		r.parsed[f.Name] = &parsedFile{name: f.Name, block: c.Block, lines: strings.Split(string(f.Data), "\n")}
		r.order = append(r.order, f.Name)
	}
	// Included files are read where they are included.
	included := map[string]bool{}
	for _, name := range r.order {
		walk(r.parsed[name].block, func(d config.IDirective) {
			if d.GetName() == "include" && len(d.GetParameters()) > 0 {
				for _, t := range r.includeTargets(unquote(d.GetParameters()[0].Value)) {
					if t != name {
						included[t] = true
					}
				}
			}
		})
	}
	// Maps first: they are global to the http block, wherever they are.
	for _, name := range r.order {
		r.collectMaps(r.parsed[name])
	}
	for _, name := range r.order {
		if included[name] {
			continue
		}
		pf := r.parsed[name]
		r.scope(pf, pf.block, &scope{kind: "main", file: pf}, nil)
	}
	r.order_()
	return r.rs, nil
}

// order_ puts the policies in the order nginx selects their blocks, since
// corsproc takes the first policy whose match holds: servers with exact
// names before wildcard names before none (ngx_http_find_virtual_server),
// and within them locations = before regex locations before prefixes,
// longest first, before the server's own policy
// (ngx_http_core_find_location).
func (r *reader) order_() {
	def := (*importer.Policy)(nil)
	if r.rs.DefaultPolicy >= 0 {
		def = r.rs.Policies[r.rs.DefaultPolicy]
	}
	slices.SortStableFunc(r.rs.Policies, func(a, b *importer.Policy) int {
		ka, kb := r.rank[a], r.rank[b]
		for i := range ka {
			if ka[i] != kb[i] {
				return ka[i] - kb[i]
			}
		}
		return 0
	})
	r.rs.DefaultPolicy = slices.Index(r.rs.Policies, def)
}

func parse(f importer.File) (c *config.Config, err error) {
	defer func() {
		// gonginx is a third-party parser: a panic in it on hostile input
		// is a parse error of that file, never a crash of corsproc.
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%s: the nginx parser failed: %v", f.Name, r)
		}
	}()
	c, err = parser.NewStringParser(string(f.Data), parser.WithSkipValidDirectivesErr(), parser.WithSkipComments()).Parse()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return c, nil
}

type parsedFile struct {
	name  string
	block config.IBlock
	lines []string
}

type reader struct {
	rs     *importer.RuleSet
	parsed map[string]*parsedFile
	order  []string
	maps   map[string]*originMap // by result variable ($cors_origin)
	depth  int
	rank   map[*importer.Policy][3]int
	// expansions counts included files read, against maxExpansions.
	expansions int
}

// maxExpansions bounds the included files read in one import, so that
// files including each other by glob cannot make it take hours.
const maxExpansions = 10000

// walk calls fn on every directive of b and its blocks.
func walk(b config.IBlock, fn func(config.IDirective)) {
	if b == nil {
		return
	}
	for _, d := range b.GetDirectives() {
		fn(d)
		walk(d.GetBlock(), fn)
	}
}

// includeTargets finds the read files an include names: the same path,
// or the same path relative to a directory of the import; a glob
// (include sites-enabled/*;) matches each file whose last path elements
// it matches, as many as it has (at least the directory and the name).
func (r *reader) includeTargets(path string) []string {
	pat := strings.Split(strings.Trim(filepath.ToSlash(path), "/"), "/")
	var out []string
	for _, name := range r.order {
		parts := strings.Split(filepath.ToSlash(name), "/")
		n := min(len(pat), len(parts))
		if n < min(2, len(pat)) {
			continue
		}
		ok := true
		for i := 1; i <= n && ok; i++ {
			m, err := filepath.Match(pat[len(pat)-i], parts[len(parts)-i])
			ok = err == nil && m
		}
		if ok {
			out = append(out, name)
		}
	}
	return out
}

// startLine is the line a directive starts on. gonginx records the line
// where a directive ends (its ";" or its block's "}"), so the start is the
// last line at or before limit that holds the directive's name.
func (pf *parsedFile) startLine(d config.IDirective) int {
	limit := d.GetLine()
	if b := d.GetBlock(); b != nil {
		if ds := b.GetDirectives(); len(ds) > 0 {
			limit = min(limit, pf.startLine(ds[0]))
		}
	}
	name := d.GetName()
	for l := min(limit, len(pf.lines)); l >= 1; l-- {
		if hasWord(pf.lines[l-1], name) {
			return l
		}
	}
	return d.GetLine()
}

// hasWord reports whether line holds name as a directive name: not part of
// a longer word (server in server_name).
func hasWord(line, name string) bool {
	for i := 0; ; {
		j := strings.Index(line[i:], name)
		if j < 0 || name == "" {
			return false
		}
		j += i
		end := j + len(name)
		before := j == 0 || strings.IndexByte(" \t;{}'\"", line[j-1]) >= 0
		after := end == len(line) || strings.IndexByte(" \t;{'\"", line[end]) >= 0
		if before && after {
			return true
		}
		i = j + 1
	}
}

func (pf *parsedFile) src(d config.IDirective, key string) importer.Source {
	return importer.Source{File: pf.name, Line: pf.startLine(d), Key: key}
}

// unquote returns an nginx token's value: quotes removed, backslash
// escapes applied.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		s = s[1 : len(s)-1]
	}
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 't':
				b.WriteByte('\t')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case '"', '\'', '\\':
				b.WriteByte(s[i])
			default:
				b.WriteByte('\\')
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func params(d config.IDirective) []string {
	var out []string
	for _, p := range d.GetParameters() {
		out = append(out, unquote(p.Value))
	}
	return out
}

// originMap is map $http_origin $var { ... }.
type originMap struct {
	src     importer.Source
	entries []mapEntry
	def     *mapEntry
}

type mapEntry struct {
	key, value string
	src        importer.Source
}

func (r *reader) collectMaps(pf *parsedFile) {
	walk(pf.block, func(d config.IDirective) {
		if d.GetName() != "map" || d.GetBlock() == nil {
			return
		}
		ps := params(d)
		if len(ps) != 2 {
			return
		}
		m := &originMap{src: pf.src(d, "map "+ps[0]+" "+ps[1])}
		if ps[0] != "$http_origin" {
			// Only maps over the Origin matter here; one over another
			// variable is recorded so that using it as an origin is
			// reported, not guessed.
			m.src.Key = "map " + ps[0]
			r.maps[ps[1]] = &originMap{src: m.src, def: &mapEntry{key: "\x00other", src: m.src}}
			return
		}
		for _, e := range d.GetBlock().GetDirectives() {
			key := unquote(e.GetName())
			vs := params(e)
			val := ""
			if len(vs) > 0 {
				val = vs[0]
			}
			me := mapEntry{key: key, value: val, src: pf.src(e, "map "+ps[1]+" "+key)}
			switch key {
			case "default":
				me.src = pf.src(e, "map "+ps[1]+" default")
				m.def = &me
			case "hostnames", "volatile", "include":
				r.warn(me.src, importer.CodeLeftOut, true, fmt.Sprintf("%s in a map is not read", key), "write the map's entries into the policy by hand")
			default:
				m.entries = append(m.entries, me)
			}
		}
		r.maps[ps[1]] = m
	})
}

func (r *reader) warn(src importer.Source, code importer.Code, leftOut bool, msg, fix string) {
	w := importer.At(src, code, msg, fix)
	w.LeftOut = leftOut
	r.rs.Warnings = append(r.rs.Warnings, w)
}

// header is one add_header of a CORS header.
type header struct {
	name   string // lower case
	value  string
	always bool
	src    importer.Source
}

// headerSet is the add_header directives of one block (or if block).
type headerSet struct {
	own     bool // the block has add_header directives of its own
	headers []header
	src     importer.Source
}

func (h *headerSet) get(name string) []header {
	var out []header
	if h == nil {
		return nil
	}
	for _, x := range h.headers {
		if x.name == name {
			out = append(out, x)
		}
	}
	return out
}

func (h *headerSet) cors() bool {
	if h == nil {
		return false
	}
	for _, x := range h.headers {
		if strings.HasPrefix(x.name, "access-control-") {
			return true
		}
	}
	return false
}

// scope is an http, server or location block, or a file's top level.
type scope struct {
	kind   string // main, http, server, location
	file   *parsedFile
	d      config.IDirective
	hosts  importer.List
	prefix string // location prefix
	exact  bool
	regex  string // location regex (whole-path RE2)
	regSrc importer.Source
	// set is the block's add_header set (inherited when it has none).
	set *headerSet
	// methods are if ($request_method ...) blocks' sets, by upper-case
	// method; OPTIONS is the preflight idiom.
	methods map[string]*headerSet
	// preflightStatus is the return of the OPTIONS block; 0 for none.
	preflightStatus int64
	preflightSrc    importer.Source
	// originIfs are if ($http_origin ~ re) blocks.
	originIfs []originIf
	// vars set from $http_origin under an origin if.
	sets map[string][]originIf
	// flags are the origins under which an origin if sets a variable to a
	// constant (set $cors true;), by "variable=value".
	flags map[string][]importer.Origin
	auth  []importer.Source
	// varyInherited: the enclosing block's headers.
	parent *scope
}

// originIf is an if block on the Origin: the origins it lets in, and its
// add_header directives.
type originIf struct {
	origins []importer.Origin
	set     *headerSet
}

func (r *reader) scope(pf *parsedFile, b config.IBlock, sc *scope, parent *scope) {
	if b == nil {
		return
	}
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > 64 {
		r.warn(importer.Source{File: pf.name}, importer.CodeLeftOut, true, "blocks nested more than 64 deep are not read", "")
		return
	}
	sc.parent = parent
	sc.methods = map[string]*headerSet{}
	sc.sets = map[string][]originIf{}
	sc.flags = map[string][]importer.Origin{}
	own := &headerSet{}
	var children []func()
	directives := r.expand(pf, b.GetDirectives(), 0)
	for _, x := range directives {
		d, f := x.d, x.pf
		switch d.GetName() {
		case "add_header":
			if h, ok := r.addHeader(f, d); ok {
				own.headers = append(own.headers, h)
			}
			own.own = true
			if !own.src.IsSet() {
				own.src = f.src(d, "add_header")
			}
		case "more_set_headers":
			for _, p := range params(d) {
				if strings.HasPrefix(strings.ToLower(p), "access-control-") {
					r.warn(f.src(d, "more_set_headers"), importer.CodeLeftOut, true, "headers-more's more_set_headers is not read", "write this CORS header into the policy by hand")
					break
				}
			}
		case "server_name":
			for _, n := range params(d) {
				r.serverName(f, d, n, &sc.hosts)
			}
		case "if":
			r.ifBlock(f, d, sc)
		case "auth_basic", "auth_request", "auth_jwt", "satisfy":
			if ps := params(d); len(ps) > 0 && ps[0] != "off" && d.GetName() != "satisfy" {
				sc.auth = append(sc.auth, f.src(d, d.GetName()))
			}
		case "server", "location", "http":
			d, f := d, f
			children = append(children, func() { r.child(f, d, sc) })
		}
	}
	if own.own {
		sc.set = own
	} else if parent != nil {
		sc.set = parent.set
	}
	r.emit(sc)
	// Locations are selected longest prefix first in nginx; corsproc takes
	// the first policy that matches, so the policies of a block's children
	// are emitted most specific first.
	for _, c := range children {
		c()
	}
}

type located struct {
	d  config.IDirective
	pf *parsedFile
}

// expand replaces include directives naming a file of the import with the
// file's directives.
func (r *reader) expand(pf *parsedFile, ds []config.IDirective, depth int) []located {
	var out []located
	for _, d := range ds {
		if d.GetName() == "include" && len(d.GetParameters()) > 0 {
			if ts := r.includeTargets(unquote(d.GetParameters()[0].Value)); len(ts) > 0 && depth < 8 {
				for _, t := range ts {
					if r.expansions++; r.expansions > maxExpansions {
						r.warn(pf.src(d, "include"), importer.CodeLeftOut, true, fmt.Sprintf("more than %d includes expanded: the rest are not read", maxExpansions), "import the files one by one")
						break
					}
					if t != pf.name {
						inc := r.parsed[t]
						out = append(out, r.expand(inc, inc.block.GetDirectives(), depth+1)...)
					}
				}
				continue
			}
		}
		out = append(out, located{d, pf})
	}
	return out
}

func (r *reader) child(pf *parsedFile, d config.IDirective, parent *scope) {
	c := &scope{kind: d.GetName(), file: pf, d: d, hosts: parent.hosts, auth: slices.Clone(parent.auth)}
	c.prefix, c.regex = parent.prefix, parent.regex
	if d.GetName() == "server" {
		c.hosts = importer.List{}
		c.prefix, c.regex = "", ""
	}
	if d.GetName() == "location" {
		ps := params(d)
		src := pf.src(d, "location "+strings.Join(ps, " "))
		switch {
		case len(ps) == 1 && strings.HasPrefix(ps[0], "@"):
			return // a named location is reached only by internal redirects
		case len(ps) == 1:
			c.prefix = ps[0]
		case len(ps) == 2 && (ps[0] == "^~"):
			c.prefix = ps[1]
		case len(ps) == 2 && ps[0] == "=":
			c.prefix, c.exact = ps[1], true
		case len(ps) == 2 && (ps[0] == "~" || ps[0] == "~*"):
			re, how := wholeMatch(ps[1])
			if ps[0] == "~*" {
				re = "(?i)" + re
			}
			c.prefix, c.regex, c.regSrc = "", re, src
			if how != "" {
				r.warn(src, importer.CodeDifference, false, fmt.Sprintf("nginx searches the URI for %q (PCRE, on the decoded URI); the policy matches the whole raw path with the RE2 regex %q", ps[1], re), "check it against your paths as Envoy sees them: percent-encoded, with the query removed")
			}
		default:
			r.warn(src, importer.CodeLeftOut, true, "a location the importer does not understand", "write its CORS into the policy by hand")
			return
		}
	}
	r.scope(pf, d.GetBlock(), c, parent)
}

// serverName adds one server_name to hosts.
func (r *reader) serverName(pf *parsedFile, d config.IDirective, n string, hosts *importer.List) {
	src := pf.src(d, "server_name")
	switch {
	case n == "" || n == "_" || n == "localhost" && false:
		return
	case strings.HasPrefix(n, "~"):
		r.warn(src, importer.CodeLeftOut, true, fmt.Sprintf("the regex server name %q is not carried over: corsproc matches hosts by name or *.suffix", n), "list the hosts it stands for in match.hosts")
	case strings.HasPrefix(n, "."):
		hosts.Add(importer.Value{S: n[1:], Src: src})
		hosts.Add(importer.Value{S: "*" + n, Src: src})
	case strings.HasSuffix(n, ".*"):
		r.warn(src, importer.CodeLeftOut, true, fmt.Sprintf("the server name %q (a wildcard at the end) is not carried over: corsproc matches *.suffix only", n), "list the hosts it stands for in match.hosts")
	default:
		hosts.Add(importer.Value{S: strings.ToLower(n), Src: src})
	}
}

var corsHeaders = map[string]bool{
	"access-control-allow-origin": true, "access-control-allow-methods": true, "access-control-allow-headers": true,
	"access-control-allow-credentials": true, "access-control-expose-headers": true, "access-control-max-age": true,
	"access-control-allow-private-network": true, "vary": true,
}

func (r *reader) addHeader(pf *parsedFile, d config.IDirective) (header, bool) {
	ps := params(d)
	if len(ps) < 2 {
		return header{}, false
	}
	name := strings.ToLower(ps[0])
	h := header{name: name, value: ps[1], src: pf.src(d, "add_header "+ps[0])}
	for _, p := range ps[2:] {
		if p == "always" {
			h.always = true
		}
	}
	if !corsHeaders[name] {
		return header{}, false
	}
	return h, true
}

var methodCond = regexp.MustCompile(`^\(?\s*\$request_method\s*(=|!=|~\*?)\s*(.*?)\s*\)?$`)
var originCond = regexp.MustCompile(`^\(?\s*\$http_origin\s*(=|~\*?)\s*(.*?)\s*\)?$`)
var flagCond = regexp.MustCompile(`^(\$[A-Za-z0-9_]+)\s*=\s*(\S+)$`)

// ifBlock reads one if block of a server or location.
func (r *reader) ifBlock(pf *parsedFile, d config.IDirective, sc *scope) {
	cond := strings.Join(params(d), " ")
	cond = strings.TrimSpace(cond)
	if strings.HasPrefix(cond, "(") && strings.HasSuffix(cond, ")") {
		cond = strings.TrimSpace(cond[1 : len(cond)-1])
	}
	src := pf.src(d, "if ("+cond+")")
	set := &headerSet{src: src}
	var status int64
	var setVars [][2]string
	if b := d.GetBlock(); b != nil {
		for _, x := range r.expand(pf, b.GetDirectives(), 0) {
			switch x.d.GetName() {
			case "add_header":
				set.own = true
				if h, ok := r.addHeader(x.pf, x.d); ok {
					set.headers = append(set.headers, h)
				}
			case "return":
				if ps := params(x.d); len(ps) > 0 {
					status, _ = strconv.ParseInt(ps[0], 10, 64)
				}
			case "set":
				if ps := params(x.d); len(ps) == 2 {
					setVars = append(setVars, [2]string{ps[0], ps[1]})
				}
			}
		}
	}
	if m := methodCond.FindStringSubmatch(cond); m != nil {
		val := unquote(m[2])
		var methods []string
		switch m[1] {
		case "=":
			methods = []string{strings.ToUpper(val)}
		case "~", "~*":
			// ~ is case-sensitive, ~* not (NGX_REGEX_CASELESS).
			flags := ""
			if m[1] == "~*" {
				flags = "(?i)"
			}
			re, err := regexp.Compile(flags + val)
			for _, meth := range []string{"OPTIONS", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
				if err == nil && re.MatchString(meth) {
					methods = append(methods, meth)
				}
			}
		default:
			if set.cors() {
				r.warn(src, importer.CodeLeftOut, true, "CORS headers under a negated method condition are not read", "write them into the policy by hand")
			}
			return
		}
		for _, meth := range methods {
			sc.methods[meth] = set
		}
		if slices.Contains(methods, "OPTIONS") && status != 0 {
			sc.preflightStatus, sc.preflightSrc = status, pf.src(d, "return")
		}
		return
	}
	if m := originCond.FindStringSubmatch(cond); m != nil {
		val := unquote(m[2])
		o := importer.Origin{Value: val, Src: src}
		if m[1] == "=" {
			o.Kind = importer.OriginExact
		} else {
			re, how := wholeMatch(val)
			o.Kind, o.Value, o.IgnoreCase = importer.OriginRegex, re, m[1] == "~*"
			if how != "" {
				r.warn(src, importer.CodeDifference, false, fmt.Sprintf("nginx searches the Origin for %q; corsproc matches the whole origin, so it is written as %q, which lets in the same origins (%s)", val, re, how), "anchor it (^https://…$) to see what it really allows")
			}
		}
		oi := originIf{origins: []importer.Origin{o}, set: set}
		if set.own {
			sc.originIfs = append(sc.originIfs, oi)
		}
		for _, sv := range setVars {
			switch {
			case sv[1] == "$http_origin":
				sc.sets[sv[0]] = append(sc.sets[sv[0]], oi)
			case strings.HasPrefix(sv[1], "$"):
			default:
				// set $cors true; read later by if ($cors = true) { ... }
				sc.flags[sv[0]+"="+sv[1]] = append(sc.flags[sv[0]+"="+sv[1]], o)
			}
		}
		return
	}
	if m := flagCond.FindStringSubmatch(cond); m != nil {
		for s := sc; s != nil; s = s.parent {
			if os, ok := s.flags[m[1]+"="+unquote(m[2])]; ok {
				if set.own {
					sc.originIfs = append(sc.originIfs, originIf{origins: os, set: set})
				}
				return
			}
		}
	}
	if set.cors() {
		r.warn(src, importer.CodeLeftOut, true, fmt.Sprintf("CORS headers under the condition (%s) are not read: corsproc cannot select a policy by it", cond), "write them into the policy by hand")
	}
}

// wholeMatch turns a PCRE search regex into an RE2 regex matched against
// the whole string, and says how it was anchored ("" when it was at both
// ends).
func wholeMatch(re string) (string, string) {
	if r, err := syntax.Parse(re, syntax.Perl); err == nil && r.Op == syntax.OpAlternate {
		// ^a|b$ is (^a)|(b$): the anchors belong to the branches. A
		// regex matched whole with its anchors in place is the search.
		for _, b := range r.Sub {
			if b.Op != syntax.OpConcat || len(b.Sub) < 2 || b.Sub[0].Op != syntax.OpBeginText || b.Sub[len(b.Sub)-1].Op != syntax.OpEndText {
				return ".*(?:" + re + ").*", "its branches are not all anchored at both ends"
			}
		}
		return re, ""
	}
	start := strings.HasPrefix(re, "^")
	end := strings.HasSuffix(re, "$") && !strings.HasSuffix(re, `\$`)
	body := re
	if start {
		body = body[1:]
	}
	if end && len(body) > 0 {
		body = body[:len(body)-1]
	}
	switch {
	case start && end:
		return body, ""
	case start:
		return "(?:" + body + ").*", "not anchored at the end"
	case end:
		return ".*(?:" + body + ")", "not anchored at the start"
	}
	return ".*(?:" + body + ").*", "anchored at neither end"
}

// actualSets are the header sets nginx adds to actual (non-preflight)
// requests in a scope, and the methods each covers ("" for every method
// no if block takes).
func (sc *scope) actualSets() []*headerSet {
	var out []*headerSet
	if sc.set != nil {
		out = append(out, sc.set)
	}
	for m, s := range sc.methods {
		if m != "OPTIONS" && s.own && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, oi := range sc.originIfs {
		out = append(out, oi.set)
	}
	slices.SortStableFunc(out, func(a, b *headerSet) int { return a.src.Line - b.src.Line })
	return out
}

func (sc *scope) preflightSet() *headerSet {
	if s := sc.methods["OPTIONS"]; s != nil && s.own {
		return s
	}
	return sc.set
}

// hasOwnCORS reports whether the scope itself sets CORS headers.
func (sc *scope) hasOwnCORS() bool {
	if sc.set != nil && sc.set.cors() && (sc.parent == nil || sc.parent.set != sc.set) {
		return true
	}
	for _, s := range sc.methods {
		if s.cors() {
			return true
		}
	}
	for _, oi := range sc.originIfs {
		if oi.set.cors() {
			return true
		}
	}
	return false
}

func (sc *scope) name() string {
	var parts []string
	if len(sc.hosts.Items) > 0 {
		parts = append(parts, sc.hosts.Items[0].S)
	}
	switch {
	case sc.prefix != "" && sc.prefix != "/":
		parts = append(parts, sc.prefix)
	case sc.regex != "":
		parts = append(parts, "regex")
	}
	if len(parts) == 0 {
		return "nginx"
	}
	return strings.Join(parts, "-")
}

func (r *reader) emit(sc *scope) {
	if sc.kind == "server" && len(sc.hosts.Items) == 0 && sc.hasOwnCORS() {
		r.warn(sc.file.src(sc.d, "server"), importer.CodeDifference, false, "this server has no server_name the policy can match: its policy matches every host", "add match.hosts if other servers share the listener")
	}
	dropped := !sc.hasOwnCORS() && sc.set != nil && !sc.set.cors() && sc.parent != nil && sc.parent.set != nil && sc.parent.set.cors() && sc.set != sc.parent.set
	if !sc.hasOwnCORS() && !dropped {
		return
	}
	p := &importer.Policy{Name: sc.name()}
	if sc.d != nil {
		key := sc.kind
		if sc.kind == "location" {
			key = "location " + strings.Join(params(sc.d), " ")
		}
		p.Src = sc.file.src(sc.d, key)
	} else {
		p.Src = importer.Source{File: sc.file.name, Key: "add_header"}
	}
	p.Match.Hosts = sc.hosts
	if sc.exact {
		// location = /x: that path only, which urls_regex says exactly.
		p.Match.URLsRegex = importer.String{S: regexp.QuoteMeta(sc.prefix), Src: p.Src}
	} else if sc.prefix != "" {
		p.Match.PathPrefixes.Add(importer.Value{S: sc.prefix, Src: p.Src})
	} else if sc.regex != "" {
		p.Match.URLsRegex = importer.String{S: sc.regex, Src: sc.regSrc}
	}
	if dropped {
		p.Note = "this block's own add_header replaces the CORS headers of the enclosing block: nginx sends none here"
		r.warn(p.Src, importer.CodeDifference, false, "this block has add_header directives of its own, so nginx adds none of the enclosing block's CORS headers here (add_header is inherited only by blocks without one): the policy allows no origin on these paths, as nginx did",
			"if these paths should have CORS, give the policy the origins of the enclosing block")
	} else {
		r.fill(sc, p)
	}
	r.register(sc, p)
}

func (r *reader) fill(sc *scope, p *importer.Policy) {
	pre := sc.preflightSet()
	actual := sc.actualSets()
	// Origins, from every set that answers with Access-Control-Allow-Origin.
	seen := map[string]bool{}
	addOrigins := func(os []importer.Origin) {
		for _, o := range os {
			k := fmt.Sprint(o.Kind, o.Value)
			if !seen[k] {
				seen[k] = true
				p.Origins = append(p.Origins, o)
			}
		}
	}
	var preOrigins, actOrigins []string
	for _, s := range append([]*headerSet{pre}, actual...) {
		if s == nil {
			continue
		}
		var oi *originIf
		for i := range sc.originIfs {
			if sc.originIfs[i].set == s {
				oi = &sc.originIfs[i]
			}
		}
		for _, h := range s.get("access-control-allow-origin") {
			if !p.OriginsSrc.IsSet() {
				p.OriginsSrc = h.src
			}
			os := r.resolveOrigin(sc, h, oi)
			addOrigins(os)
			for _, o := range os {
				if s == pre {
					preOrigins = append(preOrigins, o.Value)
				} else {
					actOrigins = append(actOrigins, o.Value)
				}
			}
		}
	}
	if sc.methods["OPTIONS"] != nil && len(preOrigins) > 0 && len(actOrigins) > 0 {
		slices.Sort(preOrigins)
		slices.Sort(actOrigins)
		if !slices.Equal(slices.Compact(preOrigins), slices.Compact(actOrigins)) {
			r.warn(p.Src, importer.CodeDifference, false, "the preflight block and the actual requests allow different origins; the policy allows both on both", "check the origins of the policy")
		}
	}
	// Preflight answers. When the OPTIONS block answers preflights itself
	// (return), a header it leaves out is one the browser goes without:
	// only safelisted methods and headers pass, and the preflight is
	// cached 5 seconds. The policy says so (allow_methods: [],
	// allow_headers: [], preflight_max_age: 0) instead of taking
	// corsproc's wider defaults.
	answered := sc.preflightStatus != 0 && pre != nil && pre == sc.methods["OPTIONS"]
	without := func(header string) importer.Source {
		return importer.Source{File: pre.src.File, Line: pre.src.Line, Key: pre.src.Key + " (no " + header + ")"}
	}
	if h := last(pre.get("access-control-allow-methods")); h != nil {
		p.Methods = splitList(h, strings.ToUpper)
	} else if answered {
		p.Methods = importer.List{Src: without("Access-Control-Allow-Methods")}
	}
	if h := last(pre.get("access-control-allow-headers")); h != nil {
		p.Headers = splitList(h, strings.ToLower)
	} else if answered {
		p.Headers = importer.List{Src: without("Access-Control-Allow-Headers")}
	}
	if h := last(pre.get("access-control-max-age")); h == nil && answered {
		p.MaxAge = importer.Int{N: 0, Src: without("Access-Control-Max-Age")}
	} else if h != nil {
		n, err := strconv.ParseInt(strings.TrimSpace(h.value), 10, 64)
		if err != nil {
			r.warn(h.src, importer.CodeLeftOut, true, fmt.Sprintf("Access-Control-Max-Age %q is not a number of seconds", h.value), "write preflight_max_age by hand")
		} else {
			p.MaxAge = importer.Int{N: n, Src: h.src}
		}
	}
	for _, s := range append(actual, pre) {
		if h := last(s.get("access-control-allow-credentials")); h != nil && !p.Credentials.Src.IsSet() {
			if strings.EqualFold(strings.TrimSpace(h.value), "true") {
				p.Credentials = importer.Bool{V: true, Src: h.src}
			}
		}
		if h := last(s.get("access-control-allow-private-network")); h != nil && !p.PrivateNetwork.Src.IsSet() && s == pre {
			p.PrivateNetwork = importer.Bool{V: strings.EqualFold(h.value, "true"), Src: h.src}
		}
	}
	for _, s := range actual {
		if h := last(s.get("access-control-expose-headers")); h != nil && !p.Expose.IsSet() {
			p.Expose = splitList(h, strings.ToLower)
		}
	}
	// Vary: Origin on the actual requests' answers.
	p.Vary = importer.VaryMissing
	for _, s := range actual {
		for _, h := range s.get("vary") {
			if strings.Contains(strings.ToLower(h.value), "origin") {
				p.Vary = importer.VaryPresent
			}
		}
		if p.VarySrc == (importer.Source{}) {
			if h := last(s.get("access-control-allow-origin")); h != nil {
				p.VarySrc = h.src
			}
		}
	}
	// The preflight.
	if opt := sc.methods["OPTIONS"]; opt != nil && opt.own && sc.preflightStatus != 0 {
		switch sc.preflightStatus {
		case 200, 204:
			p.PreflightStatus = importer.Int{N: sc.preflightStatus, Src: sc.preflightSrc}
		default:
			r.warn(sc.preflightSrc, importer.CodeDifference, false, fmt.Sprintf("nginx answered preflights with %d; corsproc answers an allowed one with 204 (or 200)", sc.preflightStatus), "keep 204, or set preflight_status: 200 if a client checks for 200")
		}
	} else {
		src := p.Src
		r.warn(src, importer.CodeDifference, false, "no if ($request_method = OPTIONS) { ... return 204; } block: nginx passed preflights to the upstream and added the CORS headers to its answer; corsproc answers them itself, before the upstream", "if the upstream answers OPTIONS for clients other than browsers, set unmatched_preflight: forward, so that the preflights corsproc refuses still reach it")
		if len(sc.auth) > 0 {
			w := importer.At(sc.auth[0], importer.CodePreflightAuth, fmt.Sprintf("preflights reach %s before anything answers them: the browser sends no credentials on a preflight, so it is refused and the actual request never sent", sc.auth[0].Key),
				"answer preflights before authentication: corsproc does, as the first filter; in nginx, an if ($request_method = OPTIONS) { ... return 204; } block")
			w.Unsafe = true
			r.rs.Warnings = append(r.rs.Warnings, w)
		}
	}
	// add_header without always: only on 2xx and 3xx responses.
	for _, s := range actual {
		for _, h := range s.get("access-control-allow-origin") {
			if !h.always {
				w := importer.At(h.src, importer.CodeDifference, "without always, nginx added this header only to 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 responses, so scripts saw a 401, 404 or 500 as a CORS error; corsproc adds the CORS headers to every response of the route", "check that the scripts calling these routes handle the 4xx and 5xx statuses they can now read")
				r.rs.Warnings = append(r.rs.Warnings, w)
			}
		}
	}
	if len(sc.methods) > 0 && sc.set != nil && !sc.set.cors() {
		var ms []string
		for m, s := range sc.methods {
			if m != "OPTIONS" && s.cors() {
				ms = append(ms, m)
			}
		}
		if len(ms) > 0 {
			slices.Sort(ms)
			r.warn(p.Src, importer.CodeDifference, false, fmt.Sprintf("nginx added the CORS headers to %s requests only; corsproc answers every method of an allowed origin (preflights still check allow_methods)", strings.Join(ms, ", ")), "list in allow_methods the methods scripts may use")
		}
	}
}

// register adds p, with the rank of its block for order_.
func (r *reader) register(sc *scope, p *importer.Policy) {
	hostRank := 2
	for _, h := range sc.hosts.Items {
		if strings.HasPrefix(h.S, "*") {
			hostRank = min(hostRank, 1)
		} else {
			hostRank = 0
		}
	}
	pathRank := [3]int{hostRank, 3, 0}
	switch {
	case sc.exact:
		pathRank[1] = 0
	case sc.regex != "":
		pathRank[1] = 1
	case sc.prefix != "":
		pathRank[1], pathRank[2] = 2, -len(sc.prefix)
	}
	r.rank[p] = pathRank
	if (sc.kind == "main" || sc.kind == "http") && r.rs.DefaultPolicy < 0 {
		r.rs.DefaultPolicy = len(r.rs.Policies)
	}
	r.rs.Policies = append(r.rs.Policies, p)
}

func last(hs []header) *header {
	if len(hs) == 0 {
		return nil
	}
	return &hs[len(hs)-1]
}

func splitList(h *header, norm func(string) string) importer.List {
	l := importer.List{Src: h.src}
	for _, part := range strings.Split(h.value, ",") {
		if part = strings.TrimSpace(part); part != "" {
			l.Items = append(l.Items, importer.Value{S: norm(part), Src: h.src})
		}
	}
	return l
}

// resolveOrigin turns one Access-Control-Allow-Origin value into origin
// rules.
func (r *reader) resolveOrigin(sc *scope, h header, oi *originIf) []importer.Origin {
	v := strings.TrimSpace(h.value)
	switch {
	case v == "":
		return nil
	case v == "*":
		return []importer.Origin{{Kind: importer.OriginAny, Value: "*", Src: h.src}}
	case v == "$http_origin":
		if oi != nil {
			return oi.origins
		}
		return []importer.Origin{{Kind: importer.OriginReflect, Value: v, Src: h.src}}
	case strings.HasPrefix(v, "$"):
		for s := sc; s != nil; s = s.parent {
			if ois, ok := s.sets[v]; ok {
				var out []importer.Origin
				for _, oi := range ois {
					out = append(out, oi.origins...)
				}
				return out
			}
		}
		if m, ok := r.maps[v]; ok {
			return r.mapOrigins(m, h)
		}
		r.warn(h.src, importer.CodeLeftOut, true, fmt.Sprintf("the origin comes from %s, which the importer cannot follow", v), "write the origins it allows into allowed_origins by hand")
		return nil
	case strings.ContainsAny(v, " ,"):
		r.warn(h.src, importer.CodeDifference, false, fmt.Sprintf("%q names several origins in one header, which browsers refuse: no origin was allowed; the policy allows each", v), "delete the origins that should not be allowed")
		var out []importer.Origin
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' }) {
			out = append(out, importer.Origin{Kind: importer.OriginExact, Value: f, Src: h.src})
		}
		return out
	}
	return []importer.Origin{{Kind: importer.OriginExact, Value: v, Src: h.src}}
}

func (r *reader) mapOrigins(m *originMap, h header) []importer.Origin {
	if m.def != nil && m.def.key == "\x00other" {
		r.warn(h.src, importer.CodeLeftOut, true, fmt.Sprintf("the origin comes from %s, a map over another variable than $http_origin", m.src.Key), "write the origins it allows into allowed_origins by hand")
		return nil
	}
	var out []importer.Origin
	for _, e := range m.entries {
		switch e.value {
		case "", "0", "off", "false":
			continue // the header is not sent for this entry
		}
		var o importer.Origin
		switch {
		case strings.HasPrefix(e.key, "~"):
			pat, ci := e.key[1:], false
			if strings.HasPrefix(pat, "*") {
				pat, ci = pat[1:], true
			}
			re, how := wholeMatch(pat)
			o = importer.Origin{Kind: importer.OriginRegex, Value: re, IgnoreCase: ci, Src: e.src}
			if how != "" {
				r.warn(e.src, importer.CodeDifference, false, fmt.Sprintf("nginx searches the Origin for %q; corsproc matches the whole origin, so it is written as %q, which lets in the same origins (%s)", pat, re, how), "anchor it (^https://…$) to see what it really allows")
			}
		default:
			o = importer.Origin{Kind: importer.OriginExact, Value: e.key, Src: e.src}
		}
		switch {
		case e.value == "$http_origin", e.value == e.key:
		case e.value == "*":
			o = importer.Origin{Kind: importer.OriginAny, Value: "*", Src: e.src}
		case strings.HasPrefix(e.value, "$"):
			r.warn(e.src, importer.CodeLeftOut, true, fmt.Sprintf("this entry answers with %s, which the importer cannot follow", e.value), "write what it allows by hand")
			continue
		default:
			// A fixed origin is allowed only for requests from it.
			if o.Kind == importer.OriginExact {
				r.warn(e.src, importer.CodeDifference, false, fmt.Sprintf("requests from %q were answered with %q, which the browser refuses: no origin was allowed; the policy allows nothing for this entry", e.key, e.value), "add the origin to allowed_origins if requests from it should be allowed")
				continue
			}
			o = importer.Origin{Kind: importer.OriginExact, Value: e.value, Src: e.src}
			r.warn(e.src, importer.CodeDifference, false, fmt.Sprintf("every origin matching %q was answered with %q, which the browser accepts only from %q: the policy allows that one origin", e.key, e.value, e.value), "add the origins the entry was meant for to allowed_origins")
		}
		out = append(out, o)
	}
	if m.def != nil {
		switch m.def.value {
		case "", "0", "off", "false":
		case "$http_origin":
			out = append(out, importer.Origin{Kind: importer.OriginReflect, Value: "$http_origin", Src: m.def.src})
		case "*":
			out = append(out, importer.Origin{Kind: importer.OriginAny, Value: "*", Src: m.def.src})
		default:
			if !strings.HasPrefix(m.def.value, "$") {
				out = append(out, importer.Origin{Kind: importer.OriginExact, Value: m.def.value, Src: m.def.src})
			}
		}
	}
	return out
}
