package browser

// What a real browser does with corsproc's answers. Each test starts its own
// request path and its own Chromium; inside a test, every case that must fail
// uses its own URL path, since Chromium caches a successful preflight per URL.

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// upstreamBody is the body the upstream answers to method path.
func upstreamBody(method, path string) string { return "upstream saw " + method + " " + path }

// A simple GET from an allowed origin: the browser hands JavaScript the body,
// and corsproc answered with the page origin in ACAO.
func TestAllowedGETReadableByJavaScript(t *testing.T) {
	e := newEnv(t)
	b := newTab(t)
	b.open(e.pageOrigin)

	const path = "/allowed/get"
	res := b.fetch(e.apiOrigin+path, nil)
	wantOK(t, "GET from the allowed origin", res, upstreamBody("GET", path))

	got := e.upstream.requests("GET", path)
	if len(got) != 1 || got[0].Header.Get("Origin") != e.pageOrigin {
		t.Errorf("upstream saw %+v; want one GET with Origin %s", got, e.pageOrigin)
	}
	ex := e.api.last(t, "GET", path)
	if acao := ex.Response.Values("Access-Control-Allow-Origin"); !slices.Equal(acao, []string{e.pageOrigin}) {
		t.Errorf("ACAO sent to the browser = %q; want exactly [%s]", acao, e.pageOrigin)
	}
	if len(e.api.preflights(path)) != 0 {
		t.Errorf("a simple GET was preflighted")
	}
}

// An origin in no policy cannot read anything: fetch rejects with TypeError,
// even when the upstream itself sends ACAO: * (corsproc strips it), and a
// preflighted request is stopped at the preflight.
func TestDisallowedOriginRejected(t *testing.T) {
	e := newEnv(t)
	b := newTab(t)
	b.open(e.otherOrigin)

	t.Run("simple GET", func(t *testing.T) {
		const path = "/disallowed/get"
		h := wantReadWithheld(t, e, b, path, "GET from an origin in no policy", nil)
		// corsproc's own mark on a disallowed origin's response: the
		// rejection is its decision, not a missing answer.
		if !hasToken(strings.Join(h.Values("Vary"), ","), "Origin") {
			t.Errorf("Vary = %q; want Origin in it", h.Values("Vary"))
		}
	})

	t.Run("upstream sends its own ACAO", func(t *testing.T) {
		const path = "/upstream-cors/disallowed"
		wantReadWithheld(t, e, b, path, "GET whose upstream answers ACAO: *", nil)
	})

	t.Run("preflighted PUT", func(t *testing.T) {
		wantStoppedAtPreflight(t, e, b, "/disallowed/put", "PUT from an origin in no policy", map[string]any{
			"method": "PUT", "headers": map[string]string{"X-Allowed": "1"}, "body": "payload",
		})
	})

	// Control: the same upstream path read from the allowed origin works,
	// with corsproc's ACAO replacing the upstream's *.
	t.Run("control from the allowed origin", func(t *testing.T) {
		b.open(e.pageOrigin)
		const path = "/upstream-cors/allowed"
		wantOK(t, "GET from the allowed origin", b.fetch(e.apiOrigin+path, nil), upstreamBody("GET", path))
		if acao := e.api.last(t, "GET", path).Response.Values("Access-Control-Allow-Origin"); !slices.Equal(acao, []string{e.pageOrigin}) {
			t.Errorf("ACAO sent to the browser = %q; want exactly [%s]", acao, e.pageOrigin)
		}
	})
	wantNoUpstreamOptions(t, e)
}

// A PUT with a custom header is preflighted. corsproc answers the preflight
// itself, so the upstream sees the PUT and never the OPTIONS; a header or a
// method the policy does not allow fails the preflight and nothing reaches
// the upstream.
func TestPreflightedPUT(t *testing.T) {
	e := newEnv(t)
	b := newTab(t)
	b.open(e.pageOrigin)

	t.Run("allowed", func(t *testing.T) {
		const path = "/put/allowed"
		res := b.fetch(e.apiOrigin+path, map[string]any{
			"method": "PUT", "headers": map[string]string{"X-Allowed": "yes"}, "body": "payload",
		})
		wantOK(t, "PUT with an allowed header", res, upstreamBody("PUT", path))
		pf := wantPreflights(t, e, path, 1, 204)
		if len(pf) == 1 {
			h := pf[0].Response
			if got := h.Get("Access-Control-Allow-Origin"); got != e.pageOrigin {
				t.Errorf("preflight ACAO = %q; want %q", got, e.pageOrigin)
			}
			if got := h.Get("Access-Control-Allow-Methods"); !hasToken(got, "PUT") {
				t.Errorf("preflight ACAM = %q; want PUT in it", got)
			}
			if got := h.Get("Access-Control-Allow-Headers"); !hasToken(strings.ToLower(got), "x-allowed") {
				t.Errorf("preflight ACAH = %q; want x-allowed in it", got)
			}
		}
		got := e.upstream.requests("", path)
		if len(got) != 1 || got[0].Method != "PUT" || got[0].Header.Get("X-Allowed") != "yes" {
			t.Errorf("upstream saw %+v; want exactly the PUT, with X-Allowed: yes", got)
		}
	})

	t.Run("header not allowed", func(t *testing.T) {
		wantStoppedAtPreflight(t, e, b, "/put/header-not-allowed", "PUT with a header outside allow_headers", map[string]any{
			"method": "PUT", "headers": map[string]string{"X-Not-Allowed": "1"}, "body": "payload",
		})
	})

	t.Run("method not allowed", func(t *testing.T) {
		wantStoppedAtPreflight(t, e, b, "/put/method-not-allowed", "DELETE outside allow_methods", map[string]any{"method": "DELETE"})
	})
	wantNoUpstreamOptions(t, e)
}

