package configcheck_test

import (
	"os"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"

	"github.com/corsproc/corsproc/envoy/configcheck"

	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/matcher/action/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// shippedSingleMessage returns the ext_proc and header_mutation filters of
// envoy/envoy-single-message.yaml, with edit applied to its text first.
func shippedSingleMessage(t *testing.T, edit func(string) string) (*extprocfilterv3.ExternalProcessor, *headermutationv3.HeaderMutation) {
	t.Helper()
	data, err := os.ReadFile("../envoy-single-message.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var bs bootstrapv3.Bootstrap
	if err := configcheck.UnmarshalYAML([]byte(edit(string(data))), &bs); err != nil {
		t.Fatal(err)
	}
	nodes, err := configcheck.Walk(&bs)
	if err != nil {
		t.Fatal(err)
	}
	ep, hm := configcheck.SingleMessageFilters(nodes)
	if ep == nil {
		t.Fatal("no ExternalProcessor")
	}
	return ep, hm
}

// SingleMessageErrors accepts the shipped config and refuses each way of
// getting the single-message wiring wrong that loses or doubles CORS
// headers.
func TestSingleMessageErrors(t *testing.T) {
	if errs := configcheck.SingleMessageErrors(shippedSingleMessage(t, func(s string) string { return s })); len(errs) > 0 {
		t.Fatalf("the shipped config: %v", errs)
	}
	cases := []struct{ name, old, new, want string }{
		{"no declaration", "- {key: x-corsproc-response-headers, value: dynamic-metadata}", "- {key: x-other, value: dynamic-metadata}", "initial_metadata"},
		{"wrong value", "value: dynamic-metadata}", "value: dynamic_metadata}", "initial_metadata"},
		{"namespace typo", "untyped: [corsproc]", "untyped: [cors-proc]", "receiving_namespaces"},
		{"no mode override", "allow_mode_override: true\n                          request_attributes", "allow_mode_override: false\n                          request_attributes", "allow_mode_override"},
		{"a removal missing", "                          - remove: access-control-max-age\n", "", "does not remove access-control-max-age"},
		{"wrong key", "corsproc:acao)", "corsproc:acac)", "access-control-allow-origin"},
		{"vary replaced", "value: \"%DYNAMIC_METADATA(corsproc:vary)%\"}\n                              append_action: APPEND_IF_EXISTS_OR_ADD", "value: \"%DYNAMIC_METADATA(corsproc:vary)%\"}\n                              append_action: OVERWRITE_IF_EXISTS_OR_ADD", "append_action"},
		{"keep empty", "value: \"%DYNAMIC_METADATA(corsproc:acah)%\"}\n", "value: \"%DYNAMIC_METADATA(corsproc:acah)%\"}\n                              keep_empty_value: true\n", "keep_empty_value"},
		{"removal after writing", "                          - remove: access-control-allow-origin\n", "", "does not remove access-control-allow-origin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ep, hm := shippedSingleMessage(t, func(s string) string {
				if !strings.Contains(s, c.old) {
					t.Fatalf("the shipped config has no %q", c.old)
				}
				return strings.Replace(s, c.old, c.new, 1)
			})
			errs := configcheck.SingleMessageErrors(ep, hm)
			found := false
			for _, err := range errs {
				found = found || strings.Contains(err.Error(), c.want)
			}
			if !found {
				t.Errorf("errors %v, want one about %q", errs, c.want)
			}
		})
	}
	ep, _ := shippedSingleMessage(t, func(s string) string { return s })
	if errs := configcheck.SingleMessageErrors(ep, nil); len(errs) == 0 {
		t.Error("no header_mutation filter: no error")
	}
}
