package policyfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/corsproc/corsproc/policy"
	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"
)

// DCH's defaults, applied to keys a policy does not write.
var (
	DefaultAllowMethods = []string{"DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT"}
	DefaultAllowHeaders = []string{"accept", "authorization", "content-type", "user-agent", "x-csrftoken", "x-requested-with"}
)

const (
	DefaultPreflightMaxAge = 86400
	DefaultPreflightStatus = 204
)

// Decode reads a policy file strictly: unknown keys, duplicate keys and
// values of the wrong type are errors naming the key path. Keys a policy does
// not write take django-cors-headers' defaults (DefaultAllowMethods and the
// other Default values; mode enforce, unmatched_preflight reject); an
// explicit empty list stays empty. The result is not validated: Compile does
// that.
func Decode(file string, data []byte) (*corsprocv1.PolicyFile, error) {
	f := decode(file, data, new(budget))
	if f.pf == nil || f.hasErrors() {
		return nil, &policy.ValidationError{Diagnostics: sortByPosition(f.list)}
	}
	return f.pf, nil
}

// decode decodes a policy file, the next of a set that has used b of the
// bounds so far (limits.go), and adds what it uses to b. The result has no
// PolicyFile when data could not be decoded at all; it is capped, and
// nothing more may be loaded or compiled, when a bound was crossed.
func decode(file string, data []byte, b *budget) *decoded {
	f := checkFile(file, data, b)
	if !f.capped {
		f.decodeDoc(parseWhole(data, f), b)
	}
	return f
}

// checkFile holds a policy file, the next of a set that has used b of the
// bounds so far, to the bounds checked before yaml/v3 builds a tree of it:
// its size and its YAML node bound, which it adds to b. The result is
// capped when one is crossed.
func checkFile(file string, data []byte, b *budget) *decoded {
	f := newDecoded(file)
	if len(data) > MaxFileSize {
		e := fileSizeCapError()
		f.errorf("", e.fix, "%s", e.msg)
		f.capped = true
		return f
	}
	if e := b.checkYAML(data); e != nil {
		f.errorf("", e.fix, "%s", e.msg)
		f.capped = true
	}
	return f
}

// decodeDoc decodes the YAML document of f that parseWhole returned (nil
// when it reported why there is none), going on from b, the bounds the set
// has used so far, and adds what it uses to b.
func (f *decoded) decodeDoc(doc *yaml.Node, b *budget) {
	if doc == nil {
		return
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		f.errorf("", "write at least one policy; see docs/policy.md", "file is empty")
		return
	}
	pf := &corsprocv1.PolicyFile{}
	d := &decoder{ds: f, used: *b, merging: map[*yaml.Node]bool{}}
	d.message(root, "", pf.ProtoReflect())
	*b = d.used
	f.capped = d.capped
	if root.Kind == yaml.MappingNode {
		f.pf = pf
	}
}

// parseWhole parses data as one YAML document, or reports in ds why it
// cannot and returns nil.
func parseWhole(data []byte, ds *decoded) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ds.errorf("", "write at least one policy; see docs/policy.md", "file is empty")
		} else {
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			fix := "correct the YAML syntax"
			if strings.Contains(msg, "tab character") {
				fix = "indent with spaces: YAML does not allow tabs in indentation"
			}
			ds.errorf("", fix, "not valid YAML: %s", msg)
			var line int
			if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil && line > 0 {
				ds.list[len(ds.list)-1].Line = line
			}
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		ds.errorf("", "keep one YAML document per file, or split them into files of a directory", "file holds more than one YAML document")
		if len(extra.Content) > 0 {
			ds.list[len(ds.list)-1].Line = extra.Content[0].Line
		}
		return nil
	}
	return &doc
}

type decoder struct {
	ds      *decoded
	used    budget              // by the set so far, this file included
	capped  bool                // a bound was crossed: decode no further
	merging map[*yaml.Node]bool // mappings whose merge keys are being expanded
}

// resolve follows aliases and counts nodes against maxNodes.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.used.nodes++
	d.checkNodes(n, path)
	return n
}

// checkNodes reports, once, that the nodes visited crossed maxNodes; n is
// the node that crossed it, at path.
func (d *decoder) checkNodes(n *yaml.Node, path string) {
	if d.used.nodes > maxNodes && !d.capped {
		d.capped = true
		d.errorAt(n, path, "remove the aliases that expand recursively, or split the policy set; see docs/policy.md", "the policy set expands to more than %d YAML nodes", maxNodes)
	}
}

