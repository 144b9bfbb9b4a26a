package importer

import (
	"strings"
	"testing"

	"github.com/corsproc/corsproc/policy"
)

func src(file string, line int, key string) Source { return Source{File: file, Line: line, Key: key} }

func exactPolicy(name, file string, line int, host string, origins ...string) *Policy {
	p := &Policy{Name: name, Src: src(file, line, "server")}
	p.Match.Hosts.Add(Value{host, src(file, line, "server_name")})
	for _, o := range origins {
		p.Origins = append(p.Origins, Origin{Kind: OriginExact, Value: o, Src: src(file, line+1, "add_header Access-Control-Allow-Origin")})
	}
	return p
}

func decide(t *testing.T, res *Result, req *policy.Request) policy.Decision {
	t.Helper()
	if res.Set == nil {
		t.Fatalf("the generated policy does not load: %v\n%s", res.LoadError, res.YAML)
	}
	var d policy.Decision
	res.Set.Decide(req, &d)
	return d
}

// TestConflictKeepsBothRuleSets checks that two sources defining different
// CORS rules for one host give two policies and a conflict, never one rule
// set picked silently, and that identical definitions become one policy.
func TestConflictKeepsBothRuleSets(t *testing.T) {
	rs := &RuleSet{Source: "test", Files: []string{"a.conf", "b.conf"}, DefaultPolicy: -1, Policies: []*Policy{
		exactPolicy("api", "a.conf", 3, "api.example.com", "https://app.example.com"),
		exactPolicy("api", "b.conf", 7, "api.example.com", "https://admin.example.com"),
		exactPolicy("www", "a.conf", 20, "www.example.com", "https://app.example.com"),
		exactPolicy("www", "b.conf", 30, "WWW.example.com", "https://app.example.com"),
	}}
	res, err := Build(rs)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Policies, " "); got != "api api-2 www" {
		t.Errorf("policies %q, want api api-2 www\n%s", got, res.YAML)
	}
	var conflicts, merged int
	for _, w := range res.Warnings {
		switch {
		case w.Code == CodeConflict:
			conflicts++
			if w.File != "b.conf" || w.Line != 7 || !w.Unsafe || !strings.Contains(w.Message, "a.conf:3") {
				t.Errorf("conflict warning: %+v", w)
			}
		case strings.Contains(w.Message, "same rules"):
			merged++
		}
	}
	if conflicts != 1 || merged != 1 || !res.Incomplete() {
		t.Errorf("%d conflicts, %d merges, incomplete %t; want 1, 1, true: %v", conflicts, merged, res.Incomplete(), res.Warnings)
	}
	// The first definition keeps the host; the second is selected by name.
	d := decide(t, res, &policy.Request{Method: "GET", Host: "api.example.com", Path: "/", Origin: "https://app.example.com"})
	if d.Outcome != policy.OutcomeAllowed || d.Policy != "api" {
		t.Errorf("api.example.com: %v %v by %q", d.Outcome, d.Reason, d.Policy)
	}
	d = decide(t, res, &policy.Request{Method: "GET", Host: "api.example.com", Path: "/", Origin: "https://admin.example.com", PolicyName: "api-2"})
	if d.Outcome != policy.OutcomeAllowed {
		t.Errorf("api-2 by name: %v %v", d.Outcome, d.Reason)
	}
	if !strings.Contains(string(res.YAML), "# conflicts with a.conf:3 for host api.example.com") ||
		!strings.Contains(string(res.YAML), "# also defined at b.conf:30") {
		t.Errorf("notes missing:\n%s", res.YAML)
	}
}

