package policy

import (
	"cmp"
	"fmt"
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
type diagnostics struct {
	file    string
	pos     map[string]position
	written map[string]bool // keys the file wrote and the decoder accepted
	list    []Diagnostic
}

func newDiagnostics(file string) *diagnostics {
	// The root path stands for the whole file: its first line.
	return &diagnostics{file: file, pos: map[string]position{"": {1, 1}}, written: map[string]bool{}}
}

type position struct{ line, column int }

func (ds *diagnostics) add(sev Severity, path, fix, format string, args ...any) {
	d := Diagnostic{Severity: sev, File: ds.file, Path: path, Message: fmt.Sprintf(format, args...), Fix: fix}
	// A path the decoder never saw (a default, or an absent key) takes the
	// position of its closest parent that was written.
	for p := path; ; {
		if pos, ok := ds.pos[p]; ok {
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

func (ds *diagnostics) warnings() []Diagnostic { return filter(ds.list, SeverityWarning) }

// sortByPosition sorts one file's diagnostics in file order.
func sortByPosition(ds []Diagnostic) []Diagnostic {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return ds
}
