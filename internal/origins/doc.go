// Package origins owns corsproc's rule for origins as a request carries
// them: parsing an Origin header value strictly, as a browser serializes
// it (Parse, Origin, MaxLen), and the pieces of that grammar the policy
// file's checks share (IsScheme, IsHostName, IsIPv6Literal, IsPort,
// IsDefaultPort, LastLabel). It imports no other corsproc package; policy
// uses it at load and at request time.
//
// The behaviour it implements is specified in docs/semantics.md. Sections
// to files:
//
//   - §3 origins, "the request's Origin" (what a well-formed serialized
//     origin is): parse.go (Parse, which reads the host a word at a time;
//     docs/performance.md explains why).
//   - §10 request bounds, the Origin's length: parse.go (MaxLen).
package origins
