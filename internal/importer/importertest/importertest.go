// Package importertest holds what the tests of the source importers share:
// the golden report of an import and its comparison.
package importertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/importer"
	"github.com/corsproc/corsproc/internal/importer/kubecors"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// Report renders a Result as the golden files of the source importers'
// tests hold it: the YAML, then every warning with its code.
func Report(res *importer.Result) string {
	var b strings.Builder
	b.Write(res.YAML)
	b.WriteString("---\n")
	for _, w := range res.Warnings {
		sev := "warning"
		if w.Error {
			sev = "error"
		}
		flags := string(w.Code)
		if w.Unsafe {
			flags += ",unsafe"
		}
		if w.LeftOut {
			flags += ",left_out"
		}
		b.WriteString(sev + " [" + flags + "]: " + w.String() + "\n")
	}
	return b.String()
}

// Golden compares got with the file testdata/name, or writes it when
// update is set.
func Golden(t testing.TB, name, got string, update bool) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run with -update after checking the change):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// CheckComments fails t unless every key of the policies in yaml (each
// line holding "key:" under policies:) carries a comment saying where it
// came from; "match:", whose keys each carry one, is the exception.
func CheckComments(t testing.TB, yaml []byte) {
	t.Helper()
	in := false
	for i, line := range strings.Split(string(yaml), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case line == "policies:":
			in = true
			continue
		case !in || trimmed == "" || strings.HasPrefix(trimmed, "#") || trimmed == "match:":
			continue
		case strings.HasPrefix(trimmed, "- ") && !strings.Contains(trimmed, ": "):
			continue // a list entry: its key's comment covers it
		}
		if !strings.Contains(line, "  # ") {
			t.Errorf("line %d has no source comment: %q", i+1, line)
		}
	}
}

// ImportFunc imports one source file, as the source packages' Import does.
type ImportFunc func(name string, data []byte) (*importer.Result, error)

// ImportFile imports testdata/name with imp.
func ImportFile(t testing.TB, imp ImportFunc, name string) *importer.Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return ImportText(t, imp, name, string(data))
}

// ImportText imports text, named name, with imp.
func ImportText(t testing.TB, imp ImportFunc, name, text string) *importer.Result {
	t.Helper()
	res, err := imp(name, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// FromRead is the ImportFunc of a source package's Read: the rule set of
// the one file, built into a policy file by importer.Build.
func FromRead(read func([]importer.File) (*importer.RuleSet, error)) ImportFunc {
	return func(name string, data []byte) (*importer.Result, error) {
		rs, err := read([]importer.File{{Name: name, Data: data}})
		if err != nil {
			return nil, err
		}
		return importer.Build(rs)
	}
}

// GoldenFixtures pins the policy file and the warnings of each
// testdata/*ext fixture (at least min of them) in its .golden file; with
// comments, every key of the policy file must also say where it came
// from (CheckComments).
func GoldenFixtures(t *testing.T, imp ImportFunc, ext string, min int, comments, update bool) {
	names, _ := filepath.Glob("testdata/*" + ext)
	if len(names) < min {
		t.Fatalf("fixtures: %v", names)
	}
	for _, n := range names {
		base := filepath.Base(n)
		t.Run(base, func(t *testing.T) {
			res := ImportFile(t, imp, base)
			if comments {
				CheckComments(t, res.YAML)
			}
			Golden(t, strings.TrimSuffix(base, ext)+".golden", Report(res), update)
		})
	}
}

// Check is a request and the outcome the source's documented semantics
// give it.
type Check struct {
	Req     policy.Request
	Outcome policy.Outcome
}

// Preflight is a browser's preflight.
func Preflight(host, path, route, origin, method string, headers ...string) policy.Request {
	return policy.Request{Method: "OPTIONS", Host: host, Path: path, Route: route, Origin: origin, ACRM: method, ACRH: headers}
}

// Get is a browser's GET.
func Get(host, path, route, origin string) policy.Request {
	return policy.Request{Method: "GET", Host: host, Path: path, Route: route, Origin: origin}
}

// DecideAll fails t for each check set does not decide as it says.
func DecideAll(t testing.TB, set *policy.Set, checks []Check) {
	t.Helper()
	for _, c := range checks {
		var d policy.Decision
		set.Decide(&c.Req, &d)
		if d.Outcome != c.Outcome {
			t.Errorf("%s %s%s (route %q) from %q (ACRM %q, ACRH %q): %v (%v, policy %q), want %v", c.Req.Method, c.Req.Host, c.Req.Path, c.Req.Route,
				c.Req.Origin, c.Req.ACRM, c.Req.ACRH, d.Outcome, d.Reason, d.Policy, c.Outcome)
		}
	}
}

// Fix applies the correction a warning asks for to a generated file (old
// replaced by new, once) and loads it.
func Fix(t testing.TB, res *importer.Result, old, new string) *policy.Set {
	t.Helper()
	y := string(res.YAML)
	if !strings.Contains(y, old) {
		t.Fatalf("%q not in\n%s", old, y)
	}
	y = strings.Replace(y, old, new, 1)
	set, err := policyfile.Parse("fixed.yaml", []byte(y))
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	return set
}

// Guide runs the example of source in docs/migrating-istio-gateway-api.md:
// the guide shows exactly the policy file, the warnings and the audit
// report imp gives for the guide's input block "source file" (update
// rewrites them), and whether the import exits 1 (incomplete).
func Guide(t *testing.T, imp ImportFunc, source, file string, incomplete, update bool) {
	t.Helper()
	const path = "../../../docs/migrating-istio-gateway-api.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	input, _, _, ok := kubecors.GuideBlock(doc, source+" "+file)
	if !ok {
		t.Fatalf("the guide lost its %s example", source)
	}
	res := ImportText(t, imp, file, input)
	if res.Incomplete() != incomplete {
		t.Errorf("import exits 1: %t; the guide says %t", res.Incomplete(), incomplete)
	}
	for _, b := range []struct{ name, got string }{
		{source + " import", string(res.YAML)},
		{source + " warnings", importer.WarningsText(res.Warnings)},
		{source + " audit", importer.AuditText(res)},
	} {
		want, start, end, ok := kubecors.GuideBlock(doc, b.name)
		if !ok {
			t.Fatalf("the guide has no block <!-- %s -->", b.name)
		}
		if update {
			doc = doc[:start] + b.got + doc[end:]
			continue
		}
		if want != b.got {
			t.Errorf("the guide's %q differs from the importer's:\n--- guide\n%s--- importer\n%s", b.name, want, b.got)
		}
	}
	if update {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
