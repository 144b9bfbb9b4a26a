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

// MetadataResponseHeaders is the gRPC initial metadata key through which the
// Envoy config declares how corsproc returns the CORS headers of a
// response (docs/envoy.md, "Single-message mode"): the filter's
// grpc_service.initial_metadata (or a route's
// ExtProcPerRoute.overrides.grpc_initial_metadata) sends it on every
// stream. Its known values are ResponseHeadersDynamicMetadata and
// ResponseHeadersResponsePhase; absent, or any other value, is the
// response phase.
const MetadataResponseHeaders = "x-corsproc-response-headers"

// Values of MetadataResponseHeaders.
const (
	// ResponseHeadersDynamicMetadata: corsproc answers every request in the
	// request phase, with the response headers' values in the dynamic
	// metadata namespace DynamicMetadataNamespace, and Envoy's
	// header_mutation filter writes them (one ext_proc message per
	// request).
	ResponseHeadersDynamicMetadata = "dynamic-metadata"
	// ResponseHeadersResponsePhase: corsproc writes the response headers
	// in ext_proc's response phase (two messages per actual request), as
	// when the key is absent. A route sets it to opt out of a filter-level
	// dynamic-metadata declaration: Envoy merges per-route initial
	// metadata by key and cannot remove one.
	ResponseHeadersResponsePhase = "response-phase"
)

// DynamicMetadataNamespace is the dynamic metadata namespace corsproc writes
// the response headers' values into, in single-message mode: the ext_proc
// filter must list it in metadata_options.receiving_namespaces.untyped, and
// the header_mutation filter reads it with %DYNAMIC_METADATA(corsproc:KEY)%.
const DynamicMetadataNamespace = "corsproc"

// The keys of DynamicMetadataNamespace, one per response header corsproc
// writes. A key is absent when its header must be absent; every value is a
// string.
const (
	KeyACAO   = "acao"   // Access-Control-Allow-Origin
	KeyACAC   = "acac"   // Access-Control-Allow-Credentials
	KeyACEH   = "aceh"   // Access-Control-Expose-Headers
	KeyACAM   = "acam"   // Access-Control-Allow-Methods (preflights)
	KeyACAH   = "acah"   // Access-Control-Allow-Headers (preflights)
	KeyACMA   = "acma"   // Access-Control-Max-Age (preflights)
	KeyACAPN  = "acapn"  // Access-Control-Allow-Private-Network (preflights)
	KeyVary   = "vary"   // Vary, appended (actual and non-CORS requests only)
	KeyReason = "reason" // X-Corsproc-Reason, with --explain-refusals
)
