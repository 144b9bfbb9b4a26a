package policyfile

import (
	"testing"

	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"
)

// covers is what makes a later policy unreachable: only when the earlier
// match holds for every request the later one selects.
func TestCovers(t *testing.T) {
	t.Parallel()
	m := func(hosts, prefixes []string, re string) *corsprocv1.Match {
		return &corsprocv1.Match{Hosts: hosts, PathPrefixes: prefixes, UrlsRegex: re}
	}
	for _, c := range []struct {
		name        string
		early, late *corsprocv1.Match
		want        bool
	}{
		{"same host", m([]string{"api.example.com"}, nil, ""), m([]string{"API.example.com"}, nil, ""), true},
		{"wildcard over host", m([]string{"*.example.com"}, nil, ""), m([]string{"a.b.example.com"}, nil, ""), true},
		{"wildcard not over its apex", m([]string{"*.example.com"}, nil, ""), m([]string{"example.com"}, nil, ""), false},
		{"wildcard over narrower wildcard", m([]string{"*.example.com"}, nil, ""), m([]string{"*.api.example.com"}, nil, ""), true},
		{"narrower wildcard not over wider", m([]string{"*.api.example.com"}, nil, ""), m([]string{"*.example.com"}, nil, ""), false},
		{"one host of two", m([]string{"a.example.com"}, nil, ""), m([]string{"a.example.com", "b.example.com"}, nil, ""), false},
		{"hosts, late has none", m([]string{"a.example.com"}, nil, ""), m(nil, []string{"/v1/"}, ""), false},
		{"no hosts, any host", m(nil, []string{"/"}, ""), m([]string{"a.example.com"}, []string{"/v1/"}, ""), true},
		{"prefix over longer prefix", m(nil, []string{"/api"}, ""), m(nil, []string{"/api/v1", "/apiary"}, ""), true},
		{"prefix not over other", m(nil, []string{"/api/"}, ""), m(nil, []string{"/v1/"}, ""), false},
		{"regex differs", m(nil, nil, "/a.*"), m(nil, nil, "/b.*"), false},
		{"same regex", m(nil, []string{"/"}, "/a.*"), m(nil, []string{"/a"}, "/a.*"), true},
	} {
		if got := covers(c.early, c.late); got != c.want {
			t.Errorf("%s: covers = %v, want %v", c.name, got, c.want)
		}
	}
}
