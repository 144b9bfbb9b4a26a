// Package extproc holds the names of Envoy's ext_proc protocol that
// corsproc's processor, the Envoy emulator and the Envoy config checks must
// spell alike, defined once here (docs/extproc-protocol.md).
//
// They live in a package of their own, which imports nothing, rather than
// in processor: envoy/configcheck is also imported by the k8s module, and
// importing processor there would bring the gRPC server and its
// dependencies into that module for one string.
package extproc

// AttributeRoute is the request attribute corsproc selects policies by: the
// name of the Envoy route the request matched. Envoy sends it when the
// filter's request_attributes lists it.
const AttributeRoute = "xds.route_name"

// MetadataPolicy is the gRPC initial metadata key through which a route
// names the corsproc policy that governs it: Envoy sends the route's
// ExtProcPerRoute.overrides.grpc_initial_metadata as the stream's initial
// metadata (docs/extproc-protocol.md).
const MetadataPolicy = "x-corsproc-policy"
