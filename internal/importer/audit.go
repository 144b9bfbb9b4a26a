package importer

import (
	"fmt"
	"strings"
)

// Finding is one finding of corsproc audit: a warning about what the
// sources do (not about how corsproc writes it), as its JSON report holds it.
type Finding struct {
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Setting  string `json:"setting,omitempty"`
	Policy   string `json:"policy,omitempty"`
	Code     string `json:"code"`
	Severity string `json:"severity"` // unsafe or warning
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

// auditCodes are the warnings audit reports besides the unsafe ones.
var auditCodes = map[Code]bool{
	CodeUnsafeOrigin: true, CodeOrigin: true, CodeMissingVary: true,
	CodePreflightAuth: true, CodeConflict: true, CodeLeftOut: true,
}

// Audit returns the findings of res, and how many are unsafe (corsproc
// audit exits 1 when one is).
func Audit(res *Result) (findings []Finding, unsafe int) {
	for _, w := range res.Warnings {
		if !w.Unsafe && !auditCodes[w.Code] {
			continue
		}
		f := Finding{File: w.File, Line: w.Line, Setting: w.Setting, Policy: w.Policy, Code: string(w.Code),
			Severity: "warning", Message: w.Message, Fix: w.Fix}
		if f.Code == "" {
			f.Code = string(CodeRefused)
		}
		if w.Unsafe {
			f.Severity = "unsafe"
			unsafe++
		}
		findings = append(findings, f)
	}
	return findings, unsafe
}

// String renders f as corsproc audit --format text prints it.
func (f Finding) String() string {
	w := Warning{File: f.File, Line: f.Line, Setting: f.Setting, Policy: f.Policy, Message: f.Message, Fix: f.Fix}
	return fmt.Sprintf("%s [%s]: %s", f.Severity, f.Code, w)
}

// AuditText is what corsproc audit --format text prints for res.
func AuditText(res *Result) string {
	findings, unsafe := Audit(res)
	var b strings.Builder
	for _, f := range findings {
		b.WriteString(f.String())
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%d findings, %d unsafe\n", len(findings), unsafe)
	return b.String()
}

// WarningsText is what corsproc import prints on standard error for an
// import's warnings: one line each, "error: " for what corsproc refuses.
func WarningsText(ws []Warning) string {
	var b strings.Builder
	for _, w := range ws {
		sev := "warning"
		if w.Error {
			sev = "error"
		}
		fmt.Fprintf(&b, "%s: %s\n", sev, w)
	}
	return b.String()
}