// countItems counts the items of the list at path, of field fd, against
// the bounds on list entries, policies and origins, before they are
// decoded: a list past a bound is refused without being built.
func (d *decoder) countItems(list *yaml.Node, path string, fd protoreflect.FieldDescriptor) {
	if d.capped {
		return
	}
	n := len(list.Content)
	var e *capError
	if fd.Kind() != protoreflect.MessageKind {
		if d.used.items += n; d.used.items > maxItems {
			e = itemsCapError()
		}
	}
	switch fd {
	case fieldPolicies:
		if d.used.policies += n; d.used.policies > maxPolicies {
			e = policiesCapError()
		}
	case fieldAllowedOrigins, fieldAllowedOriginRegexes:
		if d.used.origins += n; d.used.origins > maxOrigins {
			e = originsCapError()
		}
	}
	if e != nil {
		d.capped = true
		d.errorAt(list, path, e.fix, "%s", e.msg)
	}
}

// errorAt reports an error at node n, whose position is known: no lookup
// by path, which would cost a scan of the mapping for every error.
// Past maxDecodeErrors, decoding stops (the load is capped) with one more
// error that says so.
func (d *decoder) errorAt(n *yaml.Node, path, fix, format string, args ...any) {
	d.ds.list = append(d.ds.list, policy.Diagnostic{Severity: policy.SeverityError, File: d.ds.file, Line: n.Line, Column: n.Column,
		Path: path, Message: fmt.Sprintf(format, args...), Fix: fix})
	if d.used.errors++; d.used.errors == maxDecodeErrors && !d.capped {
		d.capped = true
		d.ds.list = append(d.ds.list, policy.Diagnostic{Severity: policy.SeverityError, File: d.ds.file, Line: n.Line, Column: n.Column,
			Path: path, Message: fmt.Sprintf("more than %d errors: decoding stopped here", maxDecodeErrors), Fix: "fix these first"})
	}
}

// entry is one key of a mapping after merge keys (<<) are applied.
type entry struct {
	key, value *yaml.Node
	merged     bool // brought in by a merge key, not written in the mapping
}

// entries returns the keys of mapping n in order, merge keys expanded:
// explicit keys override merged ones; a key written twice is an error.
func (d *decoder) entries(n *yaml.Node, path string) []entry {
	var merged, own []entry
	var mergedKeys, ownKeys keySet
	for i := 0; i+1 < len(n.Content) && !d.capped; i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorAt(k, path, "use plain string keys", "a key must be a string")
			continue
		}
		if k.Tag == "!!merge" {
			v = d.resolve(v, path)
			sources := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				sources = v.Content
			}
			for _, s := range sources {
				s = d.resolve(s, path)
				if d.capped {
					return nil
				}
				if s.Kind != yaml.MappingNode {
					d.errorAt(s, path, "merge (<<) only mappings", "a merge key (<<) must refer to a mapping")
					continue
				}
				if d.merging[s] {
					d.errorAt(k, path, "remove the merge key (<<) that refers to its own mapping", "a merge key (<<) refers to a mapping that contains it")
					continue
				}
				d.merging[s] = true
				sub := d.entries(s, path)
				delete(d.merging, s)
				for _, e := range sub {
					if mergedKeys.add(e.key.Value) {
						e.merged = true
						merged = append(merged, e)
					}
				}
			}
			continue
		}
		if !ownKeys.add(k.Value) {
			d.errorAt(k, join(path, k.Value), "keep one of them", "key %q is written twice", k.Value)
			continue
		}
		own = append(own, entry{key: k, value: v})
	}
	for _, e := range merged {
		if !ownKeys.has(e.key.Value) {
			own = append(own, e)
		}
	}
	return own
}

// keySet is a set of mapping keys: a scan of the few keys a policy has, a
// map once a mapping is so large that scanning would be quadratic.
type keySet struct {
	keys []string
	m    map[string]bool
}

func (ks *keySet) has(key string) bool {
	if ks.m != nil {
		return ks.m[key]
	}
	return slices.Contains(ks.keys, key)
}

