package policyfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corsproc/corsproc/policy"
	"go.yaml.in/yaml/v3"
)

// yamlNodes counts the nodes yaml/v3 builds from data, every document of
// it, aliases counted once and not followed.
func yamlNodes(data []byte) (int, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	n := 0
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			return n, n > 0 || err.Error() == "EOF"
		}
		walk(&doc, func(*yaml.Node) { n++ })
	}
}

// walk calls f on n and every node below it, aliases not followed.
func walk(n *yaml.Node, f func(*yaml.Node)) {
	f(n)
	for _, c := range n.Content {
		walk(c, f)
	}
}

// policyShapes are files of several policies, with problems in several of
// them, problems that span policies (a name or a route used twice, aliases
// shared between policies) and warnings.
var policyShapes = map[string]string{
	"valid":                        "policies:\n  - name: a\n    allowed_origins: [https://a.example]\n  - name: b\n    match: {routes: [r-b]}\n    allowed_origins: [https://b.example]\n    preflight_max_age: 86400\n  - name: c\n    allow_all_origins: true\ndefault_policy: a\n",
	"errors in several policies":   "policies:\n  - name: A\n    allowed_origins: [https://a.example/]\n  - name: b\n    allow_methods: [get]\n    allowed_origin: []\n  - name: a\n    allowed_origins: ['*']\n    allow_credentials: true\n  - name: d\n    preflight_status: 201\n",
	"spanning policies":            "policies:\n  - name: a\n    match: {routes: [r1, r2]}\n    allowed_origins: [https://a.example]\n  - name: a\n    match: {routes: [r2]}\n    allowed_origins: [https://a.example]\n  - name: c\n    match: {routes: [r1, '']}\n    allowed_origins: [https://a.example]\ndefault_policy: z\n",
	"aliases between policies":     "policies:\n  - &p\n    name: Bad\n    allowed_origins: [http://a.example]\n    allow_credentials: true\n    preflight_max_age: 90000\n  - *p\n  - <<: *p\n    name: c\n  - name: d\n    allowed_origins: [https://a.example]\n",
	"aliases with decoding errors": "policies:\n  - &p\n    name: a\n    allow_credentials: maybe\n    allowed_origins: https://a.example\n  - *p\n  - *p\n  - *p\n",
	"wrong types":                  "policies:\n  - name: a\n    allowed_origins: https://a.example\n  - 7\n  - name: c\n    allow_credentials: maybe\n  - null\n",
}

// yamlShapes are files whose policies list is written in the shapes YAML
// allows: comments, blank lines, block scalars, anchors and aliases within
// and across policies, quoted scalars over several lines, flow lists, tabs,
// carriage returns, several documents.
var yamlShapes = map[string]string{
	"plain":                                   "policies:\n  - name: a\n    allowed_origins: [https://a.example]\n  - name: b\n    allowed_origins:\n      - https://b.example\n  - name: c\n",
	"items at column 0":                       "policies:\n- name: a\n  allow_credentials: true\n- name: b\n- name: c\ndefault_policy: a\n",
	"head, tail, comments and blank lines":    "# corsproc\n---\nversion: 1\npolicies: # all of them\n\n  # the first\n  - name: a\n\n  - name: b # second\n    # inside b\n  # before c\n  - name: c\n\n# the end\ndefault_policy: b\n",
	"anchor within an item":                   "policies:\n  - name: a\n    allow_methods: &m [GET]\n    allow_headers: *m\n  - name: b\n  - name: c\n",
	"block scalars":                           "policies:\n  - name: a\n    note: |\n      - not an item\n       - nor this\n  - name: b\n    note: >-\n      x\n  - name: c\n",
	"items of an item":                        "policies:\n  - name: a\n    allowed_origins:\n    - https://a.example\n    - https://b.example\n  - name: b\n  - name: c\n",
	"dash alone":                              "policies:\n  -\n    name: a\n  -\n    name: b\n  - name: c\n",
	"wide characters before a column":         "policies:\n  - name: \"é\"\n    x: {a: b, é: ü}\n  - name: b\n  - name: c\n",
	"empty values":                            "policies:\n  #0000\n  - ? 0\n  -\n  - name:\n  - name: a\n    match:\n  # a comment\n\n  - x: {}\n    y:\ndefault_policy:\n",
	"empty values, items at column 0":         "policies:\n- name:\n-\n- match:\n- name: c\n",
	"an empty value before comments":          "policies:\n - a\n - ? !!str\n     # c\n\n   # c\n - k\n - x\n",
	"no trailing newline":                     "policies:\n  - name: a\n  - name: b\n  - name: c",
	"alias to another item":                   "policies:\n  - name: a\n    allow_methods: &m [GET]\n  - name: b\n  - name: c\n    allow_methods: *m\n",
	"anchor of the rest redefined in an item": "<<: &a {default_policy: p1}\npolicies:\n  - name: p1\n    match: &a {hosts: [a.example]}\n  - name: p2\n  - name: p3\n<<: *a\n",
	"alias to the head":                       "common: &m [GET]\npolicies:\n  - name: a\n    allow_methods: *m\n  - name: b\n  - name: c\n",
	"item line inside a double-quoted scalar": "policies:\n  - name: \"a\n  - name: b\"\n  - name: c\n  - name: d\n",
	"item line inside a single-quoted scalar": "policies:\n  - name: 'a\n  - b'\n  - name: c\n  - name: d\n",
	"item line inside a flow sequence":        "policies:\n  - name: a\n    allowed_origins: [x,\n  - y]\n  - name: c\n  - name: d\n",
	"policies inside a quoted scalar":         "default_policy: \"x\npolicies:\n  - name: a\n  - name: b\n  - name: c\ny\"\n",
	"flow list":                               "policies: [{name: a}, {name: b}, {name: c}]\n",
	"anchored list":                           "policies: &p\n  - name: a\n  - name: b\n  - name: c\n",
	"tabs":                                    "policies:\n\t- name: a\n  - name: b\n  - name: c\n",
	"carriage returns":                        "policies:\r\n  - name: a\r\n  - name: b\r\n  - name: c\r\n",
	"line less indented than the items":       "policies:\n    - name: a\n  - name: b\n    - name: c\n    - name: d\n",
	"two documents":                           "policies:\n  - name: a\n  - name: b\n  - name: c\n---\npolicies: []\n",
	"broken item":                             "policies:\n  - name: a\n  - name: [b\n  - name: c\n",
}

