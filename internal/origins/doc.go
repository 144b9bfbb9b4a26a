// Package origins owns corsproc's origin rule: parsing an Origin header
// value strictly, as a browser serializes it (Parse, Origin, MaxLen);
// parsing and checking a configured allowed_origins entry (ParseConfig,
// Config, and the rules it obeys: IsLoopback, IsPublicSuffix); and
// judging an allowed_origin_regexes entry by the origins it matches
// (CheckRegex). The pieces of the grammar the policy file's other checks
// share (IsHostName, IsIPv6Literal) are here too. It imports no other
// corsproc package; policy uses it at load and at request time.
//
// The behaviour it implements is specified in docs/semantics.md. Sections
// to files:
//
//   - §3 origins, "the request's Origin" (what a well-formed serialized
//     origin is): parse.go (Parse, which reads the host a word at a time;
//     docs/performance.md explains why).
//   - §3, "what a policy may allow" and "regexes are held to the same
//     rules": config.go (ParseConfig, IsLoopback, IsPublicSuffix,
//     CheckRegex), regex.go (the search for what a regex matches).
//   - §9 configuration validation, the origin entries: config.go, regex.go;
//     policy gives their problems a file position.
//   - §10 request bounds, the Origin's length: parse.go (MaxLen).
package origins