// A credentialed fetch carries the cookie the API origin set. The browser
// lets JavaScript read the answer only under a policy with
// allow_credentials, whether the policy is bound by route name or by the
// route's x-corsproc-policy metadata.
func TestCredentialedFetch(t *testing.T) {
	e := newEnv(t)
	b := newTab(t)

	// The API origin sets the session cookie on a top-level navigation,
	// through the emulator and corsproc like any other request.
	b.navigate(e.apiOrigin + "/set-cookie")
	if sc := e.api.last(t, "GET", "/set-cookie").Response.Get("Set-Cookie"); !strings.HasPrefix(sc, sessionCookie) {
		t.Fatalf("Set-Cookie reaching the browser = %q; want %s…", sc, sessionCookie)
	}
	b.open(e.pageOrigin)

	include := map[string]any{"credentials": "include"}
	for _, tc := range []struct {
		name, path string
	}{
		{"policy bound by route name", "/credentials/get"},
		{"policy bound by x-corsproc-policy metadata", "/credentials-meta/get"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantOK(t, "credentialed GET", b.fetch(e.apiOrigin+tc.path, include), upstreamBody("GET", tc.path))
			wantCookie(t, e, tc.path, true)
			h := e.api.last(t, "GET", tc.path).Response
			if h.Get("Access-Control-Allow-Origin") != e.pageOrigin || h.Get("Access-Control-Allow-Credentials") != "true" {
				t.Errorf("ACAO %q, ACAC %q; want %s and true", h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials"), e.pageOrigin)
			}
		})
	}

	t.Run("preflighted credentialed PUT", func(t *testing.T) {
		const path = "/credentials/put"
		res := b.fetch(e.apiOrigin+path, map[string]any{
			"method": "PUT", "credentials": "include", "headers": map[string]string{"X-Allowed": "1"}, "body": "payload",
		})
		wantOK(t, "credentialed PUT", res, upstreamBody("PUT", path))
		if pf := wantPreflights(t, e, path, 1, 204); len(pf) == 1 {
			if got := pf[0].Response.Get("Access-Control-Allow-Credentials"); got != "true" {
				t.Errorf("preflight ACAC = %q; want true", got)
			}
		}
		wantCookie(t, e, path, true)
	})

	t.Run("policy without allow_credentials", func(t *testing.T) {
		const path = "/no-credentials/get"
		wantCORSError(t, "credentialed GET under a policy without credentials", b.fetch(e.apiOrigin+path, include))
		// The browser did send the cookie; it refuses to hand over the
		// answer because ACAC is missing.
		wantCookie(t, e, path, true)
		if got := e.api.last(t, "GET", path).Response.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("ACAC = %q under a policy without allow_credentials", got)
		}
	})

	t.Run("without credentials: include", func(t *testing.T) {
		const path = "/credentials/omitted"
		wantOK(t, "GET without credentials", b.fetch(e.apiOrigin+path, nil), upstreamBody("GET", path))
		wantCookie(t, e, path, false)
	})
	wantNoUpstreamOptions(t, e)
}

// expose_headers decides which response headers JavaScript may read.
func TestExposeHeaders(t *testing.T) {
	e := newEnv(t)
	b := newTab(t)
	b.open(e.pageOrigin)

	const path = "/expose/get"
	res := b.fetch(e.apiOrigin+path, nil, "x-exposed", "x-hidden", "content-type")
	wantOK(t, "GET", res, upstreamBody("GET", path))
	if got := res.Headers["x-exposed"]; got == nil || *got != exposedValue {
		t.Errorf("headers.get('x-exposed') = %v; want %q", deref(got), exposedValue)
	}
	if got := res.Headers["x-hidden"]; got != nil {
		t.Errorf("headers.get('x-hidden') = %q; want null (not in expose_headers)", *got)
	}
	if got := res.Headers["content-type"]; got == nil {
		t.Errorf("headers.get('content-type') = null; a safelisted response header is always readable")
	}
	// The null above is the browser's doing: the header was on the wire.
	h := e.api.last(t, "GET", path).Response
	if h.Get("X-Hidden") != hiddenValue {
		t.Errorf("X-Hidden = %q on the wire; want %q", h.Get("X-Hidden"), hiddenValue)
	}
	if got := h.Get("Access-Control-Expose-Headers"); !hasToken(strings.ToLower(got), "x-exposed") || hasToken(strings.ToLower(got), "x-hidden") {
		t.Errorf("ACEH = %q; want x-exposed and not x-hidden", got)
	}
}