// nodeBoundCases are YAML texts that make nodes of few bytes.
var nodeBoundCases = []string{
	"", "a", "---", "- a", "-\n-\n-\n", "- - - -\n", "[a,a,a]", "[[],[],[]]", "{a,b,c}", "{a: ,b: }",
	"[:,:,:]", "[a: b, c: d]", "[: b]", "{? , ? }", "? \n? \n", "- ? \n- ? \n", "a:\nb:\nc:\n",
	"a: &x [b]\nc: *x\nd: [*x, *x]\n", "[a]: b\n{c}: d\n", "\"a\":b\n", "{\"a\":b,'c':d}", "x: !!str\ny: &a\n",
	": \n: \n", "- :\n- :\n", "[? ]", "[-]", "- -\n", "a: |\n  b\n  c\n", "# c\na: b # d\n",
	"<<: {a: b}\n", "--- a\n--- b\n", "[a, , b]", "{a: [b: c, {d}]}", "? - a\n: - b\n",
	"[,]", "{,}", "[a,]", "{a,}", "a:b", "[a:b]", "- a: b\n  c:\n- d\n",
}

func TestYAMLNodeBound(t *testing.T) {
	inputs := map[string][]byte{}
	for _, c := range nodeBoundCases {
		inputs[c] = []byte(c)
	}
	for name, c := range policyShapes {
		inputs[name] = []byte(c)
	}
	for name, c := range yamlShapes {
		inputs[name] = []byte(c)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[f] = data
	}
	for name, data := range inputs {
		n, _ := yamlNodes(data)
		if b := yamlNodeBound(data); b < n {
			t.Errorf("%q: yamlNodeBound = %d, yaml/v3 builds %d nodes", name, b, n)
		}
	}
	// The largest set measured (docs/performance.md), with headroom.
	data := largeSet(largePolicies)
	if n, b := yamlNodeBound(data), maxYAMLNodes/2+maxYAMLNodes/4; n > b {
		t.Errorf("%d policies: yamlNodeBound = %d, want at most %d, well under MaxYAMLNodes", largePolicies, n, b)
	}
}

// FuzzYAMLNodeBound: yamlNodeBound is never below what yaml/v3 builds.
func FuzzYAMLNodeBound(f *testing.F) {
	for _, c := range nodeBoundCases {
		f.Add([]byte(c))
	}
	for _, c := range policyShapes {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4<<10 {
			return
		}
		if n, _ := yamlNodes(data); yamlNodeBound(data) < n {
			t.Fatalf("yamlNodeBound = %d, yaml/v3 builds %d nodes", yamlNodeBound(data), n)
		}
	})
}

// largePolicies is the size of a large policy file: the 10,000 policies
// docs/performance.md measures (about 1 MB here).
const largePolicies = 10000

