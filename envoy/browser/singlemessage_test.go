package browser

// Single-message mode in Chromium (docs/envoy.md, "Single-message mode"):
// the same fetches through the response-phase Envoy and through one with
// envoy/envoy-single-message.yaml's ext_proc and header_mutation settings,
// read from the file. The page must see exactly the same thing.

import (
	"encoding/json"
	"testing"

	"github.com/corsproc/corsproc/envoy/emulator"
	"github.com/corsproc/corsproc/envoy/emulator/fromconfig"
	"github.com/corsproc/corsproc/processor"
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

// TestSingleMessageSameInChromium runs the fetches of this package's tests
// (allowed and refused origins, exposed headers, preflighted requests
// allowed and refused, credentials bound by route name and by metadata, an
// upstream sending its own CORS headers, a forwarded preflight, an unknown
// policy) in Chromium, once through each mode, and requires the page to see
// the same results; in single-message mode every request costs one
// ext_proc message.
func TestSingleMessageSameInChromium(t *testing.T) {
	modes := []struct {
		name string
		mod  func(*emulator.Config)
	}{
		{"response-phase", nil},
		{"single-message", singleMessage(t)},
	}
	include := map[string]any{"credentials": "include"}
	put := func(header string) map[string]any {
		return map[string]any{"method": "PUT", "headers": map[string]string{header: "1"}, "body": "payload"}
	}
	results := make([]map[string]string, len(modes))
	for i, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnvConfig(t, processor.Options{}, m.mod)
			b := newTab(t)
			got := map[string]string{}
			record := func(name string, res fetchResult) {
				js, _ := json.Marshal(res)
				got[name] = string(js)
			}
			b.navigate(e.apiOrigin + "/set-cookie")
			b.open(e.pageOrigin)
			record("get", b.fetch(e.apiOrigin+"/sm/get", nil, "x-exposed", "x-hidden"))
			record("upstream cors", b.fetch(e.apiOrigin+"/upstream-cors/sm", nil, "x-exposed"))
			record("put allowed", b.fetch(e.apiOrigin+"/sm/put", put("X-Allowed")))
			record("put header refused", b.fetch(e.apiOrigin+"/sm/put-header", put("X-Not-Allowed")))
			record("delete refused", b.fetch(e.apiOrigin+"/sm/delete", map[string]any{"method": "DELETE"}))
			record("credentials by route", b.fetch(e.apiOrigin+"/credentials/sm", include))
			record("credentials by metadata", b.fetch(e.apiOrigin+"/credentials-meta/sm", include))
			record("credentials refused", b.fetch(e.apiOrigin+"/sm/no-credentials", include))
			record("credentialed put", b.fetch(e.apiOrigin+"/credentials/sm-put", map[string]any{
				"method": "PUT", "credentials": "include", "headers": map[string]string{"X-Allowed": "1"}, "body": "payload"}))
			record("forwarded preflight", b.fetch(e.apiOrigin+"/forward/upstream-cors-all/sm", map[string]any{"method": "DELETE", "credentials": "include"}))
			record("unknown policy", b.fetch(e.apiOrigin+"/typo/upstream-cors-all/sm", include))
			b.open(e.otherOrigin)
			record("other origin get", b.fetch(e.apiOrigin+"/sm/other", nil))
			record("other origin upstream cors", b.fetch(e.apiOrigin+"/upstream-cors-all/sm-other", include))
			record("other origin put", b.fetch(e.apiOrigin+"/sm/other-put", put("X-Allowed")))
			results[i] = got

			if m.mod != nil {
				if s := e.proxy.Stats(); s.MessagesSent != s.Requests {
					t.Errorf("single-message mode: %d ext_proc messages for %d requests, want one each: %+v", s.MessagesSent, s.Requests, s)
				}
			}
		})
	}
	if results[0] == nil || results[1] == nil {
		return // a mode failed or was skipped (no Chromium)
	}
	for name, want := range results[0] {
		if got := results[1][name]; got != want {
			t.Errorf("%s: the page sees\n single-message: %s\n response phase: %s", name, got, want)
		}
	}
	// The comparison means something only if both outcomes occur.
	var ok, refused int
	for _, r := range results[0] {
		var res fetchResult
		json.Unmarshal([]byte(r), &res)
		if res.OK {
			ok++
		} else if res.ErrorName == "TypeError" {
			refused++
		}
	}
	if ok < 5 || refused < 5 {
		t.Errorf("%d fetches read and %d refused; want at least 5 of each: %v", ok, refused, results[0])
	}
}
