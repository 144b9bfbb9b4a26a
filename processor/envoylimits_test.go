package processor

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/corsproc/corsproc/policy"
)

// A response near Envoy's header map limits: corsproc's headers are kept
// when they fit once Envoy applies them, the removal alone when only it
// fits, nothing when not even that fits, so that Envoy never answers 500
// for corsproc's mutation (docs/extproc-protocol.md, "Header mutations").
func TestFitEnvoyLimits(t *testing.T) {
	response := func(n int, extra ...string) []*corev3.HeaderValue {
		hs := []*corev3.HeaderValue{{Key: ":status", RawValue: []byte("200")}}
		for _, kv := range extra {
			k, v, _ := strings.Cut(kv, ": ")
			hs = append(hs, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
		}
		for i := len(hs); i < n; i++ {
			hs = append(hs, &corev3.HeaderValue{Key: fmt.Sprintf("x-h%03d", i), RawValue: []byte("v")})
		}
		return hs
	}
	remove := []string{"access-control-allow-origin", "access-control-allow-credentials", "access-control-expose-headers"}
	set := []policy.Header{
		{Name: "access-control-allow-origin", Value: "https://app.example.com"},
		{Name: "access-control-expose-headers", Value: "x-request-id"},
		{Name: "vary", Value: "Origin", Append: true},
	}
	for _, tc := range []struct {
		name       string
		hs         []*corev3.HeaderValue
		wantSet    bool
		wantRemove bool
	}{
		{"common", response(10), true, true},
		{"exactly_at_the_limit", response(97), true, true},
		{"one_past", response(98), false, true},
		// Vary is present: the appended Origin joins its line.
		{"vary_merges", response(98, "vary: Accept-Encoding"), true, true},
		// The upstream's own CORS headers go, which makes room.
		{"upstream_cors_removed", response(99, "access-control-allow-origin: *", "access-control-expose-headers: x"), true, true},
		{"at_the_limit_already", response(100), false, true},
		{"past_the_limit_already", response(101), false, false},
		{"bytes", response(5, "cookie-ish: "+strings.Repeat("c", envoyMaxHeaderBytes-60)), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, s, ok := fitEnvoyLimits(tc.hs, remove, set)
			if ok != tc.wantSet || (s != nil) != tc.wantSet || (r != nil) != tc.wantRemove {
				t.Errorf("remove %v, set %v, ok %v; want set %v, remove %v", r, s, ok, tc.wantSet, tc.wantRemove)
			}
			if ok && (!slices.Equal(r, remove) || !slices.Equal(s, set)) {
				t.Errorf("a mutation that fits was changed: %v %v", r, s)
			}
		})
	}
}

func TestFitEnvoyLimitsAllocations(t *testing.T) {
	hs := make([]*corev3.HeaderValue, 20)
	for i := range hs {
		hs[i] = &corev3.HeaderValue{Key: fmt.Sprintf("x-%d", i), RawValue: []byte("v")}
	}
	set := []policy.Header{{Name: "access-control-allow-origin", Value: "https://a.example"}}
	if n := testing.AllocsPerRun(100, func() { fitEnvoyLimits(hs, []string{"access-control-allow-origin"}, set) }); n != 0 {
		t.Errorf("%v allocations for a response far from the limits, want 0", n)
	}
}
