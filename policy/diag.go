package policy

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Severity tells an error from a warning.
type Severity uint8

const (
	SeverityError Severity = iota
	SeverityWarning
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Diagnostic is one problem found in a policy file: where it is, what is
// wrong, and how to fix it.
type Diagnostic struct {
	Severity Severity
	File     string
	Line     int    // 1-based; 0 when unknown
	Column   int    // 1-based; 0 when unknown
	Path     string // field path, e.g. policies[1].allowed_origins[0]
	Message  string
	Fix      string
}

// String renders the diagnostic as one line:
//
//	policy.yaml:12:7: error: policies[1].allowed_origins[0]: "https://app.example.com/" has a path; fix: write "https://app.example.com"
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", d.Line, d.Column)
	}
	b.WriteString(": ")
	b.WriteString(d.Severity.String())
	b.WriteString(": ")
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	if d.Fix != "" {
		b.WriteString("; fix: ")
		b.WriteString(d.Fix)
	}
	return b.String()
}

// LogAttrs renders the diagnostic as log attributes, leaving out the parts
// it does not have: file, line, column, path, problem, fix.
func (d Diagnostic) LogAttrs() []slog.Attr {
	attrs := []slog.Attr{slog.String("file", d.File)}
	if d.Line > 0 {
		attrs = append(attrs, slog.Int("line", d.Line))
	}
	if d.Column > 0 {
		attrs = append(attrs, slog.Int("column", d.Column))
	}
	if d.Path != "" {
		attrs = append(attrs, slog.String("path", d.Path))
	}
	attrs = append(attrs, slog.String("problem", d.Message))
	if d.Fix != "" {
		attrs = append(attrs, slog.String("fix", d.Fix))
	}
	return attrs
}

// ValidationError is returned when a policy file has errors. It holds every
// diagnostic found, warnings included, in file order.
type ValidationError struct {
	Diagnostics []Diagnostic
	files       int // how many files the set has
}

// Errors returns the diagnostics that are errors.
func (e *ValidationError) Errors() []Diagnostic { return filter(e.Diagnostics, SeverityError) }

// Warnings returns the diagnostics that are warnings.
func (e *ValidationError) Warnings() []Diagnostic { return filter(e.Diagnostics, SeverityWarning) }

func (e *ValidationError) Error() string {
	errs := e.Errors()
	what := "file"
	if e.files > 1 {
		what = "set"
	}
	var b strings.Builder
	if len(errs) == 1 {
		fmt.Fprintf(&b, "invalid policy %s: 1 error", what)
	} else {
		fmt.Fprintf(&b, "invalid policy %s: %d errors", what, len(errs))
	}
	for _, d := range e.Diagnostics {
		b.WriteString("\n  ")
		b.WriteString(d.String())
	}
	return b.String()
}

func filter(ds []Diagnostic, s Severity) []Diagnostic {
	var out []Diagnostic
	for _, d := range ds {
		if d.Severity == s {
			out = append(out, d)
		}
	}
	return out
}

// diagnostics collects the problems of one file. Positions come from the
// decoder, keyed by field path.
//
// Positions are not recorded per field, which would cost a path string and
// a map entry for every key and item of a large file: the decoder records
// the YAML node of each mapping (nodes) and list (lists), and a
// diagnostic's position is looked up through them when it is reported.
type diagnostics struct {
	file string
	*positions
	list []Diagnostic
}

// positions are the YAML nodes the decoder recorded, by path.
type positions struct {
	nodes map[string]*yaml.Node // mapping nodes by path
	lists map[string]*yaml.Node // list nodes by path
	// merged holds the keys a merge key (<<) brought into a mapping, by
	// path: they are not among the mapping's own keys. nil until one is.
	merged map[string]entry
}

func newDiagnostics(file string) *diagnostics {
	return &diagnostics{file: file, positions: &positions{nodes: map[string]*yaml.Node{}, lists: map[string]*yaml.Node{}}}
}

// position returns where the file wrote the value at path: a mapping's own
// position, a scalar value's, the key of a list or of a key the decoder
// rejected, a list item's.
func (ds *diagnostics) position(path string) (position, bool) {
	if path == "" {
		return position{1, 1}, true // the whole file: its first line
	}
	if n, ok := ds.nodes[path]; ok {
		return position{n.Line, n.Column}, true
	}
	if strings.HasSuffix(path, "]") {
		open := strings.LastIndexByte(path, '[')
		if n, ok := ds.lists[path[:max(open, 0)]]; ok && open > 0 {
			if i, err := strconv.Atoi(path[open+1 : len(path)-1]); err == nil && i >= 0 && i < len(n.Content) {
				return position{n.Content[i].Line, n.Content[i].Column}, true
			}
		}
		return position{}, false
	}
	if k, v := ds.key(path); k != nil {
		if v.Kind == yaml.ScalarNode {
			return position{v.Line, v.Column}, true
		}
		return position{k.Line, k.Column}, true
	}
	return position{}, false
}

// key returns the key and value nodes of the key path names: as written in
// its mapping, or where a merge key (<<) brought it from.
func (ds *diagnostics) key(path string) (key, value *yaml.Node) {
	parent, name := "", path
	if dot := strings.LastIndexByte(path, '.'); dot >= 0 {
		parent, name = path[:dot], path[dot+1:]
	}
	m, ok := ds.nodes[parent]
	if !ok {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == name {
			return m.Content[i], m.Content[i+1]
		}
	}
	if e, ok := ds.merged[path]; ok {
		return e.key, e.value
	}
	return nil, nil
}

// written reports whether the file writes the key at path itself (rather
// than the key taking its default).
func (ds *diagnostics) written(path string) bool {
	k, _ := ds.key(path)
	return k != nil
}

type position struct{ line, column int }

func (ds *diagnostics) add(sev Severity, path, fix, format string, args ...any) {
	d := Diagnostic{Severity: sev, File: ds.file, Path: path, Message: fmt.Sprintf(format, args...), Fix: fix}
	// A path the decoder never saw (a default, or an absent key) takes the
	// position of its closest parent that was written.
	for p := path; ; {
		if pos, ok := ds.position(p); ok {
			d.Line, d.Column = pos.line, pos.column
			break
		}
		if p == "" {
			break
		}
		p = p[:max(strings.LastIndexAny(p, ".["), 0)]
	}
	ds.list = append(ds.list, d)
}

func (ds *diagnostics) errorf(path, fix, format string, args ...any) {
	ds.add(SeverityError, path, fix, format, args...)
}

func (ds *diagnostics) warnf(path, fix, format string, args ...any) {
	ds.add(SeverityWarning, path, fix, format, args...)
}

func (ds *diagnostics) hasErrors() bool {
	for _, d := range ds.list {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// sortByPosition sorts one file's diagnostics in file order.
func sortByPosition(ds []Diagnostic) []Diagnostic {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return ds
}
