package processor

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/corsproc/corsproc/policy"

	ctestutil "github.com/corsproc/corsproc/internal/testutil"
)

// A refused request's log line names the policy, the origin, the method,
// the preflight's requested method and headers, the exact value refused,
// and the request's host and path (without its query); at info level at
// most one line per RefusalLogInterval, the next saying how many were left
// out; at debug level every one.
func TestRefusalLog(t *testing.T) {
	var buf ctestutil.SyncBuffer
	srv := New(mustParse(t, semanticsYAML), Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	srv.logs = newLogLimiter(WarnLogInterval, clock.now)

	refused := preflight("api.example.com", "https://app.example.com", "PUT", acrhH("content-type, X-Api-Key"))
	refused.Path = "/api/items?token=secret"
	for range 5 {
		process(t, srv, nil, refused.message())
	}
	lines := logLines(buf.String(), "cors request refused")
	if len(lines) != 1 {
		t.Fatalf("%d refusal lines at info level within one interval, want 1:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{
		"level=INFO", "policy=web", "outcome=preflight_rejected", "reason=header_not_allowed",
		`refused="request header \"x-api-key\" is not in allow_headers of policy \"web\""`,
		"origin=https://app.example.com", "method=OPTIONS", "request_method=PUT",
		`request_headers="content-type, X-Api-Key"`, "host=api.example.com", "path=/api/items ", "suppressed=0",
	} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("the refusal line lacks %s:\n%s", want, lines[0])
		}
	}
	if strings.Contains(lines[0], "secret") {
		t.Errorf("the refusal line logs the query: %s", lines[0])
	}

	clock.advance(RefusalLogInterval)
	process(t, srv, nil, get("api.example.com", "https://evil.example").message())
	lines = logLines(buf.String(), "cors request refused")
	if len(lines) != 2 || !strings.Contains(lines[1], "suppressed=4") || !strings.Contains(lines[1], `refused="origin \"https://evil.example\" is not allowed by policy \"web\""`) {
		t.Fatalf("after the interval: want a second line with suppressed=4 naming the origin; got:\n%s", strings.Join(lines, ""))
	}
	// An allowed request logs no refusal.
	clock.advance(RefusalLogInterval)
	process(t, srv, nil, get("api.example.com", "https://app.example.com").message(), defaultUpstream())
	if n := len(logLines(buf.String(), "cors request refused")); n != 2 {
		t.Errorf("an allowed request logged a refusal: %d lines", n)
	}

	// At debug level every refusal is logged, and a value with a newline
	// stays on its line.
	var dbg ctestutil.SyncBuffer
	srv = New(mustParse(t, semanticsYAML), Options{Logger: slog.New(slog.NewTextHandler(&dbg, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	for range 3 {
		process(t, srv, nil, get("api.example.com", "https://evil.example\nlevel=ERROR forged=1").message(), defaultUpstream())
	}
	lines = logLines(dbg.String(), "cors request refused")
	if len(lines) != 3 {
		t.Fatalf("debug: %d refusal lines for 3 refusals, want 3:\n%s", len(lines), dbg.String())
	}
	if strings.Contains(dbg.String(), "\nlevel=ERROR forged") {
		t.Errorf("a client's newline started a log line of its own:\n%s", dbg.String())
	}
}

// With ExplainRefusals, a refused preflight's 403 says why in its body and
// X-Corsproc-Reason, and a refused actual request's response gets the
// header; without it (serve's default) neither, and allowed requests and
// shadow mode never get one.
func TestExplainRefusals(t *testing.T) {
	const why = `request header "x-api-key" is not in allow_headers of policy "web"`
	immediate := func(srv *Server, r envoyRequest) *extprocv3.ImmediateResponse {
		fs := newFakeStream(t, nil, r.message())
		if err := srv.Process(fs); err != nil {
			t.Fatal(err)
		}
		rs := fs.responses()
		if len(rs) != 1 || rs[0].GetImmediateResponse() == nil {
			t.Fatalf("want one immediate response, got %v", rs)
		}
		return rs[0].GetImmediateResponse()
	}
	header := func(ir interface {
		GetSetHeaders() []*corev3.HeaderValueOption
	}, name string) string {
		for _, h := range ir.GetSetHeaders() {
			if h.GetHeader().GetKey() == name {
				return string(h.GetHeader().GetRawValue())
			}
		}
		return ""
	}
	refused := preflight("api.example.com", "https://app.example.com", "PUT", acrhH("x-api-key"))

	srv := New(mustParse(t, semanticsYAML), Options{ExplainRefusals: true})
	ir := immediate(srv, refused)
	if got := header(ir.GetHeaders(), HeaderReason); got != why {
		t.Errorf("X-Corsproc-Reason = %q, want %q", got, why)
	}
	if string(ir.GetBody()) != why+"\n" || header(ir.GetHeaders(), "content-type") != "text/plain; charset=utf-8" {
		t.Errorf("body %q, content-type %q; want the reason as plain text", ir.GetBody(), header(ir.GetHeaders(), "content-type"))
	}
	if ir := immediate(srv, preflight("api.example.com", "https://app.example.com", "PUT")); header(ir.GetHeaders(), HeaderReason) != "" || len(ir.GetBody()) != 0 {
		t.Errorf("an allowed preflight explains a refusal: %v", ir)
	}
	// An actual request refused: the header lands on the upstream's response.
	fs := newFakeStream(t, nil, get("api.example.com", "https://evil.example").message(), defaultUpstream())
	if err := srv.Process(fs); err != nil {
		t.Fatal(err)
	}
	rs := fs.responses()
	if got := header(rs[len(rs)-1].GetResponseHeaders().GetResponse().GetHeaderMutation(), HeaderReason); got != `origin "https://evil.example" is not allowed by policy "web"` {
		t.Errorf("refused actual request: X-Corsproc-Reason = %q", got)
	}

	// Off by default.
	srv = New(mustParse(t, semanticsYAML), Options{})
	if ir := immediate(srv, refused); header(ir.GetHeaders(), HeaderReason) != "" || len(ir.GetBody()) != 0 {
		t.Errorf("without ExplainRefusals the 403 explains itself: %v", ir)
	}

	// Refused tells the caller of every refusal, with the decision.
	var seen []string
	srv = New(mustParse(t, semanticsYAML), Options{Refused: func(set *policy.Set, r *policy.Request, d *policy.Decision) {
		seen = append(seen, d.Refusal(r))
	}})
	immediate(srv, refused)
	process(t, srv, nil, get("api.example.com", "https://app.example.com").message(), defaultUpstream())
	if len(seen) != 1 || seen[0] != why {
		t.Errorf("Refused saw %q, want one call with %q", seen, why)
	}
}
