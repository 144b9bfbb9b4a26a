// Package processor is corsproc's Envoy External Processing service.
//
// Envoy opens one ext_proc stream per HTTP request; Process serves it. On
// request_headers it extracts the few facts CORS needs into a policy.Request,
// asks the policy set for a decision, and answers either with an immediate
// response (preflights) or with CONTINUE. On response_headers it applies the
// stored decision's header mutation. On a stream whose Envoy config declares
// single-message mode (x-corsproc-response-headers: dynamic-metadata) it
// answers everything on request_headers, the response headers' values in
// dynamic metadata for Envoy's header_mutation filter, and ends the stream
// (docs/envoy.md, "Single-message mode"). Every message gets exactly one response
// of the matching type: a missing response stalls the HTTP request until
// Envoy's message_timeout (504), a wrong one fails it (500).
//
// What is decided is package policy's job (docs/semantics.md); this package
// owns the ext_proc side of it (docs/extproc-protocol.md). Sections to
// files:
//
//   - semantics §2 (stream metadata and route name), §4 to §7 (the
//     request and response phases): server.go; extract.go fills the
//     policy.Request from Envoy's request headers; render.go writes
//     decisions as Envoy responses (immediate responses, header mutations,
//     mode_override).
//   - semantics §8 (shadow mode, recording): metrics.go, loglimit.go.
//   - semantics §10 and the gRPC server's bounds (docs/security.md):
//     bounds.go, idle.go, grpcoptions.go; codec.go decodes the header
//     messages without reflection, and scan.go reads request headers on
//     the wire without building them.
//   - extproc-protocol "Streams" and "One answer per message": server.go;
//     "Headers Envoy sends": extract.go; "Header mutations", "Immediate
//     responses", "Processing mode" and "Dynamic metadata": render.go;
//     "Identifying the route and the policy": server.go (captureRoute,
//     Process).
package processor
