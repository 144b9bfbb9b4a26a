package configcheck_test

import (
	"fmt"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/corsproc/corsproc/envoy/configcheck"
)

const goodFilter = `
name: envoy.filters.http.ext_proc
typed_config:
  "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
  grpc_service: {envoy_grpc: {cluster_name: corsproc}}
  processing_mode: {request_header_mode: SEND, response_header_mode: SEND, request_body_mode: NONE,
    response_body_mode: NONE, request_trailer_mode: SKIP, response_trailer_mode: SKIP}
  allow_mode_override: true
  request_attributes: [xds.route_name]
  message_timeout: 0.1s
  failure_mode_allow: true
`

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"good", goodFilter, ""},
		{"unknown field", strings.Replace(goodFilter, "allow_mode_override", "allow_mode_overide", 1), "allow_mode_overide"},
		{"unknown type", strings.Replace(goodFilter, "v3.ExternalProcessor", "v3.ExternalProcesor", 1), "ExternalProcesor"},
		{"rule inside typed_config", strings.Replace(goodFilter, "cluster_name: corsproc", "cluster_name: ''", 1), "ClusterName"},
		{"non-string key", goodFilter + "  1: x\n", "mapping key 1"},
		{"ext_proc setting", strings.Replace(goodFilter, "failure_mode_allow: true", "failure_mode_allow: false", 1), "failure_mode_allow must be true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := new(hcmv3.HttpFilter)
			err := configcheck.UnmarshalYAML([]byte(c.yaml), f)
			if err == nil {
				_, err = configcheck.ValidateTree(f)
			}
			if err == nil {
				ep := new(extprocfilterv3.ExternalProcessor)
				if uerr := f.GetTypedConfig().UnmarshalTo(ep); uerr != nil {
					t.Fatal(uerr)
				}
				if errs := configcheck.ExternalProcessorErrors(ep); len(errs) > 0 {
					err = errs[0]
				}
			}
			switch {
			case c.want == "" && err != nil:
				t.Errorf("want no error, got %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("want an error containing %q, got %v", c.want, err)
			}
		})
	}
	if errs := configcheck.ExternalProcessorErrors(&extprocfilterv3.ExternalProcessor{}); len(errs) != 6 {
		t.Errorf("an empty ext_proc config breaks every rule but observability_mode; got %d errors: %v", len(errs), errs)
	}
}

// A route whose x-corsproc-policy names no policy of the set (a typo, a
// renamed policy) or gives several values is reported: corsproc would allow
// no CORS there.
func TestUnknownPolicyErrors(t *testing.T) {
	const route = `
name: api
match: {prefix: /api/}
route: {cluster: app}
typed_per_filter_config:
  envoy.filters.http.ext_proc:
    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
    overrides:
      grpc_initial_metadata:
        - {key: x-other, value: x}
        - {key: x-corsproc-policy, value: %s}
`
	for _, c := range []struct {
		name, value, want string
	}{
		{"known", "public-api", ""},
		{"unknown", "public_api", `x-corsproc-policy "public_api" names no policy of the set (public-api, admin)`},
		{"several", "public-api}\n        - {key: x-corsproc-policy, value: admin", "given 2 times"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := new(routev3.Route)
			if err := configcheck.UnmarshalYAML([]byte(fmt.Sprintf(route, c.value)), r); err != nil {
				t.Fatal(err)
			}
			nodes, err := configcheck.ValidateTree(r)
			if err != nil {
				t.Fatal(err)
			}
			bindings := configcheck.PolicyBindings(nodes)
			if len(bindings) != 1 || !strings.Contains(bindings[0].Path, "typed_per_filter_config") {
				t.Fatalf("bindings %+v, want the route's one", bindings)
			}
			errs := configcheck.UnknownPolicyErrors(bindings, []string{"public-api", "admin"})
			switch {
			case c.want == "" && len(errs) > 0:
				t.Errorf("want no error, got %v", errs)
			case c.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want)):
				t.Errorf("want one error containing %q, got %v", c.want, errs)
			}
		})
	}
}
