// Package importer is the source-neutral core of corsproc import and
// corsproc audit: the model of a CORS rule set read from another system
// (nginx, Envoy, Istio, Gateway API, Envoy Gateway), the warnings with the
// decision each asks for, the handling of several definitions for one
// host, path or route, the writer of the policy file with a source comment
// on every key, and the check of that file with policyfile.Parse.
// docs/migrating.md describes what the user sees.
//
// # Writing a source importer
//
// A source importer lives in a package beside this one
// (internal/importer/nginx, internal/importer/envoy, ...) and exports its
// entry point as
//
//	func Read(files []importer.File) (*importer.RuleSet, error)
//
// (a Reader), which cmd/corsproc's import and audit call with the files
// ReadFiles gave (one file, every matching file of a directory in name
// order, or "-" for standard input). It reads its files, and for each rule
// set it finds builds a *Policy:
//
//   - Name: a suggested name (the host and location, the route, the
//     VirtualService's namespace and name). Build makes it valid and
//     unique.
//   - Src: the block or object defining the rule set (Source{File, Line,
//     Key}); every conflict is reported there. Line is 1-based, 0 when the
//     format keeps none (protojson).
//   - Match: Routes (Envoy route names, as xds.route_name gives them),
//     Hosts (without port; *.example.com allowed), PathPrefixes and
//     URLsRegex (RE2 on the whole path). All given fields must hold, as in
//     corsproc's match. A Policy with an
//     empty Match is selected only by name, or as RuleSet.DefaultPolicy.
//   - Origins: one Origin per rule, with its Kind. OriginExact goes to
//     allowed_origins; OriginRegex must already be an RE2 regex matched
//     against the whole origin (a source that searches or anchors one end
//     turns its regex into that form, e.g. .*(?:re).*, and says so);
//     OriginPrefix, OriginSuffix and OriginContains are string matches
//     corsproc has no key for: Build writes the regex that matches the
//     same origins (prefix p: QuoteMeta(p)+".*") and warns, so that
//     corsproc's own checks judge what they let in (an unanchored prefix,
//     a suffix run into the domain). OriginAny is "*"; OriginReflect is a
//     source that echoes any Origin back. Both become allow_all_origins,
//     which corsproc refuses with credentials.
//   - Methods, Headers, Expose (List), MaxAge (Int), Credentials and
//     PrivateNetwork (Bool), UnmatchedPreflight (String: reject or
//     forward), PreflightStatus (Int), Mode (String: enforce or shadow).
//     Request headers and methods browsers never ask for (DNT, TRACE) are
//     left out by Build with a warning; a max age above 86400 is written
//     as 86400. A key whose Src is not set is not
//     written and takes corsproc's default, so set Src for every value the
//     source sets, to the file and line it came from, and leave it unset
//     for what the source leaves to its own defaults (after warning where
//     those defaults differ from corsproc's).
//   - Vary: VaryMissing when the source's answer depends on the Origin and
//     it adds no Vary: Origin (VarySrc says where the answer is made); an
//     unsafe finding for audit.
//
// Policies go into a RuleSet in selection order: corsproc selects the
// first policy whose match holds (docs/policy.md), so a source with
// most-specific-first rules (nginx's longest location prefix, Envoy's
// first matching route) orders them so.
//
// Everything the importer cannot carry over, and every difference in
// semantics, is a Warning in RuleSet.Warnings, made with At(src, code,
// message, fix): CodeLeftOut with LeftOut set for a value left out (import
// then exits 1), CodeDifference for a difference, CodePreflightAuth with
// Unsafe set for preflights that reach an authentication step before the
// source's CORS answers them, CodeConflict for conflicting definitions the
// importer finds itself. Message says what happens; Fix the decision the
// user has to make.
//
// Build(rs) then
//
//  1. merges policies with the same match (same routes, hosts and path
//     prefixes): identical rule sets become one policy, noted; different
//     rule sets each keep a policy, the first keeping the match and the
//     others selected only by name, with a CodeConflict warning (Unsafe);
//     a route bound in two different matches stays with the first;
//  2. names the policies and warns for the origin forms written as regexes
//     and for a missing Vary: Origin;
//  3. writes the file: a header naming the source and files, and every key
//     with a comment "key, file:line" (list entries from other lines each
//     with their own);
//  4. loads it with policyfile.Parse, and turns each of corsproc's
//     diagnostics into a Warning at the source line of the key it
//     concerns: an error on an origin key is CodeUnsafeOrigin and Unsafe
//     (a regex matching any origin with credentials, http:// with
//     credentials, a wildcard under a public suffix, * with credentials,
//     null), other errors CodeRefused; both set Error and
//     Result.LoadError.
//
// Result.Incomplete (refused, left out or a conflict) is import's exit 1;
// Result.Unsafe is audit's.
//
// The writer (WriteScalar, WriteFlowList, WriteBlockList, YAMLString,
// CommentSafe) is shared with the Django importer, which keeps its own
// layout of keys.
package importer
