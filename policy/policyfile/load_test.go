package policyfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/policy"
)

// loadInOrder is what Load does, one file after another on this goroutine:
// each file decoded on the budget the files before it left, the load
// stopped at the first bound crossed.
func loadInOrder(t *testing.T, path string) (*policy.Set, error) {
	t.Helper()
	sources, digest, err := readSources(path)
	if err != nil {
		t.Fatal(err)
	}
	var b budget
	var files []*decoded
	for _, f := range sources {
		files = append(files, decode(f.name, f.data, &b))
		if files[len(files)-1].capped {
			break
		}
	}
	return policy.Compile(policy.Source{Name: path, Digest: digest, Files: inputs(files, sources)})
}

// TestLoadDirectoryInOrder: a directory whose files are parsed on several
// goroutines loads as its files decoded one after another: the same set,
// or the same diagnostics in the same order, and the same bound crossed in
// the same file when one is (no diagnostic of a later file).
func TestLoadDirectoryInOrder(t *testing.T) {
	files := map[string]string{}
	for name, data := range policyShapes {
		files[name] = data
	}
	for name, data := range yamlShapes {
		files[name] = data
	}
	fixtures, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("fixtures: %v %v", fixtures, err)
	}
	for _, f := range fixtures {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(f)] = string(data)
	}
	valid := func(i int) string {
		return fmt.Sprintf("policies:\n  - name: p%d\n    match: {routes: [r%d]}\n    allowed_origins: [https://a%d.example, https://b%d.example]\n    preflight_max_age: 86400\n", i, i, i, i)
	}
	aliases := "x: &o [https://a.example, https://b.example, https://c.example]\npolicies:\n  - {name: x1, allowed_origins: *o}\n  - {name: x2, allowed_origins: *o}\n  - {name: x3, allowed_origins: *o}\n"
	errs := "policies:\n" + strings.Repeat("  - {name: e, unknown: 1}\n", 4)
	dirs := map[string]map[string]string{
		"valid": {"a.yaml": valid(1), "b.yaml": valid(2), "c.yml": valid(3)},
		"names, routes and defaults across files": {
			"a.yaml": valid(1) + "default_policy: p1\n",
			"b.yaml": valid(1),
			"c.yaml": strings.ReplaceAll(valid(3), "[r3]", "[r1]") + "default_policy: p3\n",
		},
		"a file that is not YAML":       {"a.yaml": valid(1), "b.yaml": "policies: [x", "c.yaml": valid(3)},
		"a bound crossed in the middle": {"a.yaml": valid(1), "b.yaml": aliases, "c.yaml": errs, "d.yaml": "policies: [x"},
		"decoding errors in every file": {"a.yaml": errs, "b.yaml": errs, "c.yaml": errs, "d.yaml": errs},
	}
	// The bounds, lowered so that the directories above cross them, at
	// several points.
	bounds := []struct {
		name string
		v    *int
		at   []int
	}{
		{"maxYAMLNodes", &maxYAMLNodes, []int{30, 60, 90}},
		{"maxNodes", &maxNodes, []int{30, 60, 90}},
		{"maxPolicies", &maxPolicies, []int{1, 2, 4}},
		{"maxOrigins", &maxOrigins, []int{2, 4, 7}},
		{"maxItems", &maxItems, []int{4, 8, 12}},
		{"maxDecodeErrors", &maxDecodeErrors, []int{3, 5, 9}},
	}
	for name, data := range files {
		// Each shape beside a valid file, before and after it.
		dirs["shape "+name] = map[string]string{"a.yaml": valid(1), "b.yaml": data, "c.yaml": valid(3)}
	}
	for name, dir := range dirs {
		path := t.TempDir()
		for file, data := range dir {
			if err := os.WriteFile(filepath.Join(path, file), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(name, func(t *testing.T) {
			checkLoadInOrder(t, path)
			if strings.HasPrefix(name, "shape ") {
				return
			}
			for _, b := range bounds {
				old := *b.v
				for _, at := range b.at {
					*b.v = at
					t.Run(fmt.Sprintf("%s=%d", b.name, at), func(t *testing.T) { checkLoadInOrder(t, path) })
				}
				*b.v = old
			}
		})
	}
}

// checkLoadInOrder fails unless Load(path) gives what loadInOrder does.
func checkLoadInOrder(t *testing.T, path string) {
	t.Helper()
	got, gotErr := Load(path)
	want, wantErr := loadInOrder(t, path)
	var gotV, wantV *policy.ValidationError
	errors.As(gotErr, &gotV)
	errors.As(wantErr, &wantV)
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("Load: %v; file by file: %v", gotErr, wantErr)
	case gotErr != nil && !reflect.DeepEqual(gotV, wantV):
		t.Fatalf("Load:\n%v\nfile by file:\n%v", gotErr, wantErr)
	case gotErr == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("the sets differ:\n%+v\n%+v", got, want)
	}
}