// add adds key and reports whether it was not there yet.
func (ks *keySet) add(key string) bool {
	if ks.has(key) {
		return false
	}
	if ks.m == nil && len(ks.keys) == 64 {
		ks.m = make(map[string]bool, 128)
		for _, k := range ks.keys {
			ks.m[k] = true
		}
	}
	if ks.m != nil {
		ks.m[key] = true
	} else {
		ks.keys = append(ks.keys, key)
	}
	return true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) message(n *yaml.Node, path string, m protoreflect.Message) {
	n = d.resolve(n, path)
	if d.capped {
		return
	}
	d.ds.nodes[path] = n
	if n.Kind != yaml.MappingNode {
		what := "the file"
		if path != "" {
			what = path
		}
		d.errorAt(n, path, "write a mapping of keys to values", "%s must be a mapping, not %s", what, kindName(n))
		return
	}
	fields := m.Descriptor().Fields()
	var present fieldSet
	for _, e := range d.entries(n, path) {
		if d.capped {
			return
		}
		key := e.key.Value
		kpath := join(path, key)
		if e.merged {
			// Not among n's own keys: record where it came from, for
			// diagnostics (key and written).
			if d.ds.merged == nil {
				d.ds.merged = map[string]entry{}
			}
			d.ds.merged[kpath] = e
		}
		fd := fields.ByName(protoreflect.Name(key))
		if fd == nil || key != string(fd.Name()) {
			d.errorAt(e.key, kpath, suggest(key, fields), "unknown key %q", key)
			continue
		}
		before := len(d.ds.list)
		d.field(e.value, kpath, m, fd)
		// A key whose value was wrong counts as absent, so that it takes its
		// default and validation reports no second error for it.
		if len(d.ds.list) == before {
			present.add(fd)
		}
	}
	if p, ok := m.Interface().(*corsprocv1.Policy); ok {
		applyDefaults(p, present)
	}
}

// fieldSet is a set of a message's fields, by their index in the message
// (a message of corsproc's schema has far fewer than 64).
type fieldSet uint64

func (fs *fieldSet) add(fd protoreflect.FieldDescriptor) { *fs |= 1 << uint(fd.Index()) }

func (fs fieldSet) has(i int) bool { return fs&(1<<uint(i)) != 0 }

// The indexes of the Policy fields that have defaults.
var (
	policyFields            = (*corsprocv1.Policy)(nil).ProtoReflect().Descriptor().Fields()
	fieldAllowMethods       = policyFields.ByName("allow_methods").Index()
	fieldAllowHeaders       = policyFields.ByName("allow_headers").Index()
	fieldPreflightMaxAge    = policyFields.ByName("preflight_max_age").Index()
	fieldPreflightStatus    = policyFields.ByName("preflight_status").Index()
	fieldUnmatchedPreflight = policyFields.ByName("unmatched_preflight").Index()
	fieldMode               = policyFields.ByName("mode").Index()
)

// The fields whose items count against MaxPolicies and MaxOrigins.
var (
	fieldPolicies             = (*corsprocv1.PolicyFile)(nil).ProtoReflect().Descriptor().Fields().ByName("policies")
	fieldAllowedOrigins       = policyFields.ByName("allowed_origins")
	fieldAllowedOriginRegexes = policyFields.ByName("allowed_origin_regexes")
)

// applyDefaults fills the keys a policy does not write with DCH's defaults.
func applyDefaults(p *corsprocv1.Policy, present fieldSet) {
	if !present.has(fieldAllowMethods) {
		p.AllowMethods = slices.Clone(DefaultAllowMethods)
	}
	if !present.has(fieldAllowHeaders) {
		p.AllowHeaders = slices.Clone(DefaultAllowHeaders)
	}
	if !present.has(fieldPreflightMaxAge) {
		p.PreflightMaxAge = DefaultPreflightMaxAge
	}
	if !present.has(fieldPreflightStatus) {
		p.PreflightStatus = DefaultPreflightStatus
	}
	if !present.has(fieldUnmatchedPreflight) {
		p.UnmatchedPreflight = corsprocv1.UnmatchedPreflight_UNMATCHED_PREFLIGHT_REJECT
	}
	if !present.has(fieldMode) {
		p.Mode = corsprocv1.Mode_MODE_ENFORCE
	}
}

