package processor

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/corsproc/corsproc/policy"
)

// Envoy's default limits of a header map: DEFAULT_MAX_HEADERS_COUNT and
// DEFAULT_MAX_REQUEST_HEADERS_KB in envoy/http/codec.h (a cluster's
// max_response_headers_kb defaults to the same 60 KiB). Envoy checks the
// response header map against its limits after applying a header mutation,
// and answers 500 past them whatever failure_mode_allow says
// (MutationUtils::headerMutationResultCheck, called at the end of
// MutationUtils::applyHeaderMutations in
// source/extensions/filters/http/ext_proc/mutation_utils.cc, every release
// corsproc supports). docs/extproc-protocol.md, "Header mutations".
const (
	envoyMaxHeaders     = 100
	envoyMaxHeaderBytes = 60 << 10
)

// fitEnvoyLimits returns the headers to remove from and to set on a response
// whose header map Envoy sent as hs, such that the map stays within Envoy's
// default limits once Envoy applies them: remove and set unchanged when they
// fit, which is decided without allocating in the common case; remove alone
// when only the removal fits (the response then carries no CORS header:
// CORS refused for it, and the upstream's own CORS headers are still
// removed); nothing when not even that fits. ok reports whether set was
// kept.
//
// It counts as Envoy does: one entry per header line, pseudo-headers
// included; a name and value's lengths as bytes; an appended value of a
// header already present (Vary, which Envoy keeps inline) joined with ","
// to that entry.
func fitEnvoyLimits(hs []*corev3.HeaderValue, remove []string, set []policy.Header) (r []string, s []policy.Header, ok bool) {
	n, size := len(hs), 0
	for _, h := range hs {
		size += len(h.GetKey()) + valueOf(h).size()
	}
	// The bound: every set header a new entry.
	addN, addSize := len(set), 0
	for _, h := range set {
		addSize += len(h.Name) + len(h.Value) + 1
	}
	if n+addN <= envoyMaxHeaders && size+addSize <= envoyMaxHeaderBytes {
		return remove, set, true
	}

	// Near the limits: what the map holds after the removal.
	removed := func(key string) bool {
		for _, k := range remove {
			if strings.EqualFold(k, key) {
				return true
			}
		}
		return false
	}
	present := func(key string) bool {
		for _, h := range hs {
			if strings.EqualFold(h.GetKey(), key) && !removed(h.GetKey()) {
				return true
			}
		}
		return false
	}
	for _, h := range hs {
		if removed(h.GetKey()) {
			n--
			size -= len(h.GetKey()) + valueOf(h).size()
		}
	}
	if n > envoyMaxHeaders || size > envoyMaxHeaderBytes {
		return nil, nil, false
	}
	afterN, afterSize := n, size
	for _, h := range set {
		switch {
		case h.Append && present(h.Name):
			afterSize += len(h.Value) + 1
		case present(h.Name):
			// A replaced value: count it whole, an upper bound.
			afterSize += len(h.Value)
		default:
			afterN++
			afterSize += len(h.Name) + len(h.Value)
		}
	}
	if afterN <= envoyMaxHeaders && afterSize <= envoyMaxHeaderBytes {
		return remove, set, true
	}
	return remove, nil, false
}
