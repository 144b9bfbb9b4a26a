package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// devUpstream is the application behind dev: it records the paths it
// served.
type devUpstream struct {
	srv   *httptest.Server
	mu    sync.Mutex
	paths []string
}

func newDevUpstream(t *testing.T) *devUpstream {
	t.Helper()
	u := &devUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.paths = append(u.paths, r.Method+" "+r.URL.RequestURI())
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *devUpstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.paths)
}

// startDev runs `corsproc dev args...` until the test ends, and returns once
// it listens.
func startDev(t *testing.T, args ...string) *instance {
	t.Helper()
	return startCommand(t, "dev", args...)
}

// devDo sends a request to dev's listener and returns the response and its
// body.
func devDo(t *testing.T, method, url string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	resp, err := (&http.Client{Timeout: waitLimit}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestDevEnforcesTheDevelopmentPolicy(t *testing.T) {
	t.Parallel()
	up := newDevUpstream(t)
	in := startDev(t, "--upstream", up.srv.URL, "--listen", "127.0.0.1:0")
	base := "http://" + in.addrs.http
	const origin = "http://localhost:3000"

	// An actual CORS request from an allowed origin reaches the app and
	// comes back with the CORS headers.
	resp, body := devDo(t, "GET", base+"/api/items?page=2", "Origin: "+origin)
	if resp.StatusCode != 200 || body != `{"ok":true}` {
		t.Errorf("GET: %d %q, want the app's answer", resp.StatusCode, body)
	}
	if got := resp.Header.Values("Access-Control-Allow-Origin"); !slices.Equal(got, []string{origin}) {
		t.Errorf("GET: ACAO %q, want [%s]", got, origin)
	}
	if got := resp.Header.Values("Vary"); !slices.Contains(got, "Origin") {
		t.Errorf("GET: Vary %q, want Origin", got)
	}

	// A preflight is answered by corsproc; the app never sees it.
	resp, _ = devDo(t, "OPTIONS", base+"/api/items",
		"Origin: "+origin, "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: content-type")
	if resp.StatusCode != 204 {
		t.Errorf("preflight: status %d, want 204", resp.StatusCode)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != origin || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Errorf("preflight headers %v", resp.Header)
	}

	// An origin the development policy does not allow gets no ACAO.
	resp, _ = devDo(t, "GET", base+"/api/items", "Origin: https://evil.example")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin: %d with ACAO %q, want 200 without", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}

	if got, want := up.seen(), []string{"GET /api/items?page=2", "GET /api/items"}; !slices.Equal(got, want) {
		t.Errorf("the app saw %q, want %q (no preflight)", got, want)
	}

	logs := in.logs.String()
	for _, s := range []string{
		`level=WARN msg="no --policy given: enforcing the embedded development policy`,
		`level=INFO msg="corsproc dev listening" listen=` + in.addrs.http + " upstream=" + up.srv.URL,
		`policy="` + policyfile.DevelopmentSource + `" policies=1`,
	} {
		if !strings.Contains(logs, s) {
			t.Errorf("logs do not contain %q:\n%s", s, logs)
		}
	}
	if n := strings.Count(logs, `msg="corsproc dev listening"`); n != 1 {
		t.Errorf("%d startup lines, want 1:\n%s", n, logs)
	}

	// SIGTERM: a clean stop, and the listener is gone.
	if err := in.stop(t); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if c, err := net.DialTimeout("tcp", in.addrs.http, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Run returned", in.addrs.http)
	}
}

func TestDevPolicyFileJSONLog(t *testing.T) {
	t.Parallel()
	up := newDevUpstream(t)
	file := filepath.Join("testdata", "two_policies.yaml")
	in := startDev(t, "--upstream", up.srv.URL, "--listen", "127.0.0.1:0", "--policy", file, "--log-format", "json", "--log-level", "debug")
	base := "http://" + in.addrs.http

	resp, _ := devDo(t, "GET", base+"/admin/users", "Origin: https://admin.example.com")
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://admin.example.com" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("admin policy headers %v", resp.Header)
	}
	// The development policy is not active: localhost is foreign here.
	resp, _ = devDo(t, "OPTIONS", base+"/admin/users", "Origin: http://localhost:3000", "Access-Control-Request-Method: DELETE")
	if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("rejected preflight: %d %v, want 403 without CORS headers", resp.StatusCode, resp.Header)
	}
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}

	lines := logLines(t, in.logs.String())
	started := findLog(lines, "corsproc dev listening")
	if len(started) != 1 {
		t.Fatalf("%d startup lines, want 1:\n%s", len(started), in.logs)
	}
	for k, want := range map[string]any{
		"level":    "INFO",
		"listen":   in.addrs.http,
		"upstream": up.srv.URL,
		"policy":   file,
		"policies": float64(2),
		"grpc":     in.addrs.grpc,
	} {
		if got := started[0][k]; got != want {
			t.Errorf("startup line %s = %v, want %v", k, got, want)
		}
	}
	// --log-level debug logs each request, as an access log.
	requests := findLog(lines, "request")
	if len(requests) != 2 {
		t.Fatalf("%d request lines, want 2:\n%s", len(requests), in.logs)
	}
	for k, want := range map[string]any{"method": "OPTIONS", "path": "/admin/users", "status": float64(403), "details": "cors_preflight_rejected", "ext_proc_messages": float64(1), "upstream": false} {
		if got := requests[1][k]; got != want {
			t.Errorf("request line %s = %v, want %v", k, got, want)
		}
	}
	if w := findLog(lines, "no --policy given: enforcing the embedded development policy, which allows only the origins http://localhost:*, http://127.0.0.1:* and http://[::1]:*"); len(w) > 0 {
		t.Error("development policy warning with --policy")
	}
}

