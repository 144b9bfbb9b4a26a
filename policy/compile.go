package policy

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"

	"github.com/corsproc/corsproc/internal/origins"
)

// Limits on the values a policy holds, so that a compiled set stays cheap.
const (
	// MaxPolicies is the most policies a set may have.
	MaxPolicies = 20_000
	// MaxOrigins is the most entries of allowed_origins and
	// allowed_origin_regexes a set may have, all policies together.
	MaxOrigins = 50_000

	// MaxPreflightMaxAge is the largest preflight_max_age accepted: Firefox's
	// cap. Chromium caps at 7200, so values above that are a warning.
	MaxPreflightMaxAge = 86400
	chromiumMaxAge     = 7200
)

var policyNameRE = regexp.MustCompile(`^[a-z0-9._-]+$`)

// compiledPolicy is one policy, compiled. Everything the decision needs is computed
// here once: the header values are ready-made strings.
type compiledPolicy struct {
	name     string
	file     string // the file that defines it
	index    int    // in its file's policies list
	shadow   bool
	forward  bool // unmatched_preflight: forward
	allowAll bool
	creds    bool
	pna      bool
	// The dangerously_ flags, which only explain reads: a fix it
	// suggests must pass validation.
	nullOK, insecureOK bool
	origins            originSet
	methodAll          bool
	methods            map[string]struct{}
	headerAll          bool
	headers            map[string]struct{} // lower case
	// headerMaxLen is the length of the longest name in headers.
	headerMaxLen int
	status       int
	acam         string
	acah         string
	aceh         string
	acma         string // "" when no Access-Control-Max-Age is sent

	match matcher
}

// matcher is a policy's match block, routes aside (they are indexed by the
// set).
type matcher struct {
	hosts     map[string]struct{} // exact, lower case
	wildHosts map[string]struct{} // bases of *.base, lower case
	prefixes  []string
	urls      *regexp.Regexp
	routes    bool // match.routes is given: the policy is selected by route only
}

// given reports whether the match has anything besides routes.
func (m *matcher) given() bool {
	return len(m.hosts) > 0 || len(m.wildHosts) > 0 || len(m.prefixes) > 0 || m.urls != nil
}

// A Source is a policy set to compile: the schema of each of its files,
// and where the set came from. policy/policyfile builds one from YAML
// files; a program may build one in code.
type Source struct {
	// Name is the set's Source: a path, or a description.
	Name string
	// Digest is the set's Digest, computed by whoever read the files; ""
	// for a set built in code.
	Digest string
	// Files are the set's files, in load order.
	Files []Input
}

// Input is one file of a Source.
type Input struct {
	// File names the file in diagnostics.
	File string
	// Schema is the file's policies; nil when the file could not be decoded
	// (its Diagnostics say why).
	Schema *corsprocv1.PolicyFile
	// Data is the file's text, which the set's Files returns; nil for a
	// schema built in code. The set keeps it: it must not change after.
	Data []byte
	// Locator gives the positions of the file's fields for diagnostics;
	// nil when there are none.
	Locator Locator
	// Diagnostics are the problems decoding the file found. When one is
	// an error, Compile keeps its own errors and only those of its
	// warnings that the decoding errors cannot have caused (keepUnrelated):
	// a key that failed to decode could make it warn about the key's
	// absence.
	Diagnostics []Diagnostic
}

// Compile validates the schema of every file of src against
// docs/semantics.md, §3 and §9, and compiles them into one Set. Every
// problem of every file is reported at once in a *ValidationError, in
// file order; the warnings of a valid set are kept in Set.Warnings.
//
// A set whose policies or origins, all files together, are more than
// MaxPolicies or MaxOrigins is refused without being compiled.
func Compile(src Source) (*Set, error) {
	files := make([]compileFile, len(src.Files))
	for i, in := range src.Files {
		files[i] = compileFile{in: in, ds: &diagnostics{file: in.File, loc: in.Locator}}
	}
	var s *Set
	if !overCaps(files) {
		s = compile(src.Name, files)
	}
	var all []Diagnostic
	failed := false
	for _, f := range files {
		list := f.ds.list
		if f.in.Schema == nil || hasErrors(f.in.Diagnostics) {
			list = keepUnrelated(f.ds, list, f.in.Diagnostics)
		}
		list = append(slices.Clip(f.in.Diagnostics), list...)
		failed = failed || hasErrors(list)
		all = append(all, sortByPosition(list)...)
	}
	if failed {
		return nil, &ValidationError{Diagnostics: all, files: len(files)}
	}
	s.warnings = all
	s.digest = src.Digest
	for _, f := range src.Files {
		if f.Data != nil {
			s.files = append(s.files, File{Name: f.File, Data: f.Data})
		}
	}
	return s, nil
}