// preflight_max_age reaches the browser and the browser obeys it: within the
// age it sends no second preflight, and after a short age it sends one again,
// sooner than its 5-second default for a preflight without Max-Age.
func TestPreflightMaxAge(t *testing.T) {
	e := newEnv(t)
	b := newTab(t)
	b.open(e.pageOrigin)

	put := map[string]any{"method": "PUT", "headers": map[string]string{"X-Allowed": "1"}, "body": "payload"}

	// preflight_max_age: 60. Two PUTs in a row: one preflight.
	const long = "/max-age-long/put"
	for i := range 2 {
		wantOK(t, "PUT under max age 60", b.fetch(e.apiOrigin+long, put), upstreamBody("PUT", long))
		if i == 0 {
			if pf := wantPreflights(t, e, long, 1, 204); len(pf) == 1 && pf[0].Response.Get("Access-Control-Max-Age") != "60" {
				t.Errorf("ACMA = %q; want 60", pf[0].Response.Get("Access-Control-Max-Age"))
			}
		}
	}
	wantPreflights(t, e, long, 1, 204)
	if got := len(e.upstream.requests("PUT", long)); got != 2 {
		t.Errorf("upstream saw %d PUTs; want 2", got)
	}

	// preflight_max_age: 1. The browser preflights again once the second is
	// over: repeat the PUT until it does. chromiumDefaultMaxAge is what
	// Chromium uses without ACMA, so a second preflight before it shows
	// that the 1 was obeyed.
	const chromiumDefaultMaxAge = 5 * time.Second
	const short = "/max-age-short/put"
	wantOK(t, "PUT under max age 1", b.fetch(e.apiOrigin+short, put), upstreamBody("PUT", short))
	first := wantPreflights(t, e, short, 1, 204)
	if len(first) != 1 {
		t.FailNow()
	}
	if got := first[0].Response.Get("Access-Control-Max-Age"); got != "1" {
		t.Fatalf("ACMA = %q; want 1", got)
	}
	deadline := first[0].At.Add(chromiumDefaultMaxAge - 500*time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for len(e.api.preflights(short)) < 2 {
		select {
		case <-ctx.Done():
			t.Fatalf("no second preflight within %v of the first; the browser did not obey ACMA: 1", chromiumDefaultMaxAge-500*time.Millisecond)
		case <-tick.C:
		}
		wantOK(t, "PUT under max age 1", b.fetch(e.apiOrigin+short, put), upstreamBody("PUT", short))
	}
	pf := wantPreflights(t, e, short, 2, 204)
	if gap := pf[1].At.Sub(pf[0].At); gap < time.Second {
		t.Errorf("second preflight %v after the first; the browser should cache it for 1s", gap)
	}

	// Well past the short age, the long one still holds.
	wantOK(t, "PUT under max age 60", b.fetch(e.apiOrigin+long, put), upstreamBody("PUT", long))
	wantPreflights(t, e, long, 1, 204)
	wantNoUpstreamOptions(t, e)
}

// wantPreflights checks that the browser sent n preflights for path, each
// answered with status, and returns them.
func wantPreflights(t *testing.T, e *env, path string, n, status int) []exchange {
	t.Helper()
	pf := e.api.preflights(path)
	if len(pf) != n {
		t.Errorf("%d preflights for %s; want %d", len(pf), path, n)
	}
	for _, p := range pf {
		if p.Status != status {
			t.Errorf("preflight for %s answered %d; want %d (response headers %v)", path, p.Status, status, p.Response)
		}
	}
	return pf
}

// wantReadWithheld fetches path (a simple GET) from b's page with init and
// checks that the page cannot read the answer: fetch rejects with a CORS
// error (what names the request), and the response sent to the browser has
// no Access-Control-Allow-Origin. CORS protects reading, not sending: the
// upstream saw the GET once. It returns the headers sent to the browser.
func wantReadWithheld(t *testing.T, e *env, b *tab, path, what string, init map[string]any) http.Header {
	t.Helper()
	wantCORSError(t, what, b.fetch(e.apiOrigin+path, init))
	if got := e.upstream.requests("GET", path); len(got) != 1 {
		t.Errorf("%s: upstream saw %d GETs; want 1", what, len(got))
	}
	h := e.api.last(t, "GET", path).Response
	if acao := h.Values("Access-Control-Allow-Origin"); len(acao) != 0 {
		t.Errorf("%s: ACAO %q reached the browser", what, acao)
	}
	return h
}

// wantStoppedAtPreflight fetches path from b's page with init and checks
// that the preflight stopped the request: fetch rejects with a CORS error
// (what names the request), corsproc answered the one preflight with 403,
// and the upstream saw neither the preflight nor the request.
func wantStoppedAtPreflight(t *testing.T, e *env, b *tab, path, what string, init map[string]any) {
	t.Helper()
	wantCORSError(t, what, b.fetch(e.apiOrigin+path, init))
	wantPreflights(t, e, path, 1, 403)
	if got := e.upstream.requests("", path); len(got) != 0 {
		t.Errorf("%s: upstream saw %+v; want neither the preflight nor the request", what, got)
	}
}

// wantCookie checks whether the session cookie reached the upstream on
// every request for path.
func wantCookie(t *testing.T, e *env, path string, want bool) {
	t.Helper()
	got := e.upstream.requests("", path)
	if len(got) == 0 {
		t.Errorf("upstream never saw %s", path)
	}
	for _, r := range got {
		if has := strings.Contains(r.Header.Get("Cookie"), sessionCookie); has != want {
			t.Errorf("%s %s reached the upstream with Cookie %q; want the session cookie: %v", r.Method, path, r.Header.Get("Cookie"), want)
		}
	}
}

// hasToken reports whether the comma-separated list holds tok.
func hasToken(list, tok string) bool {
	for v := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(v) == tok {
			return true
		}
	}
	return false
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// unmatched_preflight: forward sends a preflight corsproc refuses to the
// application, which here answers with every CORS header that would allow
// it. corsproc removes them, so the browser's preflight fails and the PUT
// is never sent: the application cannot allow what corsproc refused. A
// preflight the policy allows is answered by corsproc as usual.
func TestForwardedPreflightCannotAllow(t *testing.T) {
	e := newEnv(t)
	b := newTab(t)
	b.open(e.pageOrigin)

	t.Run("refused header", func(t *testing.T) {
		const path = "/forward/upstream-cors-all/denied"
		wantCORSError(t, "PUT with a header the policy refuses", b.fetch(e.apiOrigin+path, map[string]any{
			"method": "PUT", "headers": map[string]string{"X-Denied": "1"}, "body": "payload",
		}))
		pf := wantPreflights(t, e, path, 1, 200)
		if len(pf) == 1 {
			for k := range pf[0].Response {
				if strings.HasPrefix(strings.ToLower(k), "access-control-") {
					t.Errorf("the forwarded preflight's response kept the upstream's %s: %q", k, pf[0].Response.Values(k))
				}
			}
		}
		if got := e.upstream.requests("", path); len(got) != 1 || got[0].Method != "OPTIONS" {
			t.Errorf("upstream saw %+v; want the forwarded preflight only, never the PUT", got)
		}
	})

	t.Run("allowed header", func(t *testing.T) {
		const path = "/forward/upstream-cors-all/allowed"
		res := b.fetch(e.apiOrigin+path, map[string]any{
			"method": "PUT", "headers": map[string]string{"X-Allowed": "1"}, "body": "payload",
		})
		wantOK(t, "PUT with an allowed header", res, upstreamBody("PUT", path))
		wantPreflights(t, e, path, 1, 204)
		if got := e.upstream.requests("OPTIONS", path); len(got) != 0 {
			t.Errorf("upstream saw %d preflights; corsproc answers the ones it allows", len(got))
		}
	})
}

// A route whose x-corsproc-policy names a policy the set does not define
// is governed and refused: the application's own CORS headers (here, every
// one that would allow the request, credentials included) are removed, so
// the page cannot read the response, and a preflighted request stops at
// corsproc's 403.
func TestUnknownPolicyCannotAllow(t *testing.T) {
	e := newEnv(t)
	b := newTab(t)
	b.open(e.pageOrigin)

	t.Run("simple GET", func(t *testing.T) {
		const path = "/typo/upstream-cors-all/get"
		wantReadWithheld(t, e, b, path, "GET on a route naming an unknown policy", map[string]any{"credentials": "include"})
	})

	t.Run("preflighted PUT", func(t *testing.T) {
		wantStoppedAtPreflight(t, e, b, "/typo/upstream-cors-all/put", "PUT on a route naming an unknown policy", map[string]any{
			"method": "PUT", "headers": map[string]string{"X-Allowed": "1"}, "body": "payload",
		})
	})
	wantNoUpstreamOptions(t, e)
}
