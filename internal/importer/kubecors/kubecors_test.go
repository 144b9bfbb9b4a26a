package kubecors

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/corsproc/corsproc/internal/importer"
)

func values(ss ...string) []importer.Value {
	out := make([]importer.Value, len(ss))
	for i, s := range ss {
		out[i] = importer.Value{S: s}
	}
	return out
}

// TestExactOrigin checks which exact origins Envoy ever matched: only what
// browsers send. The others are left out with the origin probably meant.
func TestExactOrigin(t *testing.T) {
	for _, tt := range []struct {
		in   string
		kind importer.OriginKind
		ok   bool
		fix  string
	}{
		{"https://app.example.com", importer.OriginExact, true, ""},
		{"http://localhost:3000", importer.OriginExact, true, ""},
		{"null", importer.OriginExact, true, ""},
		{"*", importer.OriginReflect, true, ""},
		{"https://App.example.com", 0, false, `write "https://app.example.com"`},
		{"https://app.example.com/", 0, false, `write "https://app.example.com"`},
		{"https://app.example.com:443", 0, false, `write "https://app.example.com"`},
		{"http://app.example.com:80", 0, false, `write "http://app.example.com"`},
		{"https://*.example.com", 0, false, "remove it"},
		{"app.example.com", 0, false, "remove it"},
	} {
		o, w, ok := ExactOrigin(tt.in, importer.Source{File: "f", Line: 1})
		if ok != tt.ok || ok && o.Kind != tt.kind {
			t.Errorf("%q: ok %t kind %v, want %t %v", tt.in, ok, o.Kind, tt.ok, tt.kind)
		}
		if !ok && (w == nil || !strings.HasPrefix(w.Fix, tt.fix)) {
			t.Errorf("%q: warning %v, want fix %q", tt.in, w, tt.fix)
		}
	}
}

// TestWildcardLists checks "*" in the lists Envoy sends: alone it is
// echoed, so it stays; among other names it is a literal, which browsers
// read as a wildcard only without credentials.
func TestWildcardLists(t *testing.T) {
	src := importer.Source{File: "f", Key: "k"}
	for _, tt := range []struct {
		conv  func([]importer.Value, importer.Source, bool) (importer.List, []importer.Warning)
		in    []string
		creds bool
		want  string
		warns int
	}{
		{Methods, []string{"*"}, true, "*", 0},
		{Methods, []string{"GET", "*"}, true, "GET", 1},
		{Methods, []string{"GET", "*"}, false, "GET,*", 0},
		{Methods, []string{"GET", "GET", "PATCH"}, false, "GET,PATCH", 0},
		{Methods, []string{"GE T"}, false, "", 1},
		{Headers, []string{"*"}, true, "*", 0},
		{Headers, []string{"x-a", "*"}, true, "x-a", 1},
		{Headers, []string{"x-a", "*"}, false, "x-a,*", 1},
		{Headers, []string{"X-A", "x-a"}, false, "X-A", 0},
		{Headers, []string{"access-control-allow-origin"}, false, "", 1},
		{Expose, []string{"*"}, true, "", 1},
		{Expose, []string{"*", "x-id"}, false, "*,x-id", 0},
		{Expose, []string{"Set-Cookie", "x-id"}, false, "x-id", 1},
	} {
		l, ws := tt.conv(values(tt.in...), src, tt.creds)
		if got := strings.Join(l.Strings(), ","); got != tt.want || len(ws) != tt.warns {
			t.Errorf("%q creds %t: %q and %d warnings %v, want %q and %d", tt.in, tt.creds, got, len(ws), ws, tt.want, tt.warns)
		}
		if !l.IsSet() {
			t.Errorf("%q: the list's source is not set, so an empty list would take corsproc's default", tt.in)
		}
	}
}