// largeSet is a file of n route-bound policies with credentials, as the
// benchmarks of docs/performance.md measure.
func largeSet(n int) []byte {
	var b strings.Builder
	b.WriteString("policies:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: p%d\n    match:\n      routes: [route-%d]\n    allowed_origins: [https://app%d.example.com]\n    allow_credentials: true\n", i, i, i)
	}
	return []byte(b.String())
}

// heapBound is what loading any file may add to the heap: the budget a
// reload has in the shipped pod beside a running server (docs/security.md).
const heapBound = 128 << 20

// loadBounded loads path on another goroutine, sampling the heap meanwhile
// under a memory limit of heapBound above the heap at the start (as
// GOMEMLIMIT does in the pod), and returns the error and the most the heap
// grew by. It fails the test if Load does not return within a minute.
func loadBounded(t *testing.T, path string) (error, uint64) {
	t.Helper()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	old := debug.SetMemoryLimit(int64(base.HeapInuse + heapBound))
	defer debug.SetMemoryLimit(old)
	var peak atomic.Uint64
	done := make(chan error, 1)
	go func() {
		_, err := Load(path)
		done <- err
	}()
	deadline := time.After(time.Minute)
	var m runtime.MemStats
	for {
		select {
		case err := <-done:
			return err, peak.Load()
		case <-deadline:
			t.Fatalf("Load(%s) did not return within a minute", path)
		case <-time.After(time.Millisecond):
			runtime.ReadMemStats(&m)
			if m.HeapInuse > base.HeapInuse && m.HeapInuse-base.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse - base.HeapInuse)
			}
		}
	}
}

// TestHostileFilesBounded: files that expand to far more than they weigh
// (aliases, dense lists) fail with an error naming the bound they cross,
// and loading them stays within heapBound; so does loading the largest
// realistic set, which loads.
func TestHostileFilesBounded(t *testing.T) {
	rep := strings.Repeat
	dir := t.TempDir()
	cases := []struct {
		name, data, want string
	}{
		// 1,000,000 policies by alias from 4 MB.
		{"aliases", "x: &p {name: a, allowed_origins: [https://a.example]}\npolicies: [" + rep("*p, ", 1_000_000) + "]\n",
			"more than the 500000 YAML nodes"},
		// 8,000,000 origins in 16 MB.
		{"flat list", "policies:\n  - name: p\n    allowed_origins: [" + rep("a,", 8_000_000) + "]\n",
			"larger than the 4194304 bytes"},
		{"flat list under the size bound", "policies:\n  - name: p\n    allowed_origins: [" + rep("a,", 2_000_000) + "]\n",
			"more than the 500000 YAML nodes"},
		{"origins by alias", "x-o: &o [" + rep("https://a.example,", 1000) + "]\nx-p: &p {name: a, allowed_origins: *o}\npolicies: [" + rep("*p,", 10000) + "]\n",
			"more than 50000 allowed_origins"},
		{"routes by alias", "x-r: &r [" + rep("r,", 100) + "]\nx-p: &p {name: a, match: {routes: *r}}\npolicies: [" + rep("*p,", 10000) + "]\n",
			"lists have more than 100000 entries"},
		{"policies", "policies: [" + rep("{},", 20001) + "]\n", "more than 20000 policies"},
		// Within the bounds: every policy compiled, each with errors.
		{"policies just under the bound", "policies: [" + rep("{allowed_origins: [a]},", 20000) + "]\n", "a policy needs a name"},
		{"a list just under the node bound", "policies:\n  - name: p\n    allow_headers: [" + rep("cookie,", 99_000) + "]\n    allow_methods: [" + rep("get,", 1_001) + "]\n",
			"lists have more than 100000 entries"},
		{"a mapping just under the node bound", "{" + rep("a,", 240_000) + "}\n", "more than 1000 errors"},
		{"merge keys", mergeBomb(30), "expands to more than 1000000 YAML nodes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(c.data), 0o644); err != nil {
				t.Fatal(err)
			}
			err, peak := loadBounded(t, path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load = %v; want an error containing %q", err, c.want)
			}
			if peak > heapBound {
				t.Errorf("loading it grew the heap by %d MiB, more than %d MiB", peak>>20, heapBound>>20)
			}
			t.Logf("%d bytes: heap grew by %d MiB", len(c.data), peak>>20)
		})
	}
	// Richer policies than the benchmarks': two origins, a host and an
	// exposed header each.
	var rich strings.Builder
	rich.WriteString("policies:\n")
	for i := range largePolicies {
		fmt.Fprintf(&rich, "- name: p%d\n  allowed_origins: [https://a%d.example, https://b%d.example]\n  allow_credentials: true\n  match: {routes: [r%d], hosts: [a%d.example]}\n  expose_headers: [x-a]\n", i, i, i, i, i)
	}
	for name, data := range map[string][]byte{"the largest realistic set": largeSet(largePolicies), "richer policies": []byte(rich.String())} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "large.yaml")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err, peak := loadBounded(t, path); err != nil || peak > heapBound {
				t.Errorf("Load = %v, heap grew by %d MiB; want the set, within %d MiB", err, peak>>20, heapBound>>20)
			}
		})
	}
}

