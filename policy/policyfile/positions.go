package policyfile

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/corsproc/corsproc/policy"
	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"
)

// decoded is one policy file being decoded: its schema, where it wrote each
// field, and the problems found so far.
type decoded struct {
	file   string
	pf     *corsprocv1.PolicyFile // nil when the file could not be decoded at all
	capped bool                   // a bound of limits.go was crossed: nothing is compiled
	list   []policy.Diagnostic
	*positions
}

func newDecoded(file string) *decoded {
	return &decoded{file: file, positions: &positions{nodes: map[string]*yaml.Node{}, lists: map[string]*yaml.Node{}}}
}

func (f *decoded) errorf(path, fix, format string, args ...any) {
	d := policy.Diagnostic{Severity: policy.SeverityError, File: f.file, Path: path, Message: fmt.Sprintf(format, args...), Fix: fix}
	d.Locate(f.positions)
	f.list = append(f.list, d)
}

func (f *decoded) hasErrors() bool {
	return slices.ContainsFunc(f.list, func(d policy.Diagnostic) bool { return d.Severity == policy.SeverityError })
}

// input is f as policy.Compile takes it; text is the file's, kept by the set.
func (f *decoded) input(text []byte) policy.Input {
	return policy.Input{File: f.file, Schema: f.pf, Data: text, Locator: f.positions, Diagnostics: f.list}
}

// inputs gives policy.Compile the decoded files; when the last one crossed
// a bound, their schemas are left out, so nothing is compiled and the load
// fails with what decoding found, the bound's error last.
func inputs(files []*decoded, sources []fileText) []policy.Input {
	capped := len(files) > 0 && files[len(files)-1].capped
	out := make([]policy.Input, len(files))
	for i, f := range files {
		if capped {
			f.pf = nil
		}
		out[i] = f.input(sources[i].data)
	}
	return out
}

// sortByPosition sorts one file's diagnostics in file order.
func sortByPosition(ds []policy.Diagnostic) []policy.Diagnostic {
	slices.SortStableFunc(ds, func(a, b policy.Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return ds
}

// positions are the YAML nodes the decoder recorded, by field path: the
// policy.Locator of a decoded file.
//
// Positions are not recorded per field, which would cost a path string and
// a map entry for every key and item of a large file: the decoder records
// the YAML node of each mapping (nodes) and list (lists), and a
// diagnostic's position is looked up through them when it is reported.
type positions struct {
	nodes map[string]*yaml.Node // mapping nodes by path
	lists map[string]*yaml.Node // list nodes by path
	// merged holds the keys a merge key (<<) brought into a mapping, by
	// path: they are not among the mapping's own keys. nil until one is.
	merged map[string]entry
}

// Locate returns where the file wrote the value at path: a mapping's own
// position, a scalar value's, the key of a list or of a key the decoder
// rejected, a list item's.
func (ps *positions) Locate(path string) (line, column int, ok bool) {
	if path == "" {
		return 1, 1, true // the whole file: its first line
	}
	if n, ok := ps.nodes[path]; ok {
		return n.Line, n.Column, true
	}
	if strings.HasSuffix(path, "]") {
		open := strings.LastIndexByte(path, '[')
		if n, ok := ps.lists[path[:max(open, 0)]]; ok && open > 0 {
			if i, err := strconv.Atoi(path[open+1 : len(path)-1]); err == nil && i >= 0 && i < len(n.Content) {
				return n.Content[i].Line, n.Content[i].Column, true
			}
		}
		return 0, 0, false
	}
	if k, v := ps.key(path); k != nil {
		if v.Kind == yaml.ScalarNode {
			return v.Line, v.Column, true
		}
		return k.Line, k.Column, true
	}
	return 0, 0, false
}

// key returns the key and value nodes of the key path names: as written in
// its mapping, or where a merge key (<<) brought it from.
func (ps *positions) key(path string) (key, value *yaml.Node) {
	parent, name := "", path
	if dot := strings.LastIndexByte(path, '.'); dot >= 0 {
		parent, name = path[:dot], path[dot+1:]
	}
	m, ok := ps.nodes[parent]
	if !ok {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == name {
			return m.Content[i], m.Content[i+1]
		}
	}
	if e, ok := ps.merged[path]; ok {
		return e.key, e.value
	}
	return nil, nil
}
