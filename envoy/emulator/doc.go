// Package emulator is a faithful emulator of Envoy's External Processing
// (ext_proc) HTTP filter, the client side of the protocol corsproc serves.
//
// No Envoy binary can run where corsproc is developed and tested, so this
// package plays Envoy: a Proxy is an HTTP/1.1 listener with a route table,
// one ext_proc filter and a single upstream cluster. For every HTTP request
// it opens one ext_proc stream, sends the request and response headers the
// way Envoy shapes them, applies the processor's answers with Envoy's rules,
// and fails the way Envoy fails. The rules it follows are those of
// docs/extproc-protocol.md, which cites Envoy's source for each; each branch
// of the code says which Envoy behaviour it emulates.
//
// The emulator serves corsproc's end-to-end tests, the browser tests and
// `corsproc dev`. It emulates only what corsproc's deployments use: header
// processing (request and response header modes SEND or SKIP), bodies NONE,
// trailers SKIP, the request attribute xds.route_name, per-route gRPC initial
// metadata, allow_mode_override, message_timeout, failure_mode_allow and the
// default header mutation rules.
//
// Where Envoy's behaviour is not spelled out by docs/extproc-protocol.md,
// the emulator does what Envoy's filter source does; those choices are listed
// in the comments of the code that makes them, and summarised here:
//
//   - A set_headers entry with both value and raw_value is a processing
//     error: Envoy answers 500 whatever failure_mode_allow says (it is a bad
//     answer, not an unavailable processor). In an immediate response it only
//     stops the mutation there: Envoy logs it and still sends the reply.
//   - A response of the wrong type is spurious: 500, or continue untouched
//     with failure_mode_allow, as docs/extproc-protocol.md states (Envoy
//     1.35 and later). A response without
//     any response case (a "standalone mode_override") is spurious too.
//   - A header value or name Envoy would refuse (CR, LF or NUL in a value, a
//     name that is not a token) is ignored like a disallowed header, as the
//     default mutation rules (disallow_is_error false) do.
//   - The emulator reads a processor response only while one of its
//     messages awaits an answer; Envoy's client reads asynchronously. A
//     processor that closes its stream between the two phases is therefore
//     noticed when the response_headers message is sent, not before: the
//     outcome (continue untouched) is the same, the message count one higher.
//   - CONTINUE_AND_REPLACE is applied like CONTINUE (header mutation only):
//     body mutations, trailers and clear_route_cache are not emulated.
//
// The protocol facts it follows are the sections of docs/extproc-protocol.md;
// sections to files:
//
//   - "Streams", "One answer per message", "Processing mode", "Failures":
//     stream.go (one stream per request, message_timeout, spurious and
//     error answers, mode_override, closing the stream).
//   - "Headers Envoy sends", "Header mutations": headers.go (header maps as
//     Envoy shapes them, mutations and the default mutation rules).
//   - "Immediate responses", "Replies Envoy generates itself": proxy.go
//     (the listener, local replies, route response headers, the upstream).
//   - "Identifying the route and the policy": emulator.go (routes, their
//     names and gRPC initial metadata) and stream.go (the route attribute).
package emulator
