package configcheck_test

import (
	"testing"

	"github.com/corsproc/corsproc/envoy/configcheck"
)

// TestEnvoyGatewayRouteName holds the form to names Envoy Gateway v1.9.1's
// egctl x translate printed for an HTTPRoute, and refuses names it cannot
// generate: envoy/envoy.yaml's, and the host with its dots kept.
func TestEnvoyGatewayRouteName(t *testing.T) {
	for _, name := range []string{
		"httproute/default/backend/rule/0/match/0/www_example_com",
		"httproute/default/backend/rule/0/match/1/www_example_com",
		"httproute/shop/api.v2/rule/3/match/-1/*",
		"httproute/shop/web/rule/1/match/0/*_example_com",
		"httproute/shop/web/rule/0/match/0/cors-preflight/app_example_com",
		"grpcroute/default/echo/rule/0/match/0/*",
	} {
		if !configcheck.EnvoyGatewayRouteName.MatchString(name) {
			t.Errorf("%q is an Envoy Gateway route name, but does not match", name)
		}
	}
	for _, name := range []string{
		"storefront",
		"httproute/default/backend/rule/0/match/0/www.example.com",
		"httproute/default/backend/rule/0/match/0",
		"httproute/default/backend/0/0/www_example_com",
		"HTTPRoute/default/backend/rule/0/match/0/*",
	} {
		if configcheck.EnvoyGatewayRouteName.MatchString(name) {
			t.Errorf("%q matches, but Envoy Gateway never generates it", name)
		}
	}
}