func (d *decoder) field(n *yaml.Node, path string, m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	n = d.resolve(n, path)
	if d.capped {
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		fix := "give a value, or remove the key to use the default"
		if fd.IsList() {
			fix = "write [] for an empty list, or remove the key to use the default"
		}
		d.errorAt(n, path, fix, "has no value")
		return
	}
	switch {
	case fd.IsList():
		if n.Kind != yaml.SequenceNode {
			d.errorAt(n, path, fmt.Sprintf("write a list, e.g. [%s]", n.Value), "must be a list, not %s", kindName(n))
			return
		}
		if d.countItems(n, path, fd); d.capped {
			return
		}
		list := m.Mutable(fd).List()
		// Items' positions are found through the list when a diagnostic
		// names one (diagnostics.add), not recorded one by one: a large
		// allow-list would pay for a path string and a map entry per item.
		d.ds.lists[path] = n
		for i, v := range n.Content {
			if d.capped {
				return
			}
			if fd.Kind() == protoreflect.StringKind && v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
				// The common case, a plain string, needs no path.
				if d.used.nodes++; d.used.nodes > maxNodes {
					d.checkNodes(v, item(path, i))
					return
				}
				list.Append(protoreflect.ValueOfString(v.Value))
				continue
			}
			ipath := item(path, i)
			if fd.Kind() == protoreflect.MessageKind {
				el := list.NewElement()
				d.message(v, ipath, el.Message())
				list.Append(el)
				continue
			}
			v = d.resolve(v, ipath)
			if s, ok := d.scalar(v, ipath, fd); ok {
				list.Append(s)
			}
		}
	case fd.Kind() == protoreflect.MessageKind:
		d.message(n, path, m.Mutable(fd).Message())
	default:
		if v, ok := d.scalar(n, path, fd); ok {
			m.Set(fd, v)
		}
	}
}

func (d *decoder) scalar(n *yaml.Node, path string, fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorAt(n, path, "write a single value", "must be a %s, not %s", kindWord(fd), kindName(n))
		return protoreflect.Value{}, false
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		switch n.Tag {
		case "!!str", "!!int", "!!float":
			return protoreflect.ValueOfString(n.Value), true
		}
		d.errorAt(n, path, fmt.Sprintf("quote it: %q", n.Value), "must be a string, not %s", kindName(n))
	case protoreflect.BoolKind:
		var b bool
		if n.Tag == "!!bool" && n.Decode(&b) == nil {
			return protoreflect.ValueOfBool(b), true
		}
		d.errorAt(n, path, "write true or false", "must be true or false, not %q", n.Value)
	case protoreflect.Int32Kind, protoreflect.Int64Kind:
		var i int64
		if n.Tag != "!!int" || n.Decode(&i) != nil {
			d.errorAt(n, path, "write a whole number", "must be a whole number, not %q", n.Value)
			break
		}
		if fd.Kind() == protoreflect.Int32Kind {
			if int64(int32(i)) != i {
				d.errorAt(n, path, "write a smaller number", "%d is out of range", i)
				break
			}
			return protoreflect.ValueOfInt32(int32(i)), true
		}
		return protoreflect.ValueOfInt64(i), true
	case protoreflect.EnumKind:
		if v := enumValue(fd.Enum(), n.Value); v != nil && n.Tag == "!!str" {
			return protoreflect.ValueOfEnum(v.Number()), true
		}
		d.errorAt(n, path, "write one of: "+enumChoices(fd.Enum()), "unknown value %q", n.Value)
	default:
		// The schema holds no other kinds; a new one fails here loudly in
		// tests rather than being silently dropped.
		d.errorAt(n, path, "", "corsproc cannot decode a %s field", fd.Kind())
	}
	return protoreflect.Value{}, false
}

// The values of an enum are written in YAML as the protobuf value name
// (protoreflect.EnumValueDescriptor.Name) without the enum's prefix, in
// lower case: MODE_SHADOW is "shadow", as docs/policy.md lists the values.
// The prefix is the name of the enum's zero value without "UNSPECIFIED";
// that value cannot be written. The spelling is worked out from the
// descriptor on each use: the schema's enums have two or three values.

// enumSpelling returns the YAML spelling of v in the enum ed, "" for the
// zero value.
func enumSpelling(ed protoreflect.EnumDescriptor, v protoreflect.EnumValueDescriptor) string {
	if v.Number() == 0 {
		return ""
	}
	prefix := strings.TrimSuffix(string(ed.Values().ByNumber(0).Name()), "UNSPECIFIED")
	return strings.ToLower(strings.TrimPrefix(string(v.Name()), prefix))
}

