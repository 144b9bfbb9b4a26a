package configcheck

import "regexp"

// EnvoyGatewayRouteName matches the names Envoy Gateway gives the Envoy
// routes it generates, which corsproc receives as xds.route_name:
// <kind>/<namespace>/<name>/rule/<i>/match/<j>/<host>, one route per rule,
// match and hostname of an HTTPRoute or GRPCRoute. <j> is -1 for a rule
// without matches, <host> is the hostname with its dots written as
// underscores, or `*` when neither the route nor the listener has one, and
// the routes Envoy Gateway's own CORS adds for preflights carry
// /cors-preflight before the host (Envoy Gateway v1.9.1,
// internal/gatewayapi/helpers.go irRouteName; route.go processHTTPRouteRule
// and processHTTPRouteParentRefListener). docs/envoy-gateway.md, "Route
// names", explains why policies select by host and path there instead.
var EnvoyGatewayRouteName = regexp.MustCompile(`^(httproute|grpcroute)/[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?/rule/(-1|[0-9]+)/match/(-1|[0-9]+)(/cors-preflight)?/(\*|[*a-z0-9_-]+)$`)
