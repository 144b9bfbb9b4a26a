package kubecors

import (
	"fmt"
	"strings"

	"github.com/corsproc/corsproc/internal/importer"
)

// The examples of docs/migrating-istio-gateway-api.md are executed by the
// tests of the istio and gatewayapi packages: each fenced block follows a
// marker line "<!-- NAME -->", and the tests compare the importer's output
// with the blocks (or rewrite them, with -update).

// GuideBlock returns the fenced block after the marker <!-- name --> in
// doc, and where its content starts and ends; ok is false without one.
func GuideBlock(doc, name string) (content string, start, end int, ok bool) {
	i := strings.Index(doc, "<!-- "+name+" -->\n")
	if i < 0 {
		return "", 0, 0, false
	}
	rest := doc[i:]
	open := strings.Index(rest, "```")
	if open < 0 {
		return "", 0, 0, false
	}
	nl := strings.IndexByte(rest[open:], '\n')
	if nl < 0 {
		return "", 0, 0, false
	}
	start = i + open + nl + 1
	closing := strings.Index(doc[start:], "```")
	if closing < 0 {
		return "", 0, 0, false
	}
	end = start + closing
	return doc[start:end], start, end, true
}

// ImportReport is what corsproc import prints on standard error for res:
// one line per warning, "error: " for what corsproc refuses.
func ImportReport(res *importer.Result) string {
	var b strings.Builder
	for _, w := range res.Warnings {
		sev := "warning"
		if w.Error {
			sev = "error"
		}
		fmt.Fprintf(&b, "%s: %s\n", sev, w)
	}
	return b.String()
}

// auditCodes are the findings corsproc audit reports besides the unsafe
// ones (cmd/corsproc, runAudit).
var auditCodes = map[importer.Code]bool{
	importer.CodeUnsafeOrigin: true, importer.CodeOrigin: true, importer.CodeMissingVary: true,
	importer.CodePreflightAuth: true, importer.CodeConflict: true, importer.CodeLeftOut: true,
}

// AuditReport is what corsproc audit --format text prints for res.
func AuditReport(res *importer.Result) string {
	var b strings.Builder
	n, unsafe := 0, 0
	for _, w := range res.Warnings {
		if !w.Unsafe && !auditCodes[w.Code] {
			continue
		}
		n++
		sev := "warning"
		if w.Unsafe {
			sev = "unsafe"
			unsafe++
		}
		code := w.Code
		if code == "" {
			code = importer.CodeRefused
		}
		plain := importer.Warning{File: w.File, Line: w.Line, Setting: w.Setting, Policy: w.Policy, Message: w.Message, Fix: w.Fix}
		fmt.Fprintf(&b, "%s [%s]: %s\n", sev, code, plain)
	}
	fmt.Fprintf(&b, "%d findings, %d unsafe\n", n, unsafe)
	return b.String()
}