// keepUnrelated returns the errors of list, and the warnings that the
// decoding errors of the file (among decoded) cannot have caused: about a
// key the file wrote, neither one that failed to decode nor one inside or
// around it. A key that failed to decode takes its default (a
// preflight_max_age warned about), and a list item that failed leaves the
// list shorter (a policy that allows no origin); a key the file does not
// write may have been misspelt (an unknown key). The decoding error says
// that better; the other warnings stand, so that one run reports every
// problem of the file.
func keepUnrelated(ds *diagnostics, list, decoded []Diagnostic) []Diagnostic {
	var out []Diagnostic
	for _, d := range list {
		if d.Severity == SeverityError || ds.written(d.Path) && !slices.ContainsFunc(decoded, func(e Diagnostic) bool {
			return e.Severity == SeverityError && (pathWithin(d.Path, e.Path) || pathWithin(e.Path, d.Path))
		}) {
			out = append(out, d)
		}
	}
	return out
}

// pathWithin reports whether the field path p is within the field path
// outer: the same field, or one of its keys or items.
func pathWithin(p, outer string) bool {
	if outer == "" || p == outer {
		return true
	}
	rest, ok := strings.CutPrefix(p, outer)
	return ok && (rest[0] == '.' || rest[0] == '[')
}

// compileFile is one file being compiled, and the problems found in it.
type compileFile struct {
	in Input
	ds *diagnostics
}

// overCaps holds the set to MaxPolicies and MaxOrigins, all files
// together, reporting at the file that crosses one; it reports whether one
// is crossed. (policyfile's decoder holds a YAML file to them as it reads
// it; this holds a schema built in code to them too.)
func overCaps(files []compileFile) bool {
	policies, origins := 0, 0
	for _, f := range files {
		for _, p := range f.in.Schema.GetPolicies() {
			origins += len(p.GetAllowedOrigins()) + len(p.GetAllowedOriginRegexes())
		}
		policies += len(f.in.Schema.GetPolicies())
		switch {
		case policies > MaxPolicies:
			f.ds.errorf("policies", "split the policies over several corsproc deployments, or bind routes to fewer policies; see docs/policy.md",
				"the policy set has more than %d policies", MaxPolicies)
		case origins > MaxOrigins:
			f.ds.errorf("policies", "use *.example.com patterns or fewer policies; see docs/policy.md",
				"the policy set has more than %d allowed_origins and allowed_origin_regexes entries", MaxOrigins)
		default:
			continue
		}
		return true
	}
	return false
}

