// Package policyfile reads corsproc's policy files: a file or a directory
// of them (as a Kubernetes ConfigMap mount gives), within bounds, decoded
// strictly from YAML into the policy schema (proto/corsproc/v1) with the
// position of every key, then compiled by package policy into a Set whose
// diagnostics point at lines. It also holds the embedded development
// policy that `corsproc serve` and `corsproc dev` use without --policy.
//
// The user's reference for the file is docs/policy.md; its rules are
// docs/semantics.md, §9. Files:
//
//   - load.go: Load, LoadChanged and Parse; reading files and directories
//     (regular files only, name order, hidden files skipped); Digest and
//     FileNames, which the reloader (policy/reload) uses.
//   - decode.go: Decode, the strict decoder (unknown and duplicate keys,
//     types, enum spellings, merge keys), and the defaults a policy takes
//     for keys it does not write (django-cors-headers' defaults).
//   - positions.go: where the file wrote each field (the policy.Locator
//     Compile's diagnostics are positioned by).
//   - limits.go: the bounds on files, YAML nodes, list entries and decoding
//     errors, checked before and while decoding (docs/security.md lists
//     them).
//   - development.go: the embedded development policy.
package policyfile
