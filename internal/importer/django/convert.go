package django

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// The settings DCH reads, and the policy key each becomes. Old names are
// read when the new one is not set (DCH: "is not None").
const (
	sAllowedOrigins  = "CORS_ALLOWED_ORIGINS"
	sOriginWhitelist = "CORS_ORIGIN_WHITELIST"
	sOriginRegexes   = "CORS_ALLOWED_ORIGIN_REGEXES"
	sRegexWhitelist  = "CORS_ORIGIN_REGEX_WHITELIST"
	sAllowAll        = "CORS_ALLOW_ALL_ORIGINS"
	sOriginAllowAll  = "CORS_ORIGIN_ALLOW_ALL"
	sURLsRegex       = "CORS_URLS_REGEX"
	sAllowMethods    = "CORS_ALLOW_METHODS"
	sAllowHeaders    = "CORS_ALLOW_HEADERS"
	sExposeHeaders   = "CORS_EXPOSE_HEADERS"
	sMaxAge          = "CORS_PREFLIGHT_MAX_AGE"
	sCredentials     = "CORS_ALLOW_CREDENTIALS"
	sPrivateNetwork  = "CORS_ALLOW_PRIVATE_NETWORK"
)

// removedSettings are the settings DCH no longer reads (its system checks
// refuse them, docs/migrating-from-django.md): the message and fix of the
// warning each gets.
var removedSettings = map[string][2]string{
	"CORS_MODEL": {
		"removed from DCH in 3.0.0 (its system check corsheaders.E012 refuses it), and corsproc has no equivalent: the policy does not read origins from a database",
		"list the origins your model held in allowed_origins, and remove CORS_MODEL",
	},
	"CORS_REPLACE_HTTPS_REFERER": {
		"removed from DCH in 4.0.0 with CorsPostCsrfMiddleware (its system check corsheaders.E013 refuses it); corsproc never rewrites Referer",
		"remove it; to let another origin pass Django's CSRF check, list it in CSRF_TRUSTED_ORIGINS, which stays in Django",
	},
}

// knownSettings maps every CORS_* setting the importer knows to its policy
// key.
var knownSettings = map[string]string{
	sAllowedOrigins:  "allowed_origins",
	sOriginWhitelist: "allowed_origins",
	sOriginRegexes:   "allowed_origin_regexes",
	sRegexWhitelist:  "allowed_origin_regexes",
	sAllowAll:        "allow_all_origins",
	sOriginAllowAll:  "allow_all_origins",
	sURLsRegex:       "match.urls_regex",
	sAllowMethods:    "allow_methods",
	sAllowHeaders:    "allow_headers",
	sExposeHeaders:   "expose_headers",
	sMaxAge:          "preflight_max_age",
	sCredentials:     "allow_credentials",
	sPrivateNetwork:  "allow_private_network",
}

// source is where a policy key or list entry came from.
type source struct {
	setting string
	lines   []int
	// unknown are the parts of a list setting the importer cannot know
	// (partial.go): the policy marks where each belongs.
	unknown []*part
}

func (s source) line() int {
	if len(s.lines) == 0 {
		return 0
	}
	return s.lines[0]
}

// item is one list entry and its line.
type item struct {
	s    string
	line int
	dflt *part // the entry is the default of this environment lookup
}

// pol is one generated policy, before it is written as YAML. Only keys whose
// source is set are written.
type pol struct {
	name  string
	label string // the DEBUG profile it was imported for, when one was asked

	urlsRegex    string
	urlsSrc      source
	noDefault    bool     // DCH applied CORS to some paths only: never the default_policy
	matchComment string   // why the policy has no match although DCH restricted the paths
	matchWarning *Warning // explains urlsRegex; dropped with it

	origins     []item
	originsSrc  source
	originsNote string // a comment on allowed_origins: [] (list your origins here)
	regexes     []item
	regexesSrc  source
	allowAll    bool
	allowAllSrc source
	methods     []item
	methodsSrc  source
	headers     []item
	headersSrc  source
	expose      []item
	exposeSrc   source
	maxAge      int64
	maxAgeSrc   source
	creds       bool
	credsSrc    source
	pna         bool
	pnaSrc      source
	nullOK      bool
	nullSrc     source
}

type converter struct {
	r     *run
	file  string
	warns []Warning
	p     *pol
}

