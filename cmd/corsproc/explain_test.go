package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

const explainPolicy = `
default_policy: web
policies:
  - name: web
    allowed_origins: [https://app.example.com]
    expose_headers: [x-request-id]
  - name: shop
    match: {routes: [storefront]}
    allowed_origins: [https://shop.example.com]
    allow_credentials: true
`

func TestExplain(t *testing.T) {
	path := writePolicy(t, t.TempDir(), "policy.yaml", explainPolicy)
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"preflight refused on a header", []string{"--preflight", "--origin", "https://app.example.com", "--method", "PUT", "--request-headers", "content-type, x-trace", "--host", "api.example.com", "--path", "/v1/items"}, []string{
			"Request:  OPTIONS api.example.com/v1/items from origin https://app.example.com (preflight for PUT with content-type, x-trace)",
			"Policy:   web (selected by default: no policy's match selects the request; it is the default_policy)",
			"Outcome:  preflight_rejected (header_not_allowed)",
			`1. origin           PASS           "https://app.example.com" is allowed by allowed_origins[0] "https://app.example.com"`,
			`2. method           PASS           "PUT" is in allow_methods`,
			`3. headers          FAIL           "x-trace" is not in allow_headers [accept, authorization, content-type, user-agent, x-csrftoken, x-requested-with]`,
			"4. private_network  NOT EVALUATED  an earlier check failed",
			"Response: corsproc answers 403 itself; the upstream never sees the request",
			"Access to fetch at 'https://api.example.com/v1/items' from origin 'https://app.example.com' has been blocked by CORS policy: Response to preflight request doesn't pass access control check: No 'Access-Control-Allow-Origin' header is present on the requested resource.",
			`Fix: add "x-trace" to allow_headers of policy "web" (` + path + ")",
		}},
		{"allowed actual request by route", []string{"--origin", "https://shop.example.com", "--route", "storefront", "--credentials"}, []string{
			`Policy:   shop (selected by route: route "storefront" is in policies[1].match.routes of ` + path + ")",
			"Outcome:  allowed",
			"remove  access-control-allow-origin",
			"set     access-control-allow-origin: https://shop.example.com",
			"set     access-control-allow-credentials: true",
			"append  vary: Origin",
			"The browser lets the page read the response.",
		}},
		{"credentials without allow_credentials", []string{"--origin", "https://app.example.com", "--credentials"}, []string{
			"credentials      FAIL",
			"The value of the 'Access-Control-Allow-Credentials' header in the response is '' which must be 'true'",
			`Fix: set allow_credentials: true in policy "web"`,
		}},
		{"no origin", []string{"--host", "api.example.com"}, []string{"(not a CORS request: no Origin)", "Outcome:  non_cors", "append  vary: Origin"}},
		// A name the set does not define: corsproc governs and refuses.
		{"unknown policy, preflight", []string{"--preflight", "--metadata-policy", "shopp", "--origin", "https://shop.example.com", "--method", "PUT", "--route", "storefront"}, []string{
			`Policy:   unknown: the stream metadata x-corsproc-policy names "shopp", which the policy set does not define: an unknown policy governs and allows nothing`,
			"Outcome:  preflight_rejected (unknown_policy)",
			`1. policy           FAIL`,
			"Response: corsproc answers 403 itself; the upstream never sees the request",
			"Fix: define the policy the Envoy route names in x-corsproc-policy, or correct the route's grpc_initial_metadata",
		}},
		{"unknown policy, actual request", []string{"--metadata-policy", "shopp", "--origin", "https://shop.example.com"}, []string{
			"Outcome:  disallowed_origin (unknown_policy)",
			"Response: the upstream's response, with its CORS headers removed: the unknown policy allows nothing",
			"remove  access-control-allow-origin",
			"append  vary: Origin",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout bytes.Buffer
			args := append([]string{"explain", "--policy", path}, c.args...)
			if err := Run(t.Context(), args, &stdout, io.Discard); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, stdout.String())
				}
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		var stdout bytes.Buffer
		err := Run(t.Context(), []string{"explain", "--policy", path, "--format", "json", "--origin", "https://evil.example"}, &stdout, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
			t.Fatal(err)
		}
		if raw["policy"] != "web" || raw["outcome"] != "disallowed_origin" || raw["reason"] != "origin_not_allowed" ||
			!strings.Contains(raw["fix"].(string), `add "https://evil.example" to allowed_origins`) || raw["policy_source"] != path {
			t.Errorf("json: %s", stdout.String())
		}
	})

	t.Run("development policy by default", func(t *testing.T) {
		var stdout bytes.Buffer
		if err := Run(t.Context(), []string{"explain", "--origin", "http://localhost:3000"}, &stdout, io.Discard); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout.String(), "Policies: embedded development policy") || !strings.Contains(stdout.String(), "Outcome:  allowed") {
			t.Errorf("output:\n%s", stdout.String())
		}
	})
}