func TestDevInvalidPolicyListensNowhere(t *testing.T) {
	t.Parallel()
	// Hold the port dev is told to use: had it bound before validating, it
	// would fail with "address already in use" instead.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	e := &env{stdout: io.Discard, stderr: io.Discard, ready: func(l listening) { t.Errorf("dev listens on %v with an invalid policy", l) }}
	err = run(t.Context(), []string{"dev", "--upstream", "http://127.0.0.1:1", "--listen", held.Addr().String(),
		"--policy", filepath.Join("testdata", "three_errors.yaml")}, e)
	if err == nil {
		t.Fatal("dev accepted an invalid policy file")
	}
	if got := exitCode(err); got != 1 {
		t.Errorf("exitCode = %d, want 1", got)
	}
	if strings.Contains(err.Error(), "address already in use") || strings.Contains(err.Error(), "listener") {
		t.Errorf("dev tried to listen before validating the policy: %v", err)
	}
	var verr *policy.ValidationError
	if !errors.As(err, &verr) || len(verr.Errors()) != 3 {
		t.Errorf("error %v, want all 3 validation errors", err)
	}
}

func TestDevUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{}, []string{"--upstream is required"}},
		{[]string{"--upstream", "127.0.0.1:8000"}, []string{`--upstream "127.0.0.1:8000"`}},
		{[]string{"--upstream", "ftp://127.0.0.1"}, []string{`--upstream "ftp://127.0.0.1"`}},
		{[]string{"--upstream", "http://"}, []string{`--upstream "http://"`}},
		{[]string{"--upstream", "http://127.0.0.1:8000/api"}, []string{"no path"}},
		{[]string{"--upstream", "http://127.0.0.1:8000", "--listen", "8080"}, []string{`--listen "8080"`}},
		{[]string{"--upstream", "http://127.0.0.1:8000", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"--upstream", "http://127.0.0.1:8000", "--admin", "nowhere"}, []string{`--admin "nowhere"`}},
		{[]string{"--upstream"}, []string{"flag needs an argument: -upstream"}},
		// Every problem at once.
		{
			[]string{"--listen", "nowhere", "--log-format", "xml", "--log-level", "loud"},
			[]string{"--upstream is required", `--listen "nowhere"`, `--log-format "xml"`, `--log-level "loud"`},
		},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			// A cancelled context: were the arguments wrongly accepted, dev
			// would stop at once rather than run.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			var stdout bytes.Buffer
			err := Run(ctx, append([]string{"dev"}, tc.args...), &stdout, io.Discard)
			if err == nil {
				t.Fatalf("dev %q = nil, want a usage error", tc.args)
			}
			if got := exitCode(err); got != 2 {
				t.Errorf("exitCode(%v) = %d, want 2", err, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if stdout.Len() > 0 {
				t.Errorf("a usage error wrote to stdout: %s", stdout.String())
			}
		})
	}
}

