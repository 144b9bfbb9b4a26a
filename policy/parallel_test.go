package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// parallelAlways makes every list of policies decode and compile on three
// goroutines, one policy each at least, for the length of a test.
func parallelAlways(tb testing.TB) {
	minItems, workers := parallelMinItems, parallelWorkers
	parallelMinItems, parallelWorkers = 1, func(int) int { return 3 }
	tb.Cleanup(func() { parallelMinItems, parallelWorkers = minItems, workers })
}

// parseOneGoroutine parses data with splitting and parallelism off.
func parseOneGoroutine(t *testing.T, data []byte) (*Set, error) {
	t.Helper()
	minBytes, minItems, workers := splitMinBytes, parallelMinItems, parallelWorkers
	splitMinBytes, parallelMinItems, parallelWorkers = len(data)+1, len(data)+1, func(int) int { return 1 }
	defer func() { splitMinBytes, parallelMinItems, parallelWorkers = minBytes, minItems, workers }()
	s, sp, err := parse("p.yaml", data)
	if sp != (spread{}) {
		t.Fatalf("with parallelism off, a stage ran on several goroutines: %+v", sp)
	}
	return s, err
}

// parallelCases are files of several policies with problems in several of
// them, problems that span policies (a name or a route used twice, aliases
// shared between policies) and warnings, so that diagnostics from different
// goroutines must come out in one order.
var parallelCases = map[string]string{
	"valid":                        "policies:\n  - name: a\n    allowed_origins: [https://a.example]\n  - name: b\n    match: {routes: [r-b]}\n    allowed_origins: [https://b.example]\n    preflight_max_age: 86400\n  - name: c\n    allow_all_origins: true\ndefault_policy: a\n",
	"errors in several policies":   "policies:\n  - name: A\n    allowed_origins: [https://a.example/]\n  - name: b\n    allow_methods: [get]\n    allowed_origin: []\n  - name: a\n    allowed_origins: ['*']\n    allow_credentials: true\n  - name: d\n    preflight_status: 201\n",
	"spanning policies":            "policies:\n  - name: a\n    match: {routes: [r1, r2]}\n    allowed_origins: [https://a.example]\n  - name: a\n    match: {routes: [r2]}\n    allowed_origins: [https://a.example]\n  - name: c\n    match: {routes: [r1, '']}\n    allowed_origins: [https://a.example]\ndefault_policy: z\n",
	"aliases between policies":     "policies:\n  - &p\n    name: Bad\n    allowed_origins: [http://a.example]\n    allow_credentials: true\n    preflight_max_age: 90000\n  - *p\n  - <<: *p\n    name: c\n  - name: d\n    allowed_origins: [https://a.example]\n",
	"aliases with decoding errors": "policies:\n  - &p\n    name: a\n    allow_credentials: maybe\n    allowed_origins: https://a.example\n  - *p\n  - *p\n  - *p\n",
	"wrong types":                  "policies:\n  - name: a\n    allowed_origins: https://a.example\n  - 7\n  - name: c\n    allow_credentials: maybe\n  - null\n",
}

// TestParallelMatchesOneGoroutine: every fixture and the cases above give
// the same set, or the same diagnostics in the same order, whether they are
// parsed, decoded and compiled on one goroutine or on several.
func TestParallelMatchesOneGoroutine(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	inputs := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[filepath.Base(f)] = data
	}
	for name, data := range parallelCases {
		inputs[name] = []byte(data)
	}
	var b strings.Builder
	b.WriteString("policies:\n")
	for i := range 50 {
		fmt.Fprintf(&b, "  - name: p%d\n    match: {routes: [r%d]}\n    allowed_origins: [https://a%d.example]\n", i, i%40, i)
	}
	inputs["routes bound twice, many policies"] = []byte(b.String())

	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			checkParallel(t, data)
		})
	}
}

// TestParallelNodeBound: aliases that expand past the node bound only
// across several policies, each below it, are reported where one goroutine
// reports them.
func TestParallelNodeBound(t *testing.T) {
	old := maxNodes
	maxNodes = 60
	t.Cleanup(func() { maxNodes = old })
	const data = `
x-origins: &o [https://a.example, https://b.example, https://c.example, https://d.example, https://e.example]
policies:
  - {name: a, allowed_origins: *o, match: {hosts: [a.example, b.example]}}
  - {name: b, allowed_origins: *o, match: {hosts: [a.example, b.example]}}
  - {name: c, allowed_origins: *o, match: {hosts: [a.example, b.example]}}
  - {name: d, allowed_origins: *o, match: {hosts: [a.example, b.example]}}
  - {name: e, allowed_origins: *o, match: {hosts: [a.example, b.example]}}
  - {name: f, allowed_origins: *o, match: {hosts: [a.example, b.example]}}
`
	_, err := checkParallel(t, []byte(data))
	if err == nil || !strings.Contains(err.Error(), "expands to more than 60 YAML nodes") {
		t.Fatalf("err = %v, want the node bound exceeded", err)
	}
}

