// Package policy is corsproc's CORS policy model: it reads and checks
// policy files, compiles them into an immutable Set, and decides, for the
// few facts of one HTTP request (Request), what corsproc does (Decision).
// It does no network I/O and knows nothing of gRPC or Envoy: the processor
// fills a Request from Envoy's messages and renders the Decision, and
// explain prints the same Decision with the checks that led to it.
//
// The behaviour it implements is specified in docs/semantics.md; the user's
// reference for the policy file is docs/policy.md. Sections to files:
//
//   - §1 terms: decide.go (Request, Decision, Outcome, Reason, Selection),
//     headers.go (header names).
//   - §2 which policy governs a request: evaluate.go (selectPolicy,
//     unknownPolicy); set.go holds the indexes it reads.
//   - §3 origins: evaluate.go (matchOrigin), origin.go (origin sets and
//     patterns), compile.go (compileOrigins); internal/origins parses the
//     request's Origin and the allowed_origins entries, and finds what a
//     regex matches.
//   - §4 to §8 classification, preflight, responses, managed headers,
//     shadow mode: evaluate.go; decide.go (Remove, NeedsResponse,
//     RespondImmediately); explain.go traces the same code.
//   - §9 configuration validation: decode.go (strict YAML decoding with
//     positions), compile.go (validation and compilation), diag.go
//     (diagnostics), limits.go (size and count caps), set.go (files and
//     directories).
//   - §10 request bounds: evaluate.go (MaxACRHBytes, MaxACRHNames); the
//     Origin's length is internal/origins's MaxLen.
package policy
