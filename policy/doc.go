// Package policy is corsproc's CORS engine: it compiles a policy set's
// schema (the messages of proto/corsproc/v1) into an immutable Set, and
// decides, for the few facts of one HTTP request (Request), what corsproc
// does (Decision). It does no I/O and knows nothing of YAML, gRPC or Envoy:
// policy/policyfile reads and decodes policy files into the schema and
// calls Compile; the processor fills a Request from Envoy's messages and
// renders the Decision; explain prints the same Decision with the checks
// that led to it.
//
// Its public API is what a program embedding the engine needs: Compile and
// its Source, Set, Request, Decision (with Outcome, Reason, Selection,
// Header), Explain, Diagnostic and ValidationError, the header names, and
// the bounds (MaxPolicies, MaxOrigins, MaxPreflightMaxAge, MaxACRHBytes,
// MaxACRHNames). Everything else is unexported or under internal/.
//
// The behaviour it implements is specified in docs/semantics.md; the user's
// reference for the policy file is docs/policy.md. Sections to files:
//
//   - §1 terms: request.go (Request), decision.go (Decision, Outcome,
//     Reason, Selection, Header), headers.go (header names).
//   - §2 which policy governs a request: select.go (selectPolicy, the
//     host and path match); decide.go (unknownPolicy); set.go holds the
//     indexes it reads.
//   - §3 origins: decide.go (matchOrigin), originset.go (the compiled
//     origin sets and patterns), compile.go (compileOrigins);
//     internal/origins parses the request's Origin and the allowed_origins
//     entries, and finds what a regex matches.
//   - §4 to §8 classification, preflight, responses, managed headers,
//     shadow mode: request.go (kind), decide.go; decision.go (Remove,
//     NeedsResponse, RespondImmediately); explain.go traces the same code.
//   - §9 configuration validation: compile.go (the rules on values, and
//     compilation), diag.go (diagnostics; a Locator gives their positions).
//     Decoding the file, its keys and types, and the bounds on files are
//     policy/policyfile's.
//   - §10 request bounds: decide.go (MaxACRHBytes, MaxACRHNames); the
//     Origin's length is internal/origins's MaxLen.
package policy
