package policyfile

import (
	"fmt"

	"github.com/corsproc/corsproc/policy"
)

// Bounds on what loading a policy set reads and builds, so that a hostile
// or broken file is an error rather than an out-of-memory: a reload that
// hits one fails and the last good set keeps serving. They are far above
// what the largest set corsproc is measured with needs (10,000 policies,
// about 1 MiB of YAML: docs/performance.md), and low enough that loading a
// file at any of them fits beside a running server in the shipped pod
// (256 MiB, GOMEMLIMIT=200MiB). docs/policy.md and docs/security.md list
// them.
//
// Each is checked as early as it can be, and the first one crossed stops
// the load: nothing is compiled after it. The sizes are checked while the
// files are read, before YAML parsing; the YAML node bound by a scan of the
// text before yaml/v3 builds its tree (that tree is what costs memory,
// about 200 bytes a node); the others while the decoder walks the tree,
// aliases expanded.
const (
	// MaxFileSize is the largest policy file corsproc reads.
	MaxFileSize = 4 << 20
	// MaxSetSize is the most bytes of policy files one set may have, all
	// the files of a directory together.
	MaxSetSize = 8 << 20
	// MaxFiles is the most policy files (*.yaml, *.yml) a directory may
	// hold: one policy a file at the largest set measured.
	MaxFiles = 10_000
	// MaxDirEntries is the most entries of any kind a policy directory may
	// hold, read before any file is opened.
	MaxDirEntries = 100_000
	// MaxYAMLNodes bounds the YAML nodes the files of a set may hold,
	// before aliases are expanded. It is checked against an upper bound
	// found by scanning the text (yamlNodeBound), which for a plain policy
	// file is up to twice the nodes it holds: 10,000 route-bound policies
	// come to about 220,000.
	MaxYAMLNodes = 500_000
	// MaxListEntries is the most entries all the lists of a set's
	// policies may have together (origins, routes, hosts, methods,
	// headers, ...), aliases expanded: each may cost a diagnostic.
	MaxListEntries = 100_000
	// MaxDecodeErrors is the most errors decoding reports: past it,
	// decoding stops, as each costs memory.
	MaxDecodeErrors = 1000
)

// maxNodes bounds the YAML nodes the decoder visits, aliases expanded, all
// the files of a set together, so that an alias bomb is an error rather than
// an out-of-memory. A variable so that tests can lower it.
var maxNodes = 1_000_000

// Variables so that tests can lower them.
var (
	maxFiles        = MaxFiles
	maxDirEntries   = MaxDirEntries
	maxYAMLNodes    = MaxYAMLNodes
	maxPolicies     = policy.MaxPolicies // aliases expanded
	maxOrigins      = policy.MaxOrigins  // aliases expanded
	maxItems        = MaxListEntries
	maxDecodeErrors = MaxDecodeErrors
)

// budget is what the files of one set loaded so far have used of the
// bounds; the decoder of each file goes on from where the last one stopped.
type budget struct {
	yamlNodes int // yamlNodeBound of the files
	nodes     int // visited by the decoder, aliases expanded
	policies  int
	origins   int
	items     int // list entries
	errors    int // reported by the decoder
}

// capError is an error that stops loading: a bound above was crossed.
type capError struct{ fix, msg string }

// fileSizeCapError is the error of MaxFileSize, for a file read from disk
// (readFile) or handed to Parse (checkFile).
func fileSizeCapError() *capError {
	return &capError{"split the policy set or shorten it; see docs/policy.md",
		fmt.Sprintf("file is larger than the %d bytes corsproc reads", MaxFileSize)}
}

// The errors of the bounds on counts.
func policiesCapError() *capError {
	return &capError{"split the policies over several corsproc deployments, or bind routes to fewer policies; see docs/policy.md",
		fmt.Sprintf("the policy set has more than %d policies", maxPolicies)}
}

func originsCapError() *capError {
	return &capError{"use *.example.com patterns or fewer policies; see docs/policy.md",
		fmt.Sprintf("the policy set has more than %d allowed_origins and allowed_origin_regexes entries", maxOrigins)}
}

func itemsCapError() *capError {
	return &capError{"shorten the lists, or use fewer policies; see docs/policy.md",
		fmt.Sprintf("the policy set's lists have more than %d entries", maxItems)}
}

// checkYAML adds data's node bound to b, or returns the error of the
// bound it crosses.
func (b *budget) checkYAML(data []byte) *capError {
	b.yamlNodes += yamlNodeBound(data)
	if b.yamlNodes > maxYAMLNodes {
		return &capError{"split the policy set or shorten it; see docs/policy.md",
			fmt.Sprintf("the policy set holds more than the %d YAML nodes corsproc reads", maxYAMLNodes)}
	}
	return nil
}

// yamlNodeBound returns an upper bound on the nodes yaml/v3 builds from
// data (document nodes, scalars, sequences, mappings, aliases), found
// without parsing: a node written in the text starts at a byte that follows
// a blank, the start of the text or a flow indicator; the nodes YAML makes
// up (a mapping or sequence started by its first key or "-", an empty key
// or value) come with an indicator, "-", "?", ":", "," or "}", that is
// counted for them. Quotes and comments are not understood, so what they
// hold is counted as if it were structure: the bound only grows.
// TestYAMLNodeBound and FuzzYAMLNodeBound hold it to yaml/v3's count.
func yamlNodeBound(data []byte) int {
	n := 1 // the document
	prev := byte('\n')
	for i := 0; i < len(data); i++ {
		c := data[i]
		if isBlank(c) {
			prev = c
			continue
		}
		if isBlank(prev) || isFlowIndicator(prev) || prev == ':' {
			n++ // a node may start here
			switch c {
			case '-':
				// The sequence an item starts, and the item if it is
				// empty; or (---) a document and its empty content.
				n++
				if !valueFollows(data, i+1) {
					n++
				}
			case '?', '.':
				// The mapping an explicit key starts, with an empty key
				// and value; or (...) a document and its empty content.
				n += 2
			}
		}
		switch c {
		case ':':
			// A value indicator unless it is inside a plain scalar
			// (https://…): the mapping its key starts, and an empty value
			// unless one is written after it on its line.
			if blankAt(data, i+1) || isFlowIndicator(data[i+1]) || prev == '"' || prev == '\'' || isBlank(prev) || isFlowIndicator(prev) {
				n++
				if !valueFollows(data, i+1) {
					n++
				}
			}
		case ',', '}':
			n++ // the empty value of a flow mapping's key
		}
		prev = c
	}
	return n
}

// valueFollows reports whether a node is written on the line from i on, after
// blanks: not a line end, the end of data, a comment or a flow indicator.
func valueFollows(data []byte, i int) bool {
	for ; i < len(data) && (data[i] == ' ' || data[i] == '\t'); i++ {
	}
	return i < len(data) && data[i] != '\n' && data[i] != '\r' && data[i] != '#' && !isFlowIndicator(data[i])
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isFlowIndicator(c byte) bool {
	return c == '[' || c == ']' || c == '{' || c == '}' || c == ','
}

// blankAt reports whether data has a blank at i, or ends before it.
func blankAt(data []byte, i int) bool { return i >= len(data) || isBlank(data[i]) }