// compile compiles the policies of every file, in order, into one set,
// reporting problems in the diagnostics of the file they are in.
func compile(source string, files []compileFile) *Set {
	n := 0
	for _, f := range files {
		n += len(f.in.Schema.GetPolicies())
	}
	s := &Set{
		source:  source,
		byName:  make(map[string]*compiledPolicy, n),
		byRoute: make(map[string]*compiledPolicy, n),
		names:   make([]string, 0, n),
	}
	var defaultName string
	var defaultFile *compileFile
	for fi := range files {
		f := &files[fi]
		pf := f.in.Schema
		if pf == nil {
			continue
		}
		ds := f.ds
		shared := newSharedLists()
		for i, p := range pf.GetPolicies() {
			path := item("policies", i)
			cp := compilePolicy(p, path, ds, shared)
			cp.index = i
			if cp.name != "" {
				switch prev, dup := s.byName[cp.name]; {
				case !dup:
					s.byName[cp.name] = cp
				case prev.file == ds.file:
					ds.errorf(path+".name", "give every policy its own name", "policy name %q is used twice", cp.name)
				default:
					ds.errorf(path+".name", "give every policy its own name, across all the files", "policy name %q is also defined in %s", cp.name, prev.file)
				}
			}
			cp.file = ds.file
			for j, r := range p.GetMatch().GetRoutes() {
				if r == "" {
					ds.errorf(item(path+".match.routes", j), "remove the empty entry", "empty route name")
					continue
				}
				if o, dup := s.byRoute[r]; dup {
					switch {
					case o.name == cp.name && o.file == cp.file:
					case o.file == cp.file:
						ds.errorf(item(path+".match.routes", j), "bind each route to one policy", "route %q is already bound to policy %q", r, o.name)
					default:
						ds.errorf(item(path+".match.routes", j), "bind each route to one policy", "route %q is already bound to policy %q in %s", r, o.name, o.file)
					}
					continue
				}
				s.byRoute[r] = cp
			}
			if !cp.match.routes && cp.match.given() {
				s.matchers = append(s.matchers, cp)
			}
			s.names = append(s.names, cp.name)
		}
		if name := pf.GetDefaultPolicy(); name != "" {
			if defaultFile != nil {
				ds.errorf("default_policy", "set default_policy in one file only", "default_policy is also set in %s", defaultFile.ds.file)
			} else {
				defaultName, defaultFile = name, f
			}
		}
		if len(pf.GetPolicies()) == 0 {
			ds.warnf("policies", "add a policy", "the file has no policies")
		}
	}
	if defaultFile != nil {
		if p, ok := s.byName[defaultName]; ok {
			s.def = p
		} else {
			defaultFile.ds.errorf("default_policy", "name one of the policies: "+strings.Join(s.names, ", "), "default_policy %q names no policy", defaultName)
		}
	}
	return s
}

func compilePolicy(p *corsprocv1.Policy, path string, ds *diagnostics, shared *sharedLists) *compiledPolicy {
	cp := &compiledPolicy{
		name:       p.GetName(),
		shadow:     p.GetMode() == corsprocv1.Mode_MODE_SHADOW,
		forward:    p.GetUnmatchedPreflight() == corsprocv1.UnmatchedPreflight_UNMATCHED_PREFLIGHT_FORWARD,
		allowAll:   p.GetAllowAllOrigins(),
		creds:      p.GetAllowCredentials(),
		pna:        p.GetAllowPrivateNetwork(),
		nullOK:     p.GetDangerouslyAllowNullOrigin(),
		insecureOK: p.GetDangerouslyAllowInsecureOrigins(),
		status:     int(p.GetPreflightStatus()),
	}
	switch {
	case cp.name == "":
		ds.errorf(path+".name", "give the policy a name of [a-z0-9._-]", "a policy needs a name")
	case !policyNameRE.MatchString(cp.name):
		ds.errorf(path+".name", fmt.Sprintf("use only a-z, 0-9, '.', '_' and '-', e.g. %q", suggestName(cp.name)), "policy name %q has characters other than [a-z0-9._-]", cp.name)
	}
	if p.GetMode() == corsprocv1.Mode_MODE_UNSPECIFIED {
		ds.errorf(path+".mode", "write enforce or shadow", "mode is not set")
	}
	if p.GetUnmatchedPreflight() == corsprocv1.UnmatchedPreflight_UNMATCHED_PREFLIGHT_UNSPECIFIED {
		ds.errorf(path+".unmatched_preflight", "write reject or forward", "unmatched_preflight is not set")
	}
	if cp.status != 200 && cp.status != 204 {
		ds.errorf(path+".preflight_status", "write 204 (the default) or 200", "preflight_status %d is not 200 or 204", cp.status)
	}
	compileOrigins(cp, p, path, ds)
	shared.methods(cp, p.GetAllowMethods(), path+".allow_methods", ds)
	shared.headers(cp, p.GetAllowHeaders(), path+".allow_headers", ds)
	compileExpose(cp, p.GetExposeHeaders(), path+".expose_headers", ds)

	age := p.GetPreflightMaxAge()
	agePath := path + ".preflight_max_age"
	switch {
	case age < 0 || age > MaxPreflightMaxAge:
		ds.errorf(agePath, fmt.Sprintf("write a number of seconds from 0 to %d", MaxPreflightMaxAge), "preflight_max_age %d is out of range", age)
	case age > chromiumMaxAge && ds.written(agePath):
		ds.warnf(agePath, "write 7200 to say what Chromium does", "Chromium caches preflights for at most 7200 seconds; %d only holds in Firefox", age)
	}
	if age > 0 {
		cp.acma = strconv.FormatInt(age, 10)
	}
	cp.match = compileMatch(p.GetMatch(), path+".match", ds)
	return cp
}

