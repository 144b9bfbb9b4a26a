// Package bench measures corsproc against its peers and against the floor of
// its transport. It is a separate module (bench/go.mod, replacing
// github.com/corsproc/corsproc with ../) so that the peer libraries it
// compares with, github.com/rs/cors and github.com/jub0bs/cors, never enter
// the server's dependencies.
//
//   - BenchmarkDecision: one CORS decision through corsproc's policy package
//     and through rs/cors and jub0bs/cors as http.Handler middleware.
//   - BenchmarkScale*: decision, compile, reload and memory of policy sets of
//     10 and 10,000 policies and origins.
//   - BenchmarkEnvoyMessages: ext_proc messages per HTTP request through the
//     Envoy emulator, for both shipped Envoy configurations.
//   - cmd/loadgen: corsproc and a no-op ext_proc server as child processes,
//     driven alternately over real gRPC by an Envoy-shaped load generator;
//     requests/s, latency, server CPU per request.
//
// docs/performance.md holds the results and the commands that reproduce them.
package bench
