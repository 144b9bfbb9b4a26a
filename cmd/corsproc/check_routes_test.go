package main

import "testing"

// TestCheckRouteNames: with --route-names envoy-gateway, check warns about
// each match.routes entry Envoy Gateway cannot give a route (the policy
// would never be selected by it there), and --strict fails on it.
func TestCheckRouteNames(t *testing.T) {
	dir := t.TempDir()
	file := writePolicy(t, dir, "routes.yaml", "policies:\n"+
		"  - name: web\n    match:\n      routes: [storefront, httproute/default/backend/rule/0/match/0/www_example_com]\n    allowed_origins: [https://app.example.com]\n"+
		"  - name: api\n    match:\n      routes: [httproute/default/api/rule/0/match/0/api.example.com]\n    allowed_origins: [https://app.example.com]\n")
	for _, c := range []struct {
		name string
		args []string
		exit int
		want []string
		not  []string
	}{
		{"no platform", []string{"check", file}, 0, []string{file + ": valid: 2 policies, 0 warnings"}, nil},
		{"envoy-gateway", []string{"check", "--route-names", "envoy-gateway", file}, 0, []string{
			file + `: warning: policies[0].match.routes[0]: "storefront" is no Envoy Gateway route name`,
			file + `: warning: policies[1].match.routes[0]: "httproute/default/api/rule/0/match/0/api.example.com" is no Envoy Gateway route name`,
			`fix: select by match.hosts and match.path_prefixes`,
			file + ": valid: 2 policies, 2 warnings"}, []string{"www_example_com"}},
		{"envoy-gateway, strict", []string{"check", "--strict", "--route-names", "envoy-gateway", file}, 1, []string{file + ": 2 warnings (--strict)"}, nil},
		{"unknown platform", []string{"check", "--route-names", "istio", file}, 2, []string{}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := runCheckCase(t, c.args, c.exit, c.want)
			// not: valid route names, which must not be warned about.
			wantNoCheckOutput(t, out, c.not...)
		})
	}
}