func (c *converter) warn(line int, name, fix, format string, args ...any) {
	c.warns = append(c.warns, Warning{File: c.file, Line: line, Setting: name, Message: fmt.Sprintf(format, args...), Fix: fix})
}

// leftOut warns about a value, or a part of one, that the settings give
// and the policy lacks: it must be written in by hand (import exits 1).
func (c *converter) leftOut(line int, name, fix, format string, args ...any) {
	c.warn(line, name, fix, format, args...)
	c.warns[len(c.warns)-1].LeftOut = true
}

// convert turns the settings of one run into a policy.
func convert(file string, r *run, name string) (*pol, []Warning) {
	c := &converter{r: r, file: file, p: &pol{name: name}}
	c.credentials()
	c.booleanKey(sPrivateNetwork, &c.p.pna, &c.p.pnaSrc)
	c.allowAll()
	c.origins()
	c.regexes()
	c.allowAllLists()
	c.methods()
	c.headers()
	c.expose()
	c.maxAge()
	c.urlsRegex()
	c.partials()
	return c.p, c.warns
}

// unknownSettings warns about the CORS_* names a run set that DCH does not
// read.
func unknownSettings(file string, r *run) []Warning {
	var out []Warning
	for _, n := range r.order {
		st := r.settings[n]
		if _, ok := knownSettings[n]; ok || !st.set {
			continue
		}
		if r, ok := removedSettings[n]; ok {
			out = append(out, Warning{File: file, Line: firstLine(st), Setting: n, Message: r[0], Fix: r[1]})
			continue
		}
		fix := "remove it, or correct its name"
		if s := closestSetting(n); s != "" {
			fix = fmt.Sprintf("did you mean %s?", s)
		}
		out = append(out, Warning{File: file, Line: firstLine(st), Setting: n, Message: "not a django-cors-headers setting; ignored", Fix: fix})
	}
	return out
}

func firstLine(st *setting) int {
	if st.bad != nil {
		return st.bad.line
	}
	return st.line
}

