package e2e

// Single-message mode end to end (docs/envoy.md, "Single-message mode"):
// the Envoy settings of envoy/envoy-single-message.yaml, read from the file
// itself, in front of corsproc. The browser must see what the
// response-phase mode gives it, for one ext_proc message per CORS request.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/envoy/emulator"
	"github.com/corsproc/corsproc/envoy/emulator/fromconfig"
)

// singleMessage returns the Config change that gives the emulated Envoy
// the single-message settings of envoy/envoy-single-message.yaml, read
// from the file.
func singleMessage(t testing.TB) func(*emulator.Config) {
	t.Helper()
	change, err := fromconfig.SingleMessageFile("../envoy-single-message.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return change
}

// stacks returns a response-phase stack and a single-message stack, each
// built by newStack with mod, the second then given the mode's settings.
func stacks(t *testing.T, mod func(*emulator.Config)) (two, one *stack) {
	t.Helper()
	sm := singleMessage(t)
	two = newStack(t, mod)
	one = newStack(t, func(c *emulator.Config) {
		if mod != nil {
			mod(c)
		}
		sm(c)
	})
	return two, one
}

// browserView is what the browser's CORS check and the page can read of a
// response: status, body, and the CORS headers.
func browserView(resp *http.Response, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %q", resp.StatusCode, body)
	for _, k := range corsHeaders {
		if v := resp.Header.Values(k); v != nil {
			fmt.Fprintf(&b, " %s=%q", k, v)
		}
	}
	if v := resp.Header.Get("X-Corsproc-Reason"); v != "" {
		fmt.Fprintf(&b, " X-Corsproc-Reason=%q", v)
	}
	return b.String()
}

// importantScenarios are the requests of this package's tests that a
// governed route sees: allowed, refused, non-CORS, preflights allowed,
// refused and forwarded, upstream errors, an upstream's own CORS headers and
// Vary, route and metadata bindings, an unknown policy.
var importantScenarios = []struct {
	name string
	r    browserRequest
	// cors: the request carries an Origin, so it costs one message in
	// single-message mode.
	cors bool
}{
	{"allowed", browserRequest{path: "/items?page=2", origin: appOrigin}, true},
	{"refused", browserRequest{origin: evilOrigin}, true},
	{"non_cors", browserRequest{}, false},
	{"non_cors_upstream_cors", browserRequest{path: "/?acao=*"}, false},
	{"preflight_allowed", browserRequest{method: "OPTIONS", path: "/items", origin: appOrigin, acrm: "PUT", acrh: "content-type"}, true},
	{"preflight_method_refused", browserRequest{method: "OPTIONS", origin: appOrigin, acrm: "PATCH"}, true},
	{"preflight_header_refused", browserRequest{method: "OPTIONS", origin: appOrigin, acrm: "PUT", acrh: "x-custom"}, true},
	{"preflight_origin_refused", browserRequest{method: "OPTIONS", origin: evilOrigin, acrm: "PUT"}, true},
	{"upstream_401", browserRequest{path: "/fail?status=401", origin: appOrigin}, true},
	{"upstream_500", browserRequest{path: "/fail?status=500", origin: appOrigin}, true},
	{"upstream_acao_replaced", browserRequest{path: "/?acao=*", origin: appOrigin}, true},
	{"upstream_acao_refused", browserRequest{path: "/?acao=" + evilOrigin, origin: evilOrigin}, true},
	{"upstream_vary", browserRequest{path: "/?vary=Accept-Encoding", origin: appOrigin}, true},
	{"route_name", browserRequest{path: "/shop/cart", origin: shopOrigin}, true},
	{"route_name_refused", browserRequest{path: "/shop/cart", origin: appOrigin}, true},
	{"route_name_preflight", browserRequest{method: "OPTIONS", path: "/shop/cart", origin: shopOrigin, acrm: "DELETE"}, true},
	{"metadata_binding", browserRequest{path: "/partners/orders", origin: partnerOrigin}, true},
	{"unknown_policy", browserRequest{path: "/typo/orders?acao=" + evilOrigin, origin: evilOrigin}, true},
	{"unknown_policy_preflight", browserRequest{method: "OPTIONS", path: "/typo/orders?acao=" + partnerOrigin, origin: partnerOrigin, acrm: "PUT"}, true},
	{"forwarded_preflight", browserRequest{method: "OPTIONS", path: "/legacy/x?acao=" + evilOrigin, origin: evilOrigin, acrm: "PUT"}, true},
	{"forwarded_preflight_allowed", browserRequest{method: "OPTIONS", path: "/legacy/x", origin: appOrigin, acrm: "PUT"}, true},
}

// TestSingleMessageSameAsResponsePhase sends every important scenario
// through both modes, with corsproc called for every request (envoy.yaml's
// routes) and only for requests with an Origin (the ExtensionWithMatcher of
// envoy-origin-only.yaml and envoy-single-message.yaml, and the virtual
// host's Vary: Origin): the browser gets the same status, body and CORS
// headers, and the upstream the same requests. Single-message mode costs
// one message per request corsproc sees.
func TestSingleMessageSameAsResponsePhase(t *testing.T) {
	t.Parallel()
	for _, originOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("origin_only=%v", originOnly), func(t *testing.T) {
			t.Parallel()
			mod := func(c *emulator.Config) {
				if originOnly {
					c.SkipWithoutOrigin = true
					c.VirtualHost.ResponseHeadersToAdd = []emulator.HeaderValueOption{{Key: "vary", Value: "Origin", Append: true}}
				}
			}
			two, one := stacks(t, mod)
			for _, sc := range importantScenarios {
				if originOnly && sc.name == "non_cors_upstream_cors" {
					// The one difference, TestSingleMessageNonCORSUpstreamHeaders.
					continue
				}
				r2, b2 := two.mustDo(sc.r)
				var r1 *http.Response
				var b1 string
				n := one.messages(func() { r1, b1 = one.mustDo(sc.r) })
				if v1, v2 := browserView(r1, b1), browserView(r2, b2); v1 != v2 {
					t.Errorf("%s: the browser gets\n single-message: %s\n response phase: %s", sc.name, v1, v2)
				}
				want := 1
				if originOnly && !sc.cors {
					want = 0
				}
				if n != want {
					t.Errorf("%s: %d ext_proc messages in single-message mode, want %d", sc.name, n, want)
				}
			}
			if u1, u2 := one.up.seen(), two.up.seen(); !slices.Equal(u1, u2) {
				t.Errorf("the upstream saw\n single-message: %q\n response phase: %q", u1, u2)
			}
		})
	}
}