// TestOriginForms checks that a prefix match is written as the regex
// matching the same origins and that corsproc's own checks judge it: with
// credentials an unanchored prefix is refused as unsafe at its source
// line, and a reflected origin with credentials too.
func TestOriginForms(t *testing.T) {
	p := &Policy{Name: "r", Src: src("envoy.yaml", 0, "route r")}
	p.Match.Routes.Add(Value{"r", src("envoy.yaml", 0, "route r")})
	p.Origins = []Origin{
		{Kind: OriginPrefix, Value: "https://app.example.com", Src: src("envoy.yaml", 0, "allow_origin_string_match[0].prefix")},
		{Kind: OriginExact, Value: "HTTPS://Admin.Example.com", IgnoreCase: true, Src: src("envoy.yaml", 0, "allow_origin_string_match[1].exact")},
	}
	p.Credentials = Bool{true, src("envoy.yaml", 0, "allow_credentials")}
	p.Vary, p.VarySrc = VaryMissing, src("envoy.yaml", 0, "cors")
	res, err := Build(&RuleSet{Source: "envoy", Files: []string{"envoy.yaml"}, DefaultPolicy: -1, Policies: []*Policy{p}})
	if err != nil {
		t.Fatal(err)
	}
	y := string(res.YAML)
	for _, want := range []string{
		"allowed_origin_regexes:  # allow_origin_string_match[0].prefix, envoy.yaml\n      - 'https://app\\.example\\.com.*'\n",
		`allowed_origins:  # allow_origin_string_match[0].prefix, envoy.yaml`,
		`- https://admin.example.com  # allow_origin_string_match[1].exact, envoy.yaml`,
		`allow_credentials: true  # allow_credentials, envoy.yaml`,
	} {
		if !strings.Contains(y, want) {
			t.Errorf("YAML lacks %q:\n%s", want, y)
		}
	}
	codes := map[Code]int{}
	for _, w := range res.Warnings {
		codes[w.Code]++
		if w.Code == CodeUnsafeOrigin && (w.Setting != "allow_origin_string_match[0].prefix" || !w.Error) {
			t.Errorf("unsafe origin at %q: %+v", w.Setting, w)
		}
	}
	if codes[CodeUnsafeOrigin] != 1 || codes[CodeMissingVary] != 1 || codes[CodeDifference] != 1 || res.LoadError == nil || !res.Unsafe() {
		t.Errorf("codes %v, load error %v; want one unsafe_origin, missing_vary and difference:\n%v", codes, res.LoadError, res.Warnings)
	}

	r := &Policy{Name: "reflect", Src: src("nginx.conf", 4, "location /")}
	r.Origins = []Origin{{Kind: OriginReflect, Value: "$http_origin", Src: src("nginx.conf", 5, "add_header Access-Control-Allow-Origin")}}
	r.Credentials = Bool{true, src("nginx.conf", 6, "add_header Access-Control-Allow-Credentials")}
	res, err = Build(&RuleSet{Source: "nginx", Files: []string{"nginx.conf"}, DefaultPolicy: 0, Policies: []*Policy{r}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range res.Warnings {
		if w.Code == CodeUnsafeOrigin && w.Line == 5 && w.Unsafe {
			found = true
		}
	}
	if !found || res.DefaultPolicy != "reflect" {
		t.Errorf("reflected origin with credentials: default %q, warnings %v\n%s", res.DefaultPolicy, res.Warnings, res.YAML)
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"api.example.com /v1/":  "api.example.com-v1",
		"Default/VS name":       "default-vs-name",
		"***":                   "",
		strings.Repeat("a", 80): strings.Repeat("a", 63),
	} {
		if got := sanitizeName(in); got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConflictEveryHost checks that a second policy for every host (two
// "*" virtual hosts, two http blocks) is a conflict with the
// default_policy, not a policy left unselected in silence.
func TestConflictEveryHost(t *testing.T) {
	all := func(file, origin string) *Policy {
		return &Policy{Name: "all", Src: src(file, 1, "virtual host"), Origins: []Origin{{Kind: OriginExact, Value: origin, Src: src(file, 2, "exact")}}}
	}
	res, err := Build(&RuleSet{Source: "test", DefaultPolicy: 0, Policies: []*Policy{
		all("a.yaml", "https://a.example"), all("b.yaml", "https://b.example"), all("c.yaml", "https://a.example"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var conflicts, merged int
	for _, w := range res.Warnings {
		switch {
		case w.Code == CodeConflict && w.File == "b.yaml":
			conflicts++
		case strings.Contains(w.Message, "same rules") && w.File == "c.yaml":
			merged++
		}
	}
	if conflicts != 1 || merged != 1 || res.DefaultPolicy != "all" || len(res.Policies) != 2 || !res.Incomplete() {
		t.Errorf("conflicts %d, merged %d, default %q, policies %q\n%v", conflicts, merged, res.DefaultPolicy, res.Policies, res.Warnings)
	}
}