func suggestName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

func compileOrigins(cp *compiledPolicy, p *corsprocv1.Policy, path string, ds *diagnostics) {
	set := &cp.origins
	set.exact = map[string]int{}
	set.origins = slices.Clone(p.GetAllowedOrigins())
	set.regexSrcs = slices.Clone(p.GetAllowedOriginRegexes())
	if cp.allowAll {
		if cp.creds {
			ds.errorf(path+".allow_all_origins", "list the origins in allowed_origins, or set allow_credentials: false",
				"allow_all_origins with allow_credentials would let every site read a logged-in user's responses")
		}
		if len(p.GetAllowedOrigins())+len(p.GetAllowedOriginRegexes()) > 0 {
			ds.warnf(path+".allow_all_origins", "remove allowed_origins and allowed_origin_regexes, or set allow_all_origins: false",
				"allowed_origins and allowed_origin_regexes have no effect when allow_all_origins is true")
		}
	} else if len(p.GetAllowedOrigins())+len(p.GetAllowedOriginRegexes()) == 0 {
		ds.warnf(path+".allowed_origins", "list the origins that may read responses", "the policy allows no origin: every CORS request is refused")
	}
	for i, s := range p.GetAllowedOrigins() {
		c, prob := origins.ParseConfig(s)
		if prob != nil {
			ds.errorf(item(path+".allowed_origins", i), prob.Fix, "%s", prob.Msg)
			continue
		}
		switch {
		case c.Null && cp.creds:
			ds.errorf(item(path+".allowed_origins", i), "remove it, or set allow_credentials: false and dangerously_allow_null_origin: true",
				"%q with credentials would let any sandboxed page or local file read a logged-in user's responses", s)
			continue
		case c.Null && !p.GetDangerouslyAllowNullOrigin():
			ds.errorf(item(path+".allowed_origins", i), "remove it, or set dangerously_allow_null_origin: true if you accept that",
				"%q is the origin of every sandboxed iframe and local file, so any site can send it", s)
			continue
		case cp.creds && c.Scheme == "http" && !origins.IsLoopback(c.Host) && !p.GetDangerouslyAllowInsecureOrigins():
			ds.errorf(item(path+".allowed_origins", i), fmt.Sprintf("use %q, or set dangerously_allow_insecure_origins: true", "https://"+strings.TrimPrefix(s, "http://")),
				"%q is plain http with credentials: anyone on the network path can inject a script into it", s)
			continue
		case cp.creds && c.WildSub && origins.IsPublicSuffix(c.Host) && !p.GetDangerouslyAllowPublicSuffixWildcards():
			ds.errorf(item(path+".allowed_origins", i), "list the sites you own exactly, or set dangerously_allow_public_suffix_wildcards: true",
				"%q is a wildcard directly under the public suffix %q, where anyone can register a site", s, c.Host)
			continue
		}
		switch {
		case c.WildSub:
			set.addWild(c.Scheme, c.Host, c.Port, i)
		case c.Port == origins.AnyPort:
			if set.anyPort == nil {
				set.anyPort = map[schemeHost]int{}
			}
			set.anyPort[schemeHost{c.Scheme, c.Host}] = i
		default:
			// matchOrigin looks exact origins up before it parses the
			// request's Origin, so an entry that is not a serialized
			// origin as origins.Parse accepts it must not be there: such an
			// Origin is malformed, whatever the list says. (The checks
			// above make it canonical; this keeps the lookup order from
			// ever mattering.)
			if origins.Parse(c.RawExact, new(origins.Origin)) || c.Null {
				set.exact[c.RawExact] = i
			}
		}
	}
	for i, src := range p.GetAllowedOriginRegexes() {
		// Parsed once, for the checks and for anchoredRegexp.
		parsed, err := syntax.Parse(src, syntax.Perl)
		if err != nil {
			ds.errorf(item(path+".allowed_origin_regexes", i), "correct the RE2 syntax", "%q: invalid RE2 regex: %s", src, regexpError(err))
			continue
		}
		re, err := anchoredRegexp(parsed)
		if err != nil {
			ds.errorf(item(path+".allowed_origin_regexes", i), "correct the RE2 syntax", "%q: invalid RE2 regex: %s", src, regexpError(err))
			continue
		}
		// Judged by what it matches, under the rules of allowed_origins.
		errs, warns := origins.CheckRegex(parsed, re, origins.RegexRules{
			Creds:          cp.creds,
			InsecureOK:     p.GetDangerouslyAllowInsecureOrigins(),
			PublicSuffixOK: p.GetDangerouslyAllowPublicSuffixWildcards(),
		})
		if len(errs) > 0 {
			ds.errorf(item(path+".allowed_origin_regexes", i), errs[0].Fix, "%q: %s", src, errs[0].Msg)
			continue
		}
		if len(warns) > 0 {
			ds.warnf(item(path+".allowed_origin_regexes", i), warns[0].Fix, "%q: %s", src, warns[0].Msg)
		}
		set.regexes = append(set.regexes, re)
		set.regexIndex = append(set.regexIndex, i)
	}
}