func closestSetting(name string) string {
	best, bestDist := "", 4
	for k := range knownSettings {
		if abs(len(name)-len(k)) > bestDist {
			continue
		}
		if d := policyfile.EditDistance(name, k); d < bestDist || d == bestDist && k < best {
			best, bestDist = k, d
		}
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// lookup returns the readable value of a setting, or of its old name when
// only that is set, warning when the value cannot be read. None counts as
// not set, as DCH reads it.
func (c *converter) lookup(name, old string) (*setting, bool) {
	st := c.r.settings[name]
	isSet := func(st *setting) bool { return st != nil && st.set && (st.bad != nil || st.val.kind != vNone) }
	if old != "" {
		o := c.r.settings[old]
		switch {
		case isSet(st) && isSet(o):
			c.warn(firstLine(o), old, "remove it", "DCH's old name for %s, which is also set (line %d) and wins; ignored", name, firstLine(st))
		case isSet(o):
			st, name = o, old
		}
	}
	if !isSet(st) {
		return nil, false
	}
	if st.bad != nil {
		c.leftOut(st.bad.line, name, fmt.Sprintf("write %s into the policy by hand", knownSettings[name]),
			"left out: the value %s", st.bad.reason)
		return nil, false
	}
	return st, true
}

func settingSource(st *setting) source {
	return source{setting: st.name, lines: st.lines, unknown: st.val.unknown}
}

func (c *converter) typeError(st *setting, want string) {
	c.leftOut(st.line, st.name, fmt.Sprintf("write %s into the policy by hand", knownSettings[st.name]),
		"left out: must be %s, not %s", want, describeValue(st.val))
}

func describeValue(v value) string {
	switch v.kind {
	case vStr:
		return "the string " + strconv.Quote(v.s)
	case vInt:
		return "the int " + strconv.FormatInt(v.n, 10)
	case vFloat:
		return "the float " + v.s
	case vBool:
		if v.b {
			return "True"
		}
		return "False"
	case vNone:
		return "None"
	}
	return "a " + typeName(v.kind)
}

func (c *converter) boolean(name, old string) (bool, *setting, bool) {
	st, ok := c.lookup(name, old)
	if !ok {
		return false, nil, false
	}
	if st.val.kind != vBool {
		c.typeError(st, "True or False")
		return false, nil, false
	}
	return st.val.b, st, true
}

func (c *converter) booleanKey(name string, dst *bool, src *source) {
	if b, st, ok := c.boolean(name, ""); ok && b {
		*dst, *src = true, settingSource(st)
	}
}

func (c *converter) credentials() {
	c.booleanKey(sCredentials, &c.p.creds, &c.p.credsSrc)
}

// stringList reads a list or tuple of strings (and compiled patterns, when
// patterns is set). Entries that are not strings are left out with a
// warning; a bare string is refused whole, since DCH would iterate its
// characters.
func (c *converter) stringList(name, old string, patterns bool) ([]item, *setting, bool) {
	st, ok := c.lookup(name, old)
	if !ok {
		return nil, nil, false
	}
	v := st.val
	switch v.kind {
	case vList, vTuple:
	case vStr, vPattern:
		c.leftOut(st.line, st.name, fmt.Sprintf("make it a list: [%s]", pyQuote(v.s)),
			"left out: is a single string, not a list or tuple, so DCH reads its characters one by one (a tuple of one needs a trailing comma: (%s,))", pyQuote(v.s))
		return nil, nil, false
	default:
		c.typeError(st, "a list or tuple of strings")
		return nil, nil, false
	}
	if len(v.elems) == 0 && len(v.unknown) > 0 {
		// Nothing of it is known: left out whole.
		fix := fmt.Sprintf("write %s into the policy by hand", knownSettings[st.name])
		if len(v.unknown) == 1 {
			bad := asUnreadable(value{unknown: v.unknown})
			c.leftOut(bad.line, st.name, fix, "left out: the value %s", bad.reason)
		} else {
			var parts []string
			for _, p := range v.unknown {
				parts = append(parts, p.String())
			}
			c.leftOut(v.unknown[0].line, st.name, fix, "left out: the importer cannot know any of its values: %s", joinAnd(parts))
		}
		return nil, nil, false
	}
	var out []item
	for i, el := range v.elems {
		if el.kind == vStr || patterns && el.kind == vPattern {
			out = append(out, item{el.s, el.line, el.dflt})
			continue
		}
		c.warn(el.line, st.name, "remove it, or write it as a string", "entry %d is %s, not a string; left out", i+1, describeValue(el))
	}
	return out, st, true
}

func pyQuote(s string) string { return strconv.Quote(s) }

func (c *converter) allowAll() {
	if b, st, ok := c.boolean(sAllowAll, sOriginAllowAll); ok && b {
		c.p.allowAll, c.p.allowAllSrc = true, settingSource(st)
	}
}

func (c *converter) origins() {
	items, st, ok := c.stringList(sAllowedOrigins, sOriginWhitelist, false)
	if !ok {
		return
	}
	c.p.originsSrc = settingSource(st)
	if c.p.allowAll {
		c.p.origins = items // allowAllLists decides
		return
	}
	seen := map[string]bool{}
	for _, it := range items {
		s := it.s
		if s == "null" || s == "file://" {
			if c.p.creds {
				c.warn(it.line, st.name, "serve the page from a real origin and list that; or set allow_credentials: false and dangerously_allow_null_origin: true",
					"%q is the origin of every sandboxed iframe and local file, which any site can produce; corsproc never allows it with credentials (CORS_ALLOW_CREDENTIALS, line %d), so it is left out", s, c.p.credsSrc.line())
				continue
			}
			c.warn(it.line, st.name, "remove it and dangerously_allow_null_origin unless you need it",
				"%q is the origin of every sandboxed iframe and local file, which any site can produce; DCH allowed it, and the policy keeps it with dangerously_allow_null_origin: true", s)
			c.p.nullOK = true
			c.p.nullSrc = source{setting: st.name, lines: []int{it.line}}
		} else {
			canon, keep := c.origin(st.name, it)
			if !keep {
				continue
			}
			s = canon
		}
		if !seen[s] {
			seen[s] = true
			c.p.origins = append(c.p.origins, item{s, it.line, it.dflt})
		}
	}
}

// origin rewrites one CORS_ALLOWED_ORIGINS entry in the canonical form
// corsproc requires, warning about each change and saying whether DCH
// matched the entry as written. keep is false for entries DCH never matched
// and corsproc cannot read.
func (c *converter) origin(name string, it item) (string, bool) {
	s := it.s
	if s == "*" {
		c.warn(it.line, name, "remove it; to allow every origin without credentials set CORS_ALLOW_ALL_ORIGINS (allow_all_origins: true)",
			`"*" is not an origin: DCH compared it literally and never matched it; left out`)
		return "", false
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/?#") {
		c.warn(it.line, name, fmt.Sprintf("write it with its scheme, e.g. %q", "https://"+strings.TrimPrefix(s, "//")),
			"%q has no scheme: DCH never matched it (its check corsheaders.E013 reports it); left out", s)
		return "", false
	}
	var changes []string
	neverMatched := false // DCH compared the entry as written and never matched it
	if lower := strings.ToLower(scheme); lower != scheme {
		scheme = lower
		changes = append(changes, "with a lower-case scheme")
	}
	netloc := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		netloc = rest[:i]
		what := "without the path"
		switch {
		case rest[i:] == "/":
			what = "without the trailing slash"
		case rest[i] == '?':
			what = "without the query"
		case rest[i] == '#':
			what = "without the fragment"
		}
		changes = append(changes, what)
	}
	if i := strings.LastIndexByte(netloc, '@'); i >= 0 {
		c.warn(it.line, name, fmt.Sprintf("write %q if that is the origin you mean", scheme+"://"+netloc[i+1:]),
			"%q has user information, which an Origin never has: DCH compared it as written and never matched it; left out", s)
		return "", false
	}
	if lower := strings.ToLower(netloc); lower != netloc {
		netloc = lower
		changes = append(changes, "with the host in lower case")
		neverMatched = true
	}
	for _, def := range []struct{ scheme, port string }{{"http", ":80"}, {"https", ":443"}, {"ws", ":80"}, {"wss", ":443"}} {
		if scheme == def.scheme && strings.HasSuffix(netloc, def.port) && !strings.HasSuffix(netloc, "]") {
			netloc = strings.TrimSuffix(netloc, def.port)
			changes = append(changes, "without the default port "+def.port)
			neverMatched = true
		}
	}
	if !isASCII(netloc) {
		fix := "write its host in punycode (xn--...), as browsers send it, if that is the origin you mean"
		if ascii := punycode(netloc); ascii != "" {
			fix = fmt.Sprintf("write %q if that is the origin you mean", scheme+"://"+ascii)
		}
		c.warn(it.line, name, fix,
			"%q has a non-ASCII host, which browsers send in punycode: DCH compared it as written and never matched it; left out", s)
		return "", false
	}
	canon := scheme + "://" + netloc
	// An entry written with a trailing slash, a path or an upper-case
	// scheme is the same origin to DCH, which compared only scheme and
	// host: the policy lists it in corsproc's form, and nothing needs
	// deciding.
	if neverMatched {
		c.warn(it.line, name, "remove it if you did not mean to allow "+canon,
			"%q is written as %q (%s): DCH compared host and port as written, so the entry never matched the origin browsers send, which corsproc now allows", s, canon, strings.Join(changes, ", "))
	}
	if strings.Contains(netloc, "*") {
		c.warn(it.line, name, "check that you mean a pattern; list exact origins otherwise",
			"%q: DCH compared it literally, so it never matched; in corsproc it is a pattern (https://*.example.com matches every subdomain, http://localhost:* every port)", canon)
	}
	return canon, true
}

// punycode returns host[:port] with the host in punycode, as browsers send
// it, or "" when it has no such form.
func punycode(netloc string) string {
	if strings.HasPrefix(netloc, "[") {
		return ""
	}
	host, port, hasPort := strings.Cut(netloc, ":")
	wild := strings.HasPrefix(host, "*.")
	ascii, err := idna.Lookup.ToASCII(strings.TrimPrefix(host, "*."))
	if err != nil {
		return ""
	}
	if wild {
		ascii = "*." + ascii
	}
	if hasPort {
		ascii += ":" + port
	}
	if !isASCII(ascii) {
		return ""
	}
	return ascii
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (c *converter) regexes() {
	items, st, ok := c.stringList(sOriginRegexes, sRegexWhitelist, true)
	if !ok {
		return
	}
	c.p.regexesSrc = settingSource(st)
	if c.p.allowAll {
		c.p.regexes = items
		return
	}
	for _, it := range items {
		re2, problem := translateRegex(it.s)
		if problem != "" {
			c.leftOut(it.line, st.name, "rewrite it in RE2 syntax, or list the origins in allowed_origins",
				"%s %s; left out", pyQuote(it.s), problem)
			continue
		}
		// A regex anchored at the end allows the same origins in both:
		// nothing to decide.
		if !endAnchored(re2) {
			c.warn(it.line, st.name, `check that every origin you allow matches it in full; end it with $ to say so`,
				"%s is not anchored at the end: DCH matched it with re.match, which anchors only the start, so it also allowed every origin that merely begins with a match (the same host followed by .attacker.example, say); corsproc matches the whole origin",
				pyQuote(it.s))
		}
		c.p.regexes = append(c.p.regexes, item{re2, it.line, it.dflt})
	}
}

// allowAllLists settles CORS_ALLOW_ALL_ORIGINS against the origin lists and
// credentials.
func (c *converter) allowAllLists() {
	p := c.p
	if !p.allowAll {
		return
	}
	listed := len(p.origins) + len(p.regexes)
	var lists []string
	for _, src := range []source{p.originsSrc, p.regexesSrc} {
		if src.setting != "" {
			lists = append(lists, fmt.Sprintf("%s (line %d)", src.setting, src.line()))
		}
	}
	if p.creds {
		fix := "list the origins that may read responses with credentials in allowed_origins"
		if listed > 0 {
			fix += fmt.Sprintf("; %s had no effect in DCH here, but may be the list you want", strings.Join(lists, " and "))
		}
		c.leftOut(p.allowAllSrc.line(), p.allowAllSrc.setting, fix,
			"with CORS_ALLOW_CREDENTIALS (line %d), DCH answered every origin with its own name and credentials, which lets any site read a logged-in user's responses; corsproc refuses that, so the policy keeps allow_credentials, does not allow all origins, and lists none yet",
			p.credsSrc.line())
		p.origins, p.originsSrc, p.originsNote = nil, p.allowAllSrc, "list your origins here"
		p.regexes, p.regexesSrc = nil, source{}
		p.allowAll, p.allowAllSrc = false, source{}
		return
	}
	for _, l := range []struct {
		src   source
		items []item
	}{{p.originsSrc, p.origins}, {p.regexesSrc, p.regexes}} {
		if len(l.items) > 0 {
			c.warn(l.src.line(), l.src.setting, "remove it",
				"has no effect with %s (line %d), in DCH as in corsproc; left out", p.allowAllSrc.setting, p.allowAllSrc.line())
		}
	}
	p.origins, p.regexes = nil, nil
	p.originsSrc, p.regexesSrc = source{}, source{}
}

func equalItems(items []item, want []string) bool {
	if len(items) != len(want) {
		return false
	}
	for i, it := range items {
		if it.s != want[i] {
			return false
		}
	}
	return true
}

func (c *converter) methods() {
	items, st, ok := c.stringList(sAllowMethods, "", false)
	if !ok {
		return
	}
	var out []item
	for _, it := range items {
		switch {
		case policy.IsForbiddenMethod(it.s):
			continue // browsers never send it: leaving it out changes nothing
		case it.s == "*" && c.p.creds:
			c.warn(it.line, st.name, "list the methods instead, if you did not mean to allow every method",
				`DCH sent Access-Control-Allow-Methods: * literally, which browsers do not honour on requests with credentials; corsproc answers with the requested method, which allows every method, with credentials too`)
		}
		out = append(out, it)
	}
	if len(st.val.unknown) > 0 || !equalItems(out, policyfile.DefaultAllowMethods) {
		c.p.methods, c.p.methodsSrc = out, settingSource(st)
	}
}

func (c *converter) headers() {
	items, st, ok := c.stringList(sAllowHeaders, "", false)
	if !ok {
		return
	}
	var out []item
	for _, it := range items {
		switch {
		case policy.IsForbiddenRequestHeader(it.s):
			continue // scripts cannot set it: leaving it out changes nothing
		case it.s == "*":
			msg := `DCH sent Access-Control-Allow-Headers: * literally, which browsers honour without credentials for every header except Authorization; corsproc answers with the requested names, which allows every header, Authorization included`
			if c.p.creds {
				msg = `DCH sent Access-Control-Allow-Headers: * literally, which browsers read as a header named "*" on requests with credentials; corsproc answers with the requested names, which allows every header, with credentials too`
			}
			c.warn(it.line, st.name, "list the headers instead, if you did not mean to allow every header", "%s", msg)
		}
		out = append(out, it)
	}
	if len(st.val.unknown) > 0 || !equalItems(out, policyfile.DefaultAllowHeaders) {
		c.p.headers, c.p.headersSrc = out, settingSource(st)
	}
}

func (c *converter) expose() {
	items, st, ok := c.stringList(sExposeHeaders, "", false)
	if !ok {
		return
	}
	var out []item
	for _, it := range items {
		switch lower := strings.ToLower(it.s); {
		case lower == "set-cookie" || lower == "set-cookie2":
			continue // never exposed to scripts: leaving it out changes nothing
		case it.s == "*" && c.p.creds:
			c.warn(it.line, st.name, "list the headers to expose", `browsers read "*" as a header named "*" on requests with credentials, so it exposed nothing in DCH; leaving it out changes nothing`)
			continue
		}
		out = append(out, it)
	}
	if len(out) > 0 || len(st.val.unknown) > 0 {
		c.p.expose, c.p.exposeSrc = out, settingSource(st)
	}
}

func (c *converter) maxAge() {
	st, ok := c.lookup(sMaxAge, "")
	if !ok {
		return
	}
	if st.val.kind != vInt {
		c.typeError(st, "an int")
		return
	}
	n := st.val.n
	switch {
	case n < 0:
		c.leftOut(st.line, st.name, "write preflight_max_age by hand: 0 sends no Access-Control-Max-Age",
			"left out: %d is negative (DCH's system check corsheaders.E004 refuses it)", n)
		return
	case n > policy.MaxPreflightMaxAge:
		// No browser caches a preflight longer (Firefox; Chromium stops
		// at 7200): the cap changes nothing, and needs no decision.
		n = policy.MaxPreflightMaxAge
	}
	if n != policyfile.DefaultPreflightMaxAge {
		c.p.maxAge, c.p.maxAgeSrc = n, settingSource(st)
	}
}

func (c *converter) urlsRegex() {
	st := c.r.settings[sURLsRegex]
	if st == nil || !st.set {
		return
	}
	const noMatchFix = "write match.urls_regex (RE2, matched against the whole path) or match.path_prefixes into the policy by hand"
	if st.bad != nil {
		c.leftOut(st.bad.line, st.name, noMatchFix,
			"left out: the value %s. DCH applied CORS only to the paths it matched, so the policy is not the default_policy: it governs no request until you give it a match", st.bad.reason)
		c.p.noDefault = true
		c.p.matchComment = "CORS_URLS_REGEX could not be read: add a match"
		return
	}
	if st.val.kind != vStr && st.val.kind != vPattern {
		c.typeError(st, "a string or compiled regex")
		c.p.noDefault = true
		c.p.matchComment = "CORS_URLS_REGEX could not be read: add a match"
		return
	}
	src := st.val.s
	if matchesEveryPath(src) {
		return
	}
	re2, problem := translateRegex(src)
	if problem != "" {
		c.leftOut(st.line, st.name, noMatchFix,
			"left out: %s %s. DCH applied CORS only to the paths it matched, so the policy is not the default_policy: it governs no request until you give it a match", pyQuote(src), problem)
		c.p.noDefault = true
		c.p.matchComment = "CORS_URLS_REGEX is not RE2: add a match"
		return
	}
	full, appended := fullMatchPath(re2)
	how := "anchored at the end, so it selects the same paths"
	if appended {
		how = `with ".*" appended, since DCH's re.match anchors only the start and corsproc matches the whole path`
	}
	c.p.matchWarning = &Warning{File: c.file, Line: st.line, Setting: st.name,
		Fix: "check it against your paths as Envoy sees them: percent-encoded, with any prefix under which Django is mounted",
		Message: fmt.Sprintf("DCH applied CORS only to paths this regex matches; the policy selects them with match.urls_regex %s, %s. It is therefore not the default_policy: other paths get no CORS headers, as in DCH. DCH matched the URL-decoded path_info, without the SCRIPT_NAME prefix; corsproc matches the raw path",
			pyQuote(full), how)}
	c.p.urlsRegex, c.p.urlsSrc, c.p.noDefault = full, settingSource(st), true
}