// checkParallel parses data on one goroutine and on several, and fails
// unless both give the same set or the same diagnostics in the same order.
// It returns the parallel result.
func checkParallel(t *testing.T, data []byte) (*Set, error) {
	t.Helper()
	want, wantErr := parseOneGoroutine(t, data)
	splitAlways(t)
	parallelAlways(t)
	got, gotErr := Parse("p.yaml", data)
	var gotV, wantV *ValidationError
	errors.As(gotErr, &gotV)
	errors.As(wantErr, &wantV)
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("in parallel: %v; on one goroutine: %v", gotErr, wantErr)
	case gotErr != nil && !reflect.DeepEqual(gotV, wantV):
		t.Fatalf("in parallel:\n%v\non one goroutine:\n%v", gotErr, wantErr)
	case gotErr == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("the sets differ:\n%+v\n%+v", got, want)
	}
	return got, gotErr
}

// FuzzParallelParse: whatever the input, parsing it on several goroutines
// gives what one goroutine gives.
func FuzzParallelParse(f *testing.F) {
	for _, data := range parallelCases {
		f.Add([]byte(data))
	}
	for _, tc := range splitCases {
		f.Add([]byte(tc.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		checkParallel(t, data)
	})
}

// largePolicies is the size of a large policy file: the 10,000 policies
// docs/performance.md measures (about 1 MB here). It is fixed, not derived
// from the thresholds, so that a threshold raised past it fails a test.
const largePolicies = 10000

// TestLargeFileDefaults: a large file, with the thresholds as shipped, is
// parsed in pieces and decoded and compiled on several goroutines (a small
// one on this goroutine alone), and gives what one goroutine gives: the same
// set when it is valid, the same diagnostics in the same order when it is
// not.
func TestLargeFileDefaults(t *testing.T) {
	if parallelWorkers(0) < 2 || splitParts(0) < 2 {
		t.Skip("one CPU: large files are parsed, decoded and compiled on one goroutine")
	}
	large := func(broken bool) []byte {
		var b strings.Builder
		b.WriteString("# generated\npolicies:\n")
		for i := range largePolicies {
			fmt.Fprintf(&b, "  - name: p%d\n    match:\n      routes: [route-%d]\n    allowed_origins: [https://app%d.example.com]\n", i, i, i)
			if i%97 == 0 {
				b.WriteString("    preflight_max_age: 86400\n") // a warning
			}
			if broken && i%211 == 0 {
				fmt.Fprintf(&b, "    allow_methods: [get, TRACE]\n    match: {routes: [route-%d]}\n", i+1) // errors
			}
		}
		b.WriteString("default_policy: p1\n")
		return []byte(b.String())
	}
	small := "policies:\n  - name: web\n    allowed_origins: [https://app.example.com]\n"
	if _, sp, err := parse("p.yaml", []byte(small)); err != nil || sp != (spread{}) {
		t.Fatalf("a one-policy file: %v, spread %+v; want it valid and on this goroutine alone", err, sp)
	}
	for _, broken := range []bool{false, true} {
		data := large(broken)
		want, wantErr := parseOneGoroutine(t, data)
		got, sp, gotErr := parse("p.yaml", data)
		if all := (spread{split: true, decode: true, compile: true}); sp != all {
			t.Fatalf("broken=%v: a %d-byte file of %d policies was spread as %+v, want %+v", broken, len(data), largePolicies, sp, all)
		}
		switch {
		case (gotErr != nil) != broken || (wantErr != nil) != broken:
			t.Fatalf("broken=%v: Parse = %v, on one goroutine %v", broken, gotErr, wantErr)
		case broken && gotErr.Error() != wantErr.Error():
			t.Fatalf("diagnostics differ:\n%v\non one goroutine:\n%v", gotErr, wantErr)
		case !broken && !reflect.DeepEqual(got, want):
			t.Fatal("the sets differ")
		case !broken && len(got.Warnings()) == 0:
			t.Fatal("no warnings: the file's warnings were lost")
		}
		if !broken {
			// Every policy answers for its own route.
			for i, name := range got.Names() {
				r := Request{Method: "GET", Origin: fmt.Sprintf("https://app%d.example.com", i), Route: fmt.Sprintf("route-%d", i)}
				var d Decision
				got.Decide(&r, &d)
				if d.Policy != name || d.Outcome != OutcomeAllowed {
					t.Fatalf("route-%d: policy %q, %v; want %q allowed", i, d.Policy, d.Outcome, name)
				}
			}
		}
	}
}