// TestSetPaths checks the path selection of a route's matches.
func TestSetPaths(t *testing.T) {
	pre := func(v string) Path { return Path{Kind: PathPrefix, Value: v} }
	for _, tt := range []struct {
		paths    []Path
		every    bool
		prefixes string
		regex    string
	}{
		{[]Path{pre("/api/"), pre("/v2"), pre("/api/")}, false, "/api/,/v2", ""},
		{[]Path{pre("/api/"), pre("/")}, false, "", ""},
		{[]Path{pre("/api/")}, true, "", ""},
		{[]Path{pre("/api/"), {Kind: PathExact, Value: "/graphql"}}, false, "", `/api/.*|/graphql`},
		{[]Path{{Kind: PathRegex, Value: "/v[0-9]+/.*"}}, false, "", `(?:/v[0-9]+/.*)`},
		{[]Path{{Kind: PathPrefix, Value: "/Api", IgnoreCase: true}}, false, "", `(?i:/Api.*)`},
	} {
		var m importer.Match
		SetPaths(&m, tt.paths, tt.every)
		if got := strings.Join(m.PathPrefixes.Strings(), ","); got != tt.prefixes || m.URLsRegex.S != tt.regex {
			t.Errorf("%v: prefixes %q regex %q, want %q %q", tt.paths, got, m.URLsRegex.S, tt.prefixes, tt.regex)
		}
	}
}

// TestObjects checks the forms a file of objects comes in, and the lines.
func TestObjects(t *testing.T) {
	objs, warns, err := Objects("f.yaml", []byte(`
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: a, namespace: x, labels: {team: a}}
---
{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "b"}}
---
---
- not an object
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || len(warns) != 1 {
		t.Fatalf("%d objects, warnings %v", len(objs), warns)
	}
	if o := objs[0]; o.ID() != "VirtualService x/a" || o.Group() != "networking.istio.io" || o.Line != 5 || o.Labels["team"] != "a" {
		t.Errorf("%+v", o)
	}
	if o := objs[1]; o.ID() != "HTTPRoute b" || o.NamespaceOr("default") != "default" || o.Line != 9 {
		t.Errorf("%+v", o)
	}
	// A billion laughs: the walker stops reading.
	doc := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 'b'; i <= 'j'; i++ {
		prev := string(i - 1)
		doc += string(i) + ": &" + string(i) + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
	}
	objs, _, err = Objects("laughs.yaml", []byte(doc+"kind: X\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := &Walker{}
	count := 0
	var rec func(depth int, ns []*yaml.Node)
	rec = func(depth int, ns []*yaml.Node) {
		for _, n := range ns {
			count++
			if depth < 12 && !w.Over() {
				rec(depth+1, w.Seq(n))
			}
		}
	}
	rec(0, w.Seq(w.Get(objs[0].Node, "j")))
	if !w.Over() {
		t.Errorf("walked %d nodes of a billion laughs without stopping", count)
	}
}

// FuzzObjects feeds any bytes to Objects and walks what it returns: an
// error, or objects whose fields the walker reads without a panic and
// within its bound.
func FuzzObjects(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [{kind: A, metadata: {name: a, labels: {x: y}}}]\n"))
	f.Add([]byte("a: &a {b: *a}\nkind: X\nspec: *a\n---\n[1]\n---\n"))
	f.Add([]byte(`{"kind": "HTTPRoute", "spec": {"rules": [{"matches": [{"path": {"value": "/"}}]}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, _, err := Objects("f.yaml", data)
		if err != nil {
			return
		}
		w := &Walker{}
		var walk func(n *yaml.Node, depth int)
		walk = func(n *yaml.Node, depth int) {
			if depth > 20 || w.Over() {
				return
			}
			for _, k := range w.Keys(n) {
				walk(w.Get(n, k.Value), depth+1)
			}
			for _, e := range w.Seq(n) {
				walk(e, depth+1)
			}
			w.Str(n)
			w.Bool(n)
			w.Int(n)
		}
		for _, o := range objs {
			o.ID()
			o.Group()
			walk(o.Node, 0)
		}
	})
}