// The one difference in what a response carries, with the matcher: a
// request without Origin never reaches corsproc, and the header_mutation
// filter still removes the upstream's CORS headers from its response, where
// envoy-origin-only.yaml leaves them (a browser reads no CORS header on a
// request it sent without Origin).
func TestSingleMessageNonCORSUpstreamHeaders(t *testing.T) {
	t.Parallel()
	mod := func(c *emulator.Config) {
		c.SkipWithoutOrigin = true
		c.VirtualHost.ResponseHeadersToAdd = []emulator.HeaderValueOption{{Key: "vary", Value: "Origin", Append: true}}
	}
	two, one := stacks(t, mod)
	r := browserRequest{path: "/?acao=*"}
	resp, _ := two.mustDo(r)
	wantCORS(t, resp, hdrs{"Access-Control-Allow-Origin": {"*"}, "Access-Control-Allow-Credentials": {"true"}, "Vary": {"Origin"}})
	resp, _ = one.mustDo(r)
	wantCORS(t, resp, varyOnly)
}

// A request no policy governs keeps the upstream's CORS headers in the
// response-phase mode and loses them in single-message mode: the reason
// check --single-message refuses a set without a default_policy.
func TestSingleMessageUngovernedLosesUpstreamHeaders(t *testing.T) {
	t.Parallel()
	two, one := stacks(t, nil)
	r := browserRequest{host: "other.example.com", path: "/?acao=*", origin: appOrigin}
	resp, _ := two.mustDo(r)
	wantCORS(t, resp, hdrs{"Access-Control-Allow-Origin": {"*"}, "Access-Control-Allow-Credentials": {"true"}})
	resp, _ = one.mustDo(r)
	wantCORS(t, resp, nil)
}

// Replies Envoy generates itself after corsproc's request phase (the
// upstream down, the route's timeout, an authentication filter's 401, a path
// no route matches) carry corsproc's CORS headers in single-message mode on
// every release: the header_mutation filter writes them from the metadata
// of the request phase, while the response-phase mode needs ext_proc to see
// the reply, which 1.33.1 to 1.36 do not allow (TestScenariosByRelease).
func TestSingleMessageLocalRepliesByRelease(t *testing.T) {
	t.Parallel()
	sm := singleMessage(t)
	for _, rel := range emulator.Releases() {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			s, down := localReplyStacks(t, rel, sm)
			for _, sc := range []struct {
				name   string
				s      *stack
				r      browserRequest
				status int
				want   hdrs
			}{
				{"preflight", s, browserRequest{method: "OPTIONS", path: "/api/items", origin: appOrigin, acrm: "PUT", acrh: "content-type"}, 204, preflightAllowApp},
				{"allowed", s, browserRequest{path: "/api/items", origin: appOrigin}, 200, allowedApp},
				{"upstream_down", down, browserRequest{path: "/api/items", origin: appOrigin}, 503, allowedApp},
				{"upstream_timeout", s, browserRequest{path: "/slow/x?hang=1", origin: appOrigin}, 504, allowedApp},
				{"later_filter_401", s, browserRequest{path: "/private/x", origin: appOrigin}, 401, allowedApp},
				{"unrouted", s, browserRequest{path: "/elsewhere/x", origin: appOrigin}, 404, allowedApp},
				{"refused_401", s, browserRequest{path: "/private/x", origin: evilOrigin}, 401, varyOnly},
			} {
				var resp *http.Response
				n := sc.s.messages(func() { resp, _ = sc.s.mustDo(sc.r) })
				if resp.StatusCode != sc.status {
					t.Errorf("%s: status %d, want %d", sc.name, resp.StatusCode, sc.status)
				}
				if p := checkCORS(resp, sc.want); p != "" {
					t.Errorf("%s: %s", sc.name, p)
				}
				if n != 1 {
					t.Errorf("%s: %d ext_proc messages, want 1", sc.name, n)
				}
			}
		})
	}
}
