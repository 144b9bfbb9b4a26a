package main

import (
	"strings"
	"testing"
)

// In corsproc dev a refused preflight says why, in the 403's body and its
// X-Corsproc-Reason header, and the console shows explain's account of it.
func TestDevExplainsRefusals(t *testing.T) {
	t.Parallel()
	up := newDevUpstream(t)
	in := startDev(t, "--upstream", up.srv.URL, "--listen", "127.0.0.1:0")
	base := "http://" + in.addrs.http
	const want = `request header "x-api-key" is not in allow_headers of policy "development"`
	resp, body := devDo(t, "OPTIONS", base+"/api/refused",
		"Origin: http://localhost:3000", "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: content-type, x-api-key")
	if resp.StatusCode != 403 || body != want+"\n" || resp.Header.Get("X-Corsproc-Reason") != want {
		t.Errorf("refused preflight: %d, X-Corsproc-Reason %q, body %q; want 403 saying %q", resp.StatusCode, resp.Header.Get("X-Corsproc-Reason"), body, want)
	}
	logs := in.logs.String()
	for _, line := range []string{"corsproc refused a request: " + want, "Policy:   development", "FAIL", "The browser's console will show:"} {
		if !strings.Contains(logs, line) {
			t.Errorf("the console lacks %q:\n%s", line, logs)
		}
	}
	// An allowed preflight explains nothing.
	resp, body = devDo(t, "OPTIONS", base+"/api/allowed",
		"Origin: http://localhost:3000", "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: content-type")
	if resp.StatusCode != 204 || body != "" || resp.Header.Get("X-Corsproc-Reason") != "" {
		t.Errorf("allowed preflight: %d, X-Corsproc-Reason %q, body %q", resp.StatusCode, resp.Header.Get("X-Corsproc-Reason"), body)
	}
	if n := strings.Count(in.logs.String(), "corsproc refused a request"); n != 1 {
		t.Errorf("%d refusals explained on the console, want 1", n)
	}
}
