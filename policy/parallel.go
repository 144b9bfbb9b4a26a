package policy

import (
	"runtime"
	"sync"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"
)

// A large policy set is decoded and compiled on every CPU: each policy's
// decoding and compilation depends on that policy alone. What spans
// policies (names, routes, the default) is then checked in order, on one
// goroutine, and diagnostics come out as they would from one goroutine.

// spread says which stages of loading a file ran on several goroutines: the
// YAML parse (parseSplit), the decoding of the policies list (messages) and
// their compilation (compilePolicies). parse reports it for tests, so that
// a large file that stops being spread fails one.
type spread struct {
	split, decode, compile bool
}

// Tuning of the parallel decode and compile, variables so that tests can
// make small lists parallel.
var (
	parallelMinItems = 256 // per goroutine: fewer decode and compile in a few ms anyway
	parallelWorkers  = runtime.GOMAXPROCS
)

// partition cuts n items into contiguous ranges, one per goroutine, or
// returns one range when n is too small to be worth more.
func partition(n int) [][2]int {
	parts := max(min(parallelWorkers(0), n/parallelMinItems), 1)
	out := make([][2]int, parts)
	for i := range out {
		out[i] = [2]int{i * n / parts, (i + 1) * n / parts}
	}
	return out
}

// messages decodes the items of a list of messages, one range of items per
// goroutine, each with a decoder of its own whose findings are merged in
// order afterwards. If the items cross a bound (limits.go: aliases that
// expand past maxNodes, origins past maxOrigins), where it is crossed
// depends on the order things are counted in: it merges nothing and returns
// false, and the caller decodes the list in order, so that the error is the
// one a single goroutine reports.
func (d *decoder) messages(n *yaml.Node, path string, list protoreflect.List, parts [][2]int) bool {
	elems := make([]protoreflect.Value, len(n.Content))
	subs := make([]*decoder, len(parts))
	var wg sync.WaitGroup
	for w, r := range parts {
		// Most policies hold a mapping (match) and two lists (routes,
		// allowed_origins) besides their own mapping.
		ds := &diagnostics{file: d.ds.file, positions: newPositions(2 * (r[1] - r[0]))}
		sub := &decoder{ds: ds, used: d.used, merging: map[*yaml.Node]bool{}}
		subs[w] = sub
		wg.Go(func() {
			for i := r[0]; i < r[1] && !sub.capped; i++ {
				el := list.NewElement()
				sub.message(n.Content[i], item(path, i), el.Message())
				elems[i] = el
			}
		})
	}
	wg.Wait()
	used := d.used
	for _, sub := range subs {
		if sub.capped {
			return false
		}
		used.nodes += sub.used.nodes - d.used.nodes
		used.policies += sub.used.policies - d.used.policies
		used.origins += sub.used.origins - d.used.origins
		used.items += sub.used.items - d.used.items
		used.errors += sub.used.errors - d.used.errors
	}
	if used.nodes > maxNodes || used.policies > maxPolicies || used.origins > maxOrigins || used.items > maxItems || used.errors >= maxDecodeErrors {
		return false
	}
	d.used = used
	for _, sub := range subs {
		d.ds.parts = append(d.ds.parts, sub.ds.positions)
		d.ds.list = append(d.ds.list, sub.ds.list...)
	}
	for _, el := range elems {
		list.Append(el)
	}
	return true
}

// compiled is one policy compiled, and what compiling it found.
type compiled struct {
	cp    *policy
	diags []Diagnostic
}

// compilePolicies compiles the policies of one file, one range of policies
// per goroutine. Each goroutine reports into diagnostics of its own that
// read the file's positions; a policy's findings are kept apart so that the
// caller adds them in file order. It reports whether it used several
// goroutines.
func compilePolicies(policies []*corsprocv1.Policy, ds *diagnostics) ([]compiled, bool) {
	out := make([]compiled, len(policies))
	compileRange := func(r [2]int) {
		// The position maps are only read while policies compile.
		wds := &diagnostics{file: ds.file, positions: ds.positions}
		shared := newSharedLists()
		for i := r[0]; i < r[1]; i++ {
			from := len(wds.list)
			out[i].cp = compilePolicy(policies[i], policyPath(i), wds, shared)
			out[i].diags = wds.list[from:len(wds.list):len(wds.list)]
		}
	}
	parts := partition(len(policies))
	if len(parts) == 1 {
		compileRange(parts[0]) // most files: no goroutine
		return out, false
	}
	var wg sync.WaitGroup
	for _, r := range parts {
		wg.Go(func() { compileRange(r) })
	}
	wg.Wait()
	return out, true
}

func policyPath(i int) string { return item("policies", i) }