// enumValue returns the value of ed spelled s, or nil.
func enumValue(ed protoreflect.EnumDescriptor, s string) protoreflect.EnumValueDescriptor {
	values := ed.Values()
	for i := range values.Len() {
		if v := values.Get(i); v.Number() != 0 && enumSpelling(ed, v) == s {
			return v
		}
	}
	return nil
}

// enumChoices returns the spellings of ed's values, sorted and
// comma-separated, for a fix.
func enumChoices(ed protoreflect.EnumDescriptor) string {
	var names []string
	values := ed.Values()
	for i := range values.Len() {
		if name := enumSpelling(ed, values.Get(i)); name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// EnumName returns the YAML spelling of an enum value (MODE_SHADOW is
// "shadow"), "" for the zero (UNSPECIFIED) value.
func EnumName(v protoreflect.Enum) string {
	ed := v.Descriptor()
	vd := ed.Values().ByNumber(v.Number())
	if vd == nil {
		return ""
	}
	return enumSpelling(ed, vd)
}

func kindWord(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "boolean"
	case protoreflect.Int32Kind, protoreflect.Int64Kind:
		return "number"
	}
	return "string"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	case "!!null":
		return "null"
	}
	return strconv.Quote(n.Value)
}

// dchKeys maps the django-cors-headers settings whose name is not the
// policy key's, without CORS_ and in lower case, to the key each becomes
// (docs/migrating-from-django.md): the old names DCH still reads, and
// CORS_URLS_REGEX, which is a key of match.
var dchKeys = map[string]string{
	"origin_whitelist":       "allowed_origins",
	"origin_regex_whitelist": "allowed_origin_regexes",
	"origin_allow_all":       "allow_all_origins",
	"urls_regex":             "match.urls_regex",
}

// dchRemoved says, for the django-cors-headers settings corsproc has no key
// for (without CORS_, in lower case), what to write instead.
var dchRemoved = map[string]string{
	"model":                 "CORS_MODEL is no longer a django-cors-headers setting and corsproc has no equivalent: list the origins in allowed_origins",
	"replace_https_referer": "CORS_REPLACE_HTTPS_REFERER is no longer a django-cors-headers setting and corsproc never rewrites Referer: remove it (Django's CSRF_TRUSTED_ORIGINS is the way to trust another origin for CSRF)",
}

// suggest proposes the key the user probably meant: a DCH setting name,
// old or new, prefixed or not (CORS_ALLOWED_ORIGINS, CORS_ORIGIN_WHITELIST,
// origin_whitelist), a key in the wrong case, or one within two edits.
func suggest(key string, fields protoreflect.FieldDescriptors) string {
	want := strings.ToLower(key)
	if rest, ok := strings.CutPrefix(want, "cors_"); ok {
		want = rest
	}
	if fix, ok := dchRemoved[want]; ok {
		return fix
	}
	if k, ok := dchKeys[want]; ok {
		want = k
	}
	if top, sub, ok := strings.Cut(want, "."); ok {
		if fields.ByName(protoreflect.Name(top)) != nil {
			return fmt.Sprintf("did you mean %q under %s? write %s: {%s: ...}", sub, top, top, sub)
		}
	}
	if fields.ByName("policies") != nil && policyFields.ByName(protoreflect.Name(strings.Split(want, ".")[0])) != nil {
		// A policy's key written at the top of the file.
		return fmt.Sprintf("did you mean %q? it is a key of each policy: write it in an entry of policies (corsproc import django converts a settings file)", want)
	}
	best, bestDist := "", 3
	for i := 0; i < fields.Len(); i++ {
		name := string(fields.Get(i).Name())
		if name == want {
			return fmt.Sprintf("did you mean %q?", name)
		}
		if dist := EditDistance(want, name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	var names []string
	for i := 0; i < fields.Len(); i++ {
		names = append(names, string(fields.Get(i).Name()))
	}
	return "known keys here: " + strings.Join(names, ", ")
}

// EditDistance is the Levenshtein distance between a and b, for
// suggesting the name a user probably meant. Strings longer than 64 bytes
// are never close to a name: their distance is reported as 64 without the
// quadratic work.
func EditDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func item(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