// forbiddenMethods can never be allowed: browsers refuse to send them.
var forbiddenMethods = []string{"CONNECT", "TRACE", "TRACK"}

// IsForbiddenMethod reports whether browsers refuse to send method (in any
// case, strings.EqualFold), so that a policy may not list it. It allocates
// nothing: allow_methods' * calls it per request (methodAllowed).
func IsForbiddenMethod(method string) bool {
	for _, f := range forbiddenMethods {
		if strings.EqualFold(method, f) {
			return true
		}
	}
	return false
}

// normalizedMethods are the methods browsers upper-case before sending; a
// lower-case entry for one of them never matches.
var normalizedMethods = []string{"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"}

func compileMethods(cp *compiledPolicy, methods []string, path string, ds *diagnostics) {
	cp.methods = map[string]struct{}{"GET": {}, "HEAD": {}, "POST": {}}
	var listed []string
	for i, m := range methods {
		upper := strings.ToUpper(m)
		switch {
		case m == "*":
			cp.methodAll = true
			continue
		case !isToken(m):
			ds.errorf(item(path, i), "write a method name such as PATCH", "%q is not a valid method name", m)
			continue
		case IsForbiddenMethod(upper):
			ds.errorf(item(path, i), "remove it", "%s is a forbidden method: browsers never send it", upper)
			continue
		case m != upper && slices.Contains(normalizedMethods, upper):
			ds.warnf(item(path, i), fmt.Sprintf("write %s", upper), "browsers send %s in upper case, so %q never matches (method names are case-sensitive)", upper, m)
		}
		cp.methods[m] = struct{}{}
		listed = append(listed, m)
	}
	if !cp.methodAll {
		cp.acam = strings.Join(listed, ", ")
	}
}

// forbiddenRequestHeaders are the Fetch standard's forbidden request header
// names (and prefixes): scripts cannot set them, so allowing them is a
// mistake.
var (
	forbiddenRequestHeaders = []string{
		"accept-charset", "accept-encoding", "access-control-request-headers", "access-control-request-method",
		"access-control-request-private-network", "connection", "content-length", "cookie", "cookie2", "date",
		"dnt", "expect", "host", "keep-alive", "origin", "referer", "set-cookie", "te", "trailer",
		"transfer-encoding", "upgrade", "via",
	}
	forbiddenRequestPrefixes = []string{"proxy-", "sec-"}
)

