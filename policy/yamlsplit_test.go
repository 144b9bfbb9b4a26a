package policy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// splitAlways makes parseSplit cut any file with items into up to three
// pieces, for the length of a test.
func splitAlways(tb testing.TB) {
	minBytes, minItems, minParts, parts := splitMinBytes, splitMinItemsPerPart, splitMinParts, splitParts
	splitMinBytes, splitMinItemsPerPart, splitMinParts, splitParts = 0, 1, 1, func(int) int { return 3 }
	tb.Cleanup(func() {
		splitMinBytes, splitMinItemsPerPart, splitMinParts, splitParts = minBytes, minItems, minParts, parts
	})
}

// sameTree reports where two YAML trees differ in anything the decoder
// reads: kinds, styles, tags, values, anchors, aliases and positions.
// Comments are not compared: the decoder ignores them.
func sameTree(a, b *yaml.Node, path string) error {
	switch {
	case a.Kind != b.Kind || a.Style != b.Style || a.Tag != b.Tag || a.Value != b.Value || a.Anchor != b.Anchor:
		return fmt.Errorf("%s: node %v %v %q %q &%s, want %v %v %q %q &%s", path, a.Kind, a.Style, a.Tag, a.Value, a.Anchor, b.Kind, b.Style, b.Tag, b.Value, b.Anchor)
	case a.Line != b.Line || a.Column != b.Column:
		return fmt.Errorf("%s: at %d:%d, want %d:%d", path, a.Line, a.Column, b.Line, b.Column)
	case (a.Alias == nil) != (b.Alias == nil):
		return fmt.Errorf("%s: alias %v, want %v", path, a.Alias, b.Alias)
	case a.Alias != nil && (a.Alias.Line != b.Alias.Line || a.Alias.Column != b.Alias.Column):
		return fmt.Errorf("%s: alias to %d:%d, want %d:%d", path, a.Alias.Line, a.Alias.Column, b.Alias.Line, b.Alias.Column)
	case len(a.Content) != len(b.Content):
		return fmt.Errorf("%s: %d children, want %d", path, len(a.Content), len(b.Content))
	}
	for i := range a.Content {
		if err := sameTree(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", path, i)); err != nil {
			return err
		}
	}
	return nil
}

// checkSplit parses data whole and split, and fails if the split parse
// gives a tree when the whole parse fails, or a different tree. It reports
// whether the split parse was used.
func checkSplit(t *testing.T, data []byte) bool {
	t.Helper()
	split, ok := parseSplit(data)
	if !ok {
		return false
	}
	whole := parseWhole(data, newDiagnostics("whole.yaml"))
	if whole == nil {
		t.Fatalf("split parse accepted a file the whole parse rejects:\n%s", data)
	}
	if err := sameTree(split, whole, ""); err != nil {
		t.Fatalf("split parse differs from the whole parse: %v\n%s", err, data)
	}
	return true
}