// mergeBomb is a file whose merge keys (<<) expand to 4^levels entries.
func mergeBomb(levels int) string {
	var b strings.Builder
	b.WriteString("x-0: &a0 {preflight_status: 204}\n")
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "x-%d: &a%d {<<: [*a%d, *a%d, *a%d, *a%d]}\n", i, i, i-1, i-1, i-1, i-1)
	}
	fmt.Fprintf(&b, "policies: [{name: a, <<: *a%d}]\n", levels-1)
	return b.String()
}

// TestCapStopsLoading: the first bound crossed stops the load: nothing is
// compiled after it (no compile error is reported), and no later file of a
// directory is decoded.
func TestCapStopsLoading(t *testing.T) {
	old := maxNodes
	maxNodes = 40
	t.Cleanup(func() { maxNodes = old })
	dir := t.TempDir()
	for name, data := range map[string]string{
		// A compile error (preflight_status), in few nodes.
		"a.yaml": "policies:\n  - name: a\n    preflight_status: 201\n    allowed_origins: [https://a.example]\n",
		// Aliases past the node bound.
		"b.yaml": "policies:\n  - name: b\n    match: {hosts: &h [a.example, b.example, c.example, d.example, e.example, f.example, g.example, h.example]}\n  - name: c\n    match: {hosts: *h}\n  - name: d\n    match: {hosts: *h}\n  - name: e\n    match: {hosts: *h}\n",
		// A decoding error.
		"c.yaml": "policies:\n  - name: f\n    unknown_key: 1\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Load(dir)
	var v *policy.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("Load = %v, want a policy.ValidationError", err)
	}
	errs := v.Errors()
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "expands to more than 40 YAML nodes") || filepath.Base(errs[0].File) != "b.yaml" {
		t.Fatalf("errors = %v; want only the bound's, in b.yaml: nothing compiled (preflight_status in a.yaml), nothing of c.yaml decoded", errs)
	}
}

// TestDirectoryEntryCaps: a policy directory with more policy files than
// maxFiles, or more entries of any kind than maxDirEntries, is refused
// while it is listed, naming the cap, before any file is read; at the caps
// it loads. (The caps are lowered here; at their defaults the test would
// create 100,000 files.)
func TestDirectoryEntryCaps(t *testing.T) {
	for _, tc := range []struct {
		name          string
		files, others int
		want          string // "" loads
	}{
		{"at both caps", 5, 15, ""},
		{"past the file cap", 6, 0, "more than 5 policy files"},
		{"past the entry cap", 1, 20, "more than 20 entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldFiles, oldEntries := maxFiles, maxDirEntries
			maxFiles, maxDirEntries = 5, 20
			t.Cleanup(func() { maxFiles, maxDirEntries = oldFiles, oldEntries })
			dir := t.TempDir()
			for i := range tc.files {
				y := fmt.Sprintf("policies:\n  - name: p%d\n    allowed_origins: [\"https://app%d.example.com\"]\n", i, i)
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%d.yaml", i)), []byte(y), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for i := range tc.others {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("notes%d.txt", i)), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			set, err := Load(dir)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if got := len(set.Names()); got != tc.files {
					t.Errorf("loaded %d policies, want %d", got, tc.files)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Load: %v; want an error naming %s and %q", err, dir, tc.want)
			}
			if _, err := Digest(dir); err == nil {
				t.Error("Digest: no error past the cap")
			}
		})
	}
}

// TestFileSizeOneError: a file above MaxFileSize is refused with the same
// message and fix whether Load reads it from disk or Parse is handed it.
func TestFileSizeOneError(t *testing.T) {
	data := []byte("policies: []\n" + strings.Repeat("#", MaxFileSize))
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("file is larger than the %d bytes corsproc reads", MaxFileSize)
	const fix = "split the policy set or shorten it; see docs/policy.md"
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fix) {
		t.Errorf("Load = %v, want %q and %q", err, want, fix)
	}
	_, err := Parse("big.yaml", data)
	var v *policy.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("Parse = %v, want a policy.ValidationError", err)
	}
	if errs := v.Errors(); len(errs) != 1 || errs[0].Message != want || errs[0].Fix != fix {
		t.Errorf("Parse errors = %+v, want %q with fix %q", errs, want, fix)
	}
}