// IsForbiddenRequestHeader reports whether name (in any case,
// strings.EqualFold) is a Fetch forbidden request header, which scripts
// cannot set, so that a policy may not list it in allow_headers. It
// allocates nothing: allow_headers' * calls it per request
// (refusedRequestHeader).
func IsForbiddenRequestHeader(name string) bool {
	for _, f := range forbiddenRequestHeaders {
		if strings.EqualFold(name, f) {
			return true
		}
	}
	for _, pre := range forbiddenRequestPrefixes {
		if hasPrefixFold(name, pre) {
			return true
		}
	}
	return false
}

// isCORSResponseHeader reports whether name (in any case) is a CORS
// response header, which a policy may not list in allow_headers.
func isCORSResponseHeader(name string) bool {
	return hasPrefixFold(name, "access-control-allow-") ||
		strings.EqualFold(name, HeaderACEH) || strings.EqualFold(name, HeaderACMA)
}

// hasPrefixFold is strings.HasPrefix under strings.EqualFold.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func compileHeaders(cp *compiledPolicy, headers []string, path string, ds *diagnostics) {
	cp.headers = map[string]struct{}{}
	var listed []string
	for i, h := range headers {
		lower := strings.ToLower(h)
		switch {
		case h == "*":
			cp.headerAll = true
			continue
		case !isToken(h):
			ds.errorf(item(path, i), "write a header name such as x-requested-with", "%q is not a valid header name", h)
			continue
		case IsForbiddenRequestHeader(lower):
			ds.errorf(item(path, i), "remove it", "%q is a forbidden request header: browsers set it themselves and never ask to send it", h)
			continue
		case isCORSResponseHeader(lower):
			ds.errorf(item(path, i), "remove it: it is a response header, which the server sends", "%q is a CORS response header, not a request header", h)
			continue
		}
		cp.headers[lower] = struct{}{}
		cp.headerMaxLen = max(cp.headerMaxLen, len(lower))
		listed = append(listed, h)
	}
	if !cp.headerAll {
		cp.acah = strings.Join(listed, ", ")
	}
}

// sharedLists compiles each distinct allow_methods and allow_headers list
// once per file: policies mostly keep django-cors-headers' defaults, and
// 10,000 policies should not build 10,000 identical maps.
// Only lists that compiled without a diagnostic are shared (a diagnostic
// names the policy it is in); the compiled values are read-only, so sharing
// them is safe.
type sharedLists struct {
	methodSets map[string]sharedList // methods, methodAll, acam
	headerSets map[string]sharedList // headers, headerAll, headerMaxLen, acah
}

// sharedList is a list compiled once: the list, and the policy holding it
// compiled. The map key joins the items, which two different lists can
// share (["a\x00b"] and ["a", "b"]; [] and [""]): a hit counts only if the
// lists are equal.
type sharedList struct {
	list []string
	from *compiledPolicy
}

func newSharedLists() *sharedLists {
	return &sharedLists{methodSets: map[string]sharedList{}, headerSets: map[string]sharedList{}}
}

// compiledList returns the policy whose list in sets equals list, and the key
// of list.
func compiledList(sets map[string]sharedList, list []string) (*compiledPolicy, string) {
	key := strings.Join(list, "\x00")
	if c, ok := sets[key]; ok && slices.Equal(c.list, list) {
		return c.from, key
	}
	return nil, key
}

func (sl *sharedLists) methods(cp *compiledPolicy, list []string, path string, ds *diagnostics) {
	c, key := compiledList(sl.methodSets, list)
	if c != nil {
		cp.methods, cp.methodAll, cp.acam = c.methods, c.methodAll, c.acam
		return
	}
	n := len(ds.list)
	compileMethods(cp, list, path, ds)
	if len(ds.list) == n {
		sl.methodSets[key] = sharedList{list, cp}
	}
}

func (sl *sharedLists) headers(cp *compiledPolicy, list []string, path string, ds *diagnostics) {
	c, key := compiledList(sl.headerSets, list)
	if c != nil {
		cp.headers, cp.headerAll, cp.headerMaxLen, cp.acah = c.headers, c.headerAll, c.headerMaxLen, c.acah
		return
	}
	n := len(ds.list)
	compileHeaders(cp, list, path, ds)
	if len(ds.list) == n {
		sl.headerSets[key] = sharedList{list, cp}
	}
}