// splitCases are files whose items can be cut (split true) and files where
// a cut would change the meaning, which must be parsed whole.
var splitCases = []struct {
	name  string
	data  string
	split bool
}{
	{"plain", "policies:\n  - name: a\n    allowed_origins: [https://a.example]\n  - name: b\n    allowed_origins:\n      - https://b.example\n  - name: c\n", true},
	{"items at column 0", "policies:\n- name: a\n  allow_credentials: true\n- name: b\n- name: c\ndefault_policy: a\n", true},
	{"head, tail, comments and blank lines", "# corsproc\n---\nversion: 1\npolicies: # all of them\n\n  # the first\n  - name: a\n\n  - name: b # second\n    # inside b\n  # before c\n  - name: c\n\n# the end\ndefault_policy: b\n", true},
	{"anchor within an item", "policies:\n  - name: a\n    allow_methods: &m [GET]\n    allow_headers: *m\n  - name: b\n  - name: c\n", true},
	{"block scalars", "policies:\n  - name: a\n    note: |\n      - not an item\n       - nor this\n  - name: b\n    note: >-\n      x\n  - name: c\n", true},
	{"items of an item", "policies:\n  - name: a\n    allowed_origins:\n    - https://a.example\n    - https://b.example\n  - name: b\n  - name: c\n", true},
	{"dash alone", "policies:\n  -\n    name: a\n  -\n    name: b\n  - name: c\n", true},
	{"wide characters before a column", "policies:\n  - name: \"é\"\n    x: {a: b, é: ü}\n  - name: b\n  - name: c\n", true},
	{"empty values at the end of pieces", "policies:\n  #0000\n  - ? 0\n  -\n  - name:\n  - name: a\n    match:\n  # a comment\n\n  - x: {}\n    y:\ndefault_policy:\n", true},
	{"empty values at the end of pieces, items at column 0", "policies:\n- name:\n-\n- match:\n- name: c\n", true},
	{"an empty value before comments at the end of a piece", "policies:\n - a\n - ? !!str\n     # c\n\n   # c\n - k\n - x\n", true},
	{"no trailing newline", "policies:\n  - name: a\n  - name: b\n  - name: c", true},

	{"alias to another item", "policies:\n  - name: a\n    allow_methods: &m [GET]\n  - name: b\n  - name: c\n    allow_methods: *m\n", false},
	{"anchor of the rest redefined in an item", "<<: &a {default_policy: p1}\npolicies:\n  - name: p1\n    match: &a {hosts: [a.example]}\n  - name: p2\n  - name: p3\n<<: *a\n", false},
	{"alias to the head", "common: &m [GET]\npolicies:\n  - name: a\n    allow_methods: *m\n  - name: b\n  - name: c\n", false},
	{"item line inside a double-quoted scalar", "policies:\n  - name: \"a\n  - name: b\"\n  - name: c\n  - name: d\n", false},
	{"item line inside a single-quoted scalar", "policies:\n  - name: 'a\n  - b'\n  - name: c\n  - name: d\n", false},
	{"item line inside a flow sequence", "policies:\n  - name: a\n    allowed_origins: [x,\n  - y]\n  - name: c\n  - name: d\n", false},
	{"policies inside a quoted scalar", "default_policy: \"x\npolicies:\n  - name: a\n  - name: b\n  - name: c\ny\"\n", false},
	{"flow list", "policies: [{name: a}, {name: b}, {name: c}]\n", false},
	{"anchored list", "policies: &p\n  - name: a\n  - name: b\n  - name: c\n", false},
	{"tabs", "policies:\n\t- name: a\n  - name: b\n  - name: c\n", false},
	{"carriage returns", "policies:\r\n  - name: a\r\n  - name: b\r\n  - name: c\r\n", false},
	{"line less indented than the items", "policies:\n    - name: a\n  - name: b\n    - name: c\n    - name: d\n", false},
	{"two documents", "policies:\n  - name: a\n  - name: b\n  - name: c\n---\npolicies: []\n", false},
	{"broken item", "policies:\n  - name: a\n  - name: [b\n  - name: c\n", false},
}

func TestParseSplit(t *testing.T) {
	splitAlways(t)
	for _, tc := range splitCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkSplit(t, []byte(tc.data)); got != tc.split {
				t.Errorf("split parse used: %v, want %v", got, tc.split)
			}
		})
	}
}

// TestParseSplitFixtures: every validation fixture, parsed split, gives
// the tree it gives parsed whole, and the same diagnostics.
func TestParseSplitFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	splitAlways(t)
	used := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if checkSplit(t, data) {
			used++
		}
	}
	if used < len(files)/2 {
		t.Fatalf("the split parse was used for %d of %d fixtures only", used, len(files))
	}
}

// TestParseSplitLarge: the default tuning splits a large file.
func TestParseSplitLarge(t *testing.T) {
	if splitParts(0) < 2 {
		t.Skip("one CPU: files are parsed whole")
	}
	var b strings.Builder
	b.WriteString("policies:\n")
	for i := 0; b.Len() < splitMinBytes || i < 4*splitMinItemsPerPart; i++ {
		fmt.Fprintf(&b, "  - name: p%d\n    match:\n      routes: [route-%d]\n    allowed_origins: [https://app%d.example.com]\n", i, i, i)
	}
	b.WriteString("default_policy: p0\n")
	if !checkSplit(t, []byte(b.String())) {
		t.Fatal("a large file was parsed whole")
	}
}

// FuzzParseSplit: whatever the input, the split parse gives the whole
// parse's tree or leaves the input to it.
func FuzzParseSplit(f *testing.F) {
	for _, tc := range splitCases {
		f.Add([]byte(tc.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.Count(data, []byte("\n")) > 2000 {
			return
		}
		splitAlways(t)
		checkSplit(t, data)
	})
}