func TestDevHelp(t *testing.T) {
	t.Parallel()
	var defined []string
	newDevFlags(new(devConfig)).VisitAll(func(f *flag.Flag) { defined = append(defined, f.Name) })
	if got, want := strings.Join(defined, " "), "admin listen log-format log-level policy policy-name upstream"; got != want {
		t.Errorf("dev defines flags %q, want %q: update this test and the docs", got, want)
	}
	for _, args := range [][]string{{"dev", "--help"}, {"dev", "-h"}, {"help", "dev"}} {
		var stdout bytes.Buffer
		if err := Run(t.Context(), args, &stdout, io.Discard); err != nil {
			t.Fatalf("Run(%q) = %v", args, err)
		}
		out := stdout.String()
		for _, name := range defined {
			if !strings.Contains(out, "--"+name+" ") {
				t.Errorf("%q does not describe --%s:\n%s", args, name, out)
			}
		}
		for _, s := range []string{"Usage: corsproc dev", `"127.0.0.1:8080"`, "http://127.0.0.1:8000", "required"} {
			if !strings.Contains(out, s) {
				t.Errorf("%q does not mention %s:\n%s", args, s, out)
			}
		}
	}
	var stdout bytes.Buffer
	if err := Run(t.Context(), []string{"--help"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "\n  dev ") {
		t.Errorf("corsproc --help does not list dev:\n%s", stdout.String())
	}
}

// TestDevDrainsRequestsInFlight: on SIGTERM the emulated Envoy stops taking
// requests, and a request already in flight still completes, with the CORS
// headers of corsproc, which drains only after it.
func TestDevDrainsRequestsInFlight(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "late")
	}))
	defer up.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	in := startDev(t, "--upstream", up.URL, "--listen", "127.0.0.1:0")
	const origin = "http://localhost:3000"

	type answer struct {
		resp *http.Response
		body string
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+in.addrs.http+"/slow", nil)
		req.Header.Set("Origin", origin)
		resp, err := (&http.Client{Timeout: waitLimit}).Do(req)
		if err != nil {
			answered <- answer{}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		answered <- answer{resp, string(body)}
	}()
	select {
	case <-arrived:
	case <-time.After(waitLimit):
		t.Fatal("the request did not reach the upstream")
	}

	in.cancel()
	// Shutdown has begun once the listener refuses new connections.
	deadline := time.Now().Add(waitLimit)
	for {
		c, err := net.DialTimeout("tcp", in.addrs.http, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("dev still takes connections after SIGTERM\n%s", in.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)

	var a answer
	select {
	case a = <-answered:
	case <-time.After(waitLimit):
		t.Fatal("the request in flight got no answer")
	}
	if a.resp == nil {
		t.Fatalf("the request in flight failed\n%s", in.logs)
	}
	if a.resp.StatusCode != 200 || a.body != "late" {
		t.Errorf("the request in flight: %d %q, want the upstream's answer", a.resp.StatusCode, a.body)
	}
	if got := a.resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("the request in flight: ACAO %q, want %s: corsproc stopped answering before it", got, origin)
	}
	if err := in.wait(t); err != nil {
		t.Errorf("Run after the drain = %v, want nil", err)
	}
	logs := in.logs.String()
	if !strings.Contains(logs, "msg=drained") || strings.Contains(logs, "drain deadline passed") ||
		strings.Contains(logs, "requests still in flight") {
		t.Errorf("want a drain within the deadlines, nothing cut:\n%s", logs)
	}
}

// With its application down, dev answers as the newest Envoy release does:
// Envoy's 503, which goes through corsproc's response phase and so carries
// the CORS headers the policy gives an allowed origin; the browser shows the
// real error, not a CORS error. dev also warns that the upstream is
// unreachable.
func TestDevUpstreamUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	in := startDev(t, "--upstream", dead, "--listen", "127.0.0.1:0")
	const origin = "http://localhost:3000"
	resp, body := devDo(t, "GET", "http://"+in.addrs.http+"/api/items", "Origin: "+origin)
	if resp.StatusCode != 503 || !strings.HasPrefix(body, "upstream connect error") {
		t.Errorf("%d %q, want Envoy's 503", resp.StatusCode, body)
	}
	if got := resp.Header.Values("Access-Control-Allow-Origin"); !slices.Equal(got, []string{origin}) {
		t.Errorf("ACAO %q, want [%s]: the browser would report a CORS error instead of the 503", got, origin)
	}
	if got := resp.Header.Get("Vary"); got != "Origin" {
		t.Errorf("Vary %q, want Origin", got)
	}
	// The access log, and so the warning, follows the response.
	const want = `level=WARN msg="upstream unreachable: is the application running at --upstream? answered 503" upstream=`
	deadline := time.Now().Add(waitLimit)
	for !strings.Contains(in.logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning %q in the logs:\n%s", want, in.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