func compileExpose(cp *compiledPolicy, headers []string, path string, ds *diagnostics) {
	var listed []string
	for i, h := range headers {
		lower := strings.ToLower(h)
		switch {
		case h == "*" && cp.creds:
			ds.errorf(item(path, i), "list the header names to expose", "browsers ignore expose_headers \"*\" on requests with credentials")
			continue
		case h == "*":
		case !isToken(h):
			ds.errorf(item(path, i), "write a header name such as x-request-id", "%q is not a valid header name", h)
			continue
		case lower == "set-cookie" || lower == "set-cookie2":
			ds.errorf(item(path, i), "remove it", "%q can never be exposed: browsers hide it from scripts", h)
			continue
		}
		listed = append(listed, h)
	}
	cp.aceh = strings.Join(listed, ", ")
}

func compileMatch(m *corsprocv1.Match, path string, ds *diagnostics) matcher {
	var out matcher
	if m == nil {
		return out
	}
	out.routes = len(m.GetRoutes()) > 0
	for i, h := range m.GetHosts() {
		lower := strings.ToLower(h)
		wild := strings.HasPrefix(lower, "*.")
		base := strings.TrimPrefix(lower, "*.")
		switch {
		case strings.Contains(base, ":") && !strings.HasPrefix(base, "["):
			ds.errorf(item(path+".hosts", i), fmt.Sprintf("write %q: hosts match without the port", strings.Split(h, ":")[0]), "host %q has a port", h)
			continue
		case strings.Contains(base, "*"):
			ds.errorf(item(path+".hosts", i), `write "*.example.com" or an exact host`, "host %q has a * that is not a leading \"*.\" label", h)
			continue
		case !origins.IsHostName(base) && !isBracketedIPv6(base):
			ds.errorf(item(path+".hosts", i), "write a host name such as api.example.com", "%q is not a valid host", h)
			continue
		}
		if wild {
			if out.wildHosts == nil {
				out.wildHosts = map[string]struct{}{}
			}
			out.wildHosts[base] = struct{}{}
		} else {
			if out.hosts == nil {
				out.hosts = map[string]struct{}{}
			}
			out.hosts[base] = struct{}{}
		}
	}
	for i, p := range m.GetPathPrefixes() {
		if !strings.HasPrefix(p, "/") {
			ds.errorf(fmt.Sprintf("%s.path_prefixes[%d]", path, i), fmt.Sprintf("write %q", "/"+p), "path prefix %q does not start with /", p)
			continue
		}
		out.prefixes = append(out.prefixes, p)
	}
	if src := m.GetUrlsRegex(); src != "" {
		re, err := syntax.Parse(src, syntax.Perl)
		if err == nil {
			out.urls, err = anchoredRegexp(re)
		}
		if err != nil {
			ds.errorf(path+".urls_regex", "correct the RE2 syntax", "invalid RE2 regex %q: %s", src, regexpError(err))
		}
	}
	return out
}

func isBracketedIPv6(s string) bool {
	return len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' && origins.IsIPv6Literal(s[1:len(s)-1])
}

// isToken reports whether s is an RFC 9110 token, the syntax of method and
// header names (httpguts checks header names, which are tokens).
func isToken(s string) bool { return httpguts.ValidHeaderFieldName(s) }

// anchoredRegexp compiles re, an RE2 regex parsed with syntax.Perl (the
// flags of regexp.Compile), so that it matches whole strings only. It
// anchors the parsed expression, not the source text: pasted around the
// text, "^(?:" and ")$" would be swallowed by an unterminated \Q (which
// quotes the rest of the regex), and what then failed to compile once made
// MustCompile panic (found by FuzzAllowedOriginRegex). The caller parses
// the source once, for its own checks too; regexp has no way to compile a
// parsed expression, so regexp.Compile parses the anchored text again.
func anchoredRegexp(re *syntax.Regexp) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + re.String() + `)$`)
}

// regexpError is a regex parse error without the "error parsing regexp: "
// that regexp/syntax puts in front of every one.
func regexpError(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// item is the path of a list's i-th item, built only when a diagnostic
// names it.
func item(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