// TestLargeFile: a file of 10,000 policies, the largest set measured,
// loads with every policy answering for its own route and the file's
// warnings kept; broken, it gives every error, in file order.
func TestLargeFile(t *testing.T) {
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
	set, err := Parse("p.yaml", large(false))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(set.Warnings()); n != (largePolicies+96)/97 {
		t.Errorf("%d warnings, want one for each preflight_max_age: 86400", n)
	}
	for i, name := range set.Names() {
		r := policy.Request{Method: "GET", Origin: fmt.Sprintf("https://app%d.example.com", i), Route: fmt.Sprintf("route-%d", i)}
		var d policy.Decision
		set.Decide(&r, &d)
		if d.Policy != name || d.Outcome != policy.OutcomeAllowed {
			t.Fatalf("route-%d: policy %q, %v; want %q allowed", i, d.Policy, d.Outcome, name)
		}
	}

	_, err = Parse("p.yaml", large(true))
	var v *policy.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("Parse = %v, want a policy.ValidationError", err)
	}
	// Each broken policy lists TRACE and writes match twice (a decoding
	// error, so that validation reports its errors only).
	broken := (largePolicies + 210) / 211
	errs := v.Errors()
	if len(errs) != 2*broken {
		t.Fatalf("%d errors, want %d:\n%v", len(errs), 2*broken, err)
	}
	for i, d := range errs {
		want := "TRACE is a forbidden method"
		if i%2 == 1 {
			want = `key "match" is written twice`
		}
		if !strings.Contains(d.Message, want) || i > 0 && d.Line < errs[i-1].Line {
			t.Fatalf("error %d: %v; want %q, in file order:\n%v", i, d, want, err)
		}
	}
}

// TestLoadChanged: a reload reads the files once. Files whose digest is the
// active set's give no set and no error, and are not decoded (a broken file
// with that digest is not reported); other files load as Load loads them,
// a broken set coming with its digest, unreadable files with none.
func TestLoadChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	good := "policies:\n  - name: a\n    allowed_origins: [https://a.example]\n"
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	s, digest, err := LoadChanged(path, "")
	if err != nil || s == nil || digest != s.Digest() {
		t.Fatalf("LoadChanged = %v, %q, %v; want the set and its digest", s, digest, err)
	}
	if s, d, err := LoadChanged(path, digest); s != nil || d != digest || err != nil {
		t.Errorf("unchanged: LoadChanged = %v, %q, %v; want nil, %q, nil", s, d, err, digest)
	}
	if err := os.WriteFile(path, []byte("policies: [{name: a, unknown_key: 1}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad, err := Digest(path)
	if err != nil {
		t.Fatal(err)
	}
	if s, d, err := LoadChanged(path, bad); s != nil || d != bad || err != nil {
		t.Errorf("broken but active: LoadChanged = %v, %q, %v; want nil, %q, nil (not decoded)", s, d, err, bad)
	}
	if s, d, err := LoadChanged(path, digest); s != nil || d != bad || err == nil {
		t.Errorf("broken: LoadChanged = %v, %q, %v; want nil, %q and the error", s, d, err, bad)
	}
	if s, d, err := LoadChanged(filepath.Join(t.TempDir(), "missing.yaml"), digest); s != nil || d != "" || err == nil {
		t.Errorf("missing: LoadChanged = %v, %q, %v; want nil, \"\" and the error", s, d, err)
	}
}
