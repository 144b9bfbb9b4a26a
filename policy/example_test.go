package policy_test

import (
	"fmt"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

func Example() {
	set, err := policyfile.Parse("policy.yaml", []byte(`
default_policy: web
policies:
  - name: web
    allowed_origins: [https://app.example.com]
    allow_credentials: true
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	var d policy.Decision
	set.Decide(&policy.Request{
		Method: "OPTIONS",
		Origin: "https://app.example.com",
		ACRM:   "PUT",
		ACRH:   []string{"content-type"},
	}, &d)
	fmt.Println(d.Policy, d.Outcome, d.Status)
	for _, h := range d.Headers() {
		fmt.Printf("%s: %s\n", h.Name, h.Value)
	}
	// Output:
	// web preflight_allowed 204
	// access-control-allow-origin: https://app.example.com
	// access-control-allow-credentials: true
	// access-control-allow-methods: DELETE, GET, OPTIONS, PATCH, POST, PUT
	// access-control-allow-headers: accept, authorization, content-type, user-agent, x-csrftoken, x-requested-with
	// access-control-max-age: 86400
	// vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers
}

func ExampleParse_error() {
	_, err := policyfile.Parse("policy.yaml", []byte(`
policies:
  - name: web
    allowed_origins: [https://app.example.com/]
    allow_all_origins: true
    allow_credentials: true
`))
	fmt.Println(err)
	// Output:
	// invalid policy file: 2 errors
	//   policy.yaml:4:23: error: policies[0].allowed_origins[0]: "https://app.example.com/" has a trailing slash; an origin is scheme://host[:port]; fix: write "https://app.example.com": browsers send the origin without it
	//   policy.yaml:5:24: error: policies[0].allow_all_origins: allow_all_origins with allow_credentials would let every site read a logged-in user's responses; fix: list the origins in allowed_origins, or set allow_credentials: false
	//   policy.yaml:5:24: warning: policies[0].allow_all_origins: allowed_origins and allowed_origin_regexes have no effect when allow_all_origins is true; fix: remove allowed_origins and allowed_origin_regexes, or set allow_all_origins: false
}
