package django_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/corsproc/corsproc/internal/importer/django"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// TestMigrationGuideInChromium runs the guide's step 3 in a real headless
// Chromium: a page on the frontend origin the settings allow under DEBUG,
// http://localhost:3000, reads through corsproc dev's request path (the
// emulated Envoy and corsproc in front of the application) what the
// development profile allows, and is refused what DCH never covered.
// Chromium is /usr/bin/chromium or chromium on PATH; without it the test
// skips, unless CORSPROC_REQUIRE_BROWSER=1 (as in envoy/browser).
func TestMigrationGuideInChromium(t *testing.T) {
	exe, err := exec.LookPath("chromium")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/chromium"); serr == nil {
			exe, err = "/usr/bin/chromium", nil
		}
	}
	if err != nil {
		if os.Getenv("CORSPROC_REQUIRE_BROWSER") == "1" {
			t.Fatal("Chromium not found and CORSPROC_REQUIRE_BROWSER=1")
		}
		t.Skip("SKIPPING the guide in Chromium: no chromium on PATH nor /usr/bin/chromium")
	}
	_, blocks := guideBlocks(t)
	dev, err := django.ImportWith("settings.py", []byte(blocks["settings"]), django.Options{Profile: django.DebugProfile})
	if err != nil {
		t.Fatal(err)
	}
	set, err := policyfile.Parse("cors-dev.yaml", []byte(envLine.ReplaceAllString(string(dev.YAML), "")))
	if err != nil {
		t.Fatal(err)
	}
	s := newDevStack(t, set, "")

	// The frontend: a page served on 127.0.0.1, which Chromium reaches as
	// http://localhost:3000 (--host-resolver-rules), the origin the
	// settings list.
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>frontend</title><p id="ready">ready</p>`)
	}))
	t.Cleanup(page.Close)
	_, port, _ := net.SplitHostPort(page.Listener.Addr().String())

	// The profile is removed after Chromium has exited; its last child
	// processes may still hold it for a moment, so removal is retried, and
	// a leftover is logged, not a failure of what the test checks.
	profile, err := os.MkdirTemp("", "corsproc-guide-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var err error
		for range 50 {
			if err = os.RemoveAll(profile); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("removing the Chromium profile %s: %v", profile, err)
	})
	life, cancelLife := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelLife()
	alloc, cancelAlloc := chromedp.NewExecAllocator(life,
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("host-resolver-rules", "MAP localhost:3000 127.0.0.1:"+port),
	)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(alloc)
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		chromedp.Cancel(cctx)
		cancelCtx()
	}()
	if err := chromedp.Do(ctx,
		chromedp.Navigate("http://localhost:3000/"),
		chromedp.WaitReady(chromedp.CSS("#ready")),
	); err != nil {
		t.Fatalf("opening the frontend: %v", err)
	}
	origin, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.origin`))
	if err != nil || origin != "http://localhost:3000" {
		t.Fatalf("the page's origin is %q (%v), want http://localhost:3000", origin, err)
	}

	type result struct {
		OK        bool   `json:"ok"`
		Body      string `json:"body"`
		RequestID string `json:"requestId"`
		Error     string `json:"error"`
	}
	fetch := func(path string, init map[string]any) result {
		t.Helper()
		initJSON, _ := json.Marshal(init)
		expr := fmt.Sprintf(`(async () => {
	try {
		const r = await fetch(%q, Object.assign(%s, {signal: AbortSignal.timeout(15000)}));
		return {ok: r.ok, body: await r.text(), requestId: r.headers.get("x-request-id") || "", error: ""};
	} catch (e) {
		return {ok: false, body: "", requestId: "", error: String(e && e.name)};
	}
})()`, s.front.URL+path, initJSON)
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		res, err := chromedp.Run(fctx, chromedp.Evaluate[result](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("fetch %s: %v", path, err)
		}
		return res
	}

	// A credentialed PUT with a JSON body and x-request-id: a preflight
	// first, then the request; the page reads the body and the exposed
	// x-request-id.
	got := fetch("/api/items", map[string]any{
		"method": "PUT", "credentials": "include", "body": `{"name":"x"}`,
		"headers": map[string]string{"Content-Type": "application/json", "X-Request-Id": "1"},
	})
	if !got.OK || got.Body != `{"ok":true}` || got.RequestID != "req-1" {
		t.Errorf("PUT /api/items from http://localhost:3000: %+v; want the body and x-request-id readable", got)
	}
	s.mu.Lock()
	seen := append([]string(nil), s.seen...)
	s.mu.Unlock()
	for _, r := range seen {
		if r == "OPTIONS /api/items" {
			t.Errorf("the application saw the preflight: %q", seen)
		}
	}
	// Outside CORS_URLS_REGEX the page reads nothing, as with DCH.
	if got := fetch("/health", map[string]any{}); got.Error != "TypeError" {
		t.Errorf("GET /health from http://localhost:3000: %+v; want a CORS failure (TypeError)", got)
	}
}
