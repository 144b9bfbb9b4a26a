package policy

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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

// A Locator says where a policy file wrote each field, so that diagnostics
// point at lines: policy/policyfile's decoder gives one for every file it
// decodes. Paths are field paths, as in Diagnostic.Path.
type Locator interface {
	// Locate returns the 1-based line and column of the value the file
	// wrote at path (for a list item, the item; for a key whose value is
	// a mapping or list, the key), and false when the file did not write
	// path: a default, an absent key.
	Locate(path string) (line, column int, ok bool)
}

// Locate sets d's Line and Column from loc: the position of d.Path, or,
// for a path the file did not write (a default, an absent key), of its
// closest parent that it did write. The whole file ("") is its first line.
func (d *Diagnostic) Locate(loc Locator) {
	if loc == nil {
		return
	}
	for p := d.Path; ; {
		if p == "" {
			d.Line, d.Column = 1, 1
			return
		}
		if line, col, ok := loc.Locate(p); ok {
			d.Line, d.Column = line, col
			return
		}
		p = p[:max(strings.LastIndexAny(p, ".["), 0)]
	}
}

// diagnostics collects the problems compiling one file finds.
type diagnostics struct {
	file string
	loc  Locator // nil for a schema built in code: no positions
	list []Diagnostic
}

// written reports whether the file writes the key at path itself (rather
// than the key taking its default).
func (ds *diagnostics) written(path string) bool {
	if ds.loc == nil {
		return false
	}
	_, _, ok := ds.loc.Locate(path)
	return ok
}

func (ds *diagnostics) add(sev Severity, path, fix, format string, args ...any) {
	d := Diagnostic{Severity: sev, File: ds.file, Path: path, Message: fmt.Sprintf(format, args...), Fix: fix}
	d.Locate(ds.loc)
	ds.list = append(ds.list, d)
}

func (ds *diagnostics) errorf(path, fix, format string, args ...any) {
	ds.add(SeverityError, path, fix, format, args...)
}

func (ds *diagnostics) warnf(path, fix, format string, args ...any) {
	ds.add(SeverityWarning, path, fix, format, args...)
}

// hasErrors reports whether ds holds an error.
func hasErrors(ds []Diagnostic) bool {
	return slices.ContainsFunc(ds, func(d Diagnostic) bool { return d.Severity == SeverityError })
}

// sortByPosition sorts one file's diagnostics in file order.
func sortByPosition(ds []Diagnostic) []Diagnostic {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return ds
}
