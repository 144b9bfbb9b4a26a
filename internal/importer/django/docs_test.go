package django_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/corsproc/corsproc/envoy/emulator"
	"github.com/corsproc/corsproc/internal/importer/django"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"
)

// guideBlockRE finds the code blocks of docs/migrating-from-django.md that
// the walk-through below runs: each follows a "<!-- guide: NAME -->" line.
var guideBlockRE = regexp.MustCompile("(?s)<!-- guide: ([a-z-]+) -->\n```[a-z]*\n(.*?)```")

func guideBlocks(t *testing.T) (string, map[string]string) {
	t.Helper()
	data, err := os.ReadFile("../../../docs/migrating-from-django.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	for _, m := range guideBlockRE.FindAllStringSubmatch(string(data), -1) {
		blocks[m[1]] = m[2]
	}
	for _, name := range []string{"settings", "production", "production-warnings", "production-edited", "development"} {
		if blocks[name] == "" {
			t.Fatalf("the guide lost its %s block", name)
		}
	}
	return string(data), blocks
}

func warningLines(ws []django.Warning) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString("warning: " + w.String() + "\n")
	}
	return b.String()
}

// envLine is the comment the importer writes where the origins of
// CORS_EXTRA_ORIGINS belong; the guide's reader replaces it.
var envLine = regexp.MustCompile(`(?m)^      # \+ what os\.environ\.get\("CORS_EXTRA_ORIGINS"\).*\n`)

// TestMigrationGuide walks docs/migrating-from-django.md as a reader does:
// it imports the guide's settings file for each DEBUG profile and checks
// that the guide shows exactly what the importer prints, that the import
// exits 1 until the environment's origins are written in, that the edited
// file passes check --strict, and that each profile's policy answers the
// browser's requests through corsproc dev's path (the emulated Envoy, as
// dev configures it, in front of a recording application), with
// --policy-name on the file that holds both profiles.
func TestMigrationGuide(t *testing.T) {
	doc, blocks := guideBlocks(t)
	settings := []byte(blocks["settings"])
	for _, cmd := range []string{
		"corsproc import django --debug=false settings.py > cors.yaml",
		"corsproc import django --debug=true settings.py > cors-dev.yaml",
		"corsproc check --strict cors.yaml",
		"corsproc import django settings.py > cors-both.yaml",
		"--policy cors-dev.yaml",
		"--policy cors-both.yaml --policy-name django-debug",
	} {
		if !strings.Contains(doc, cmd) {
			t.Errorf("the guide no longer runs %q", cmd)
		}
	}

	// Production: the guide's YAML and warnings, exit 1.
	prod, err := django.ImportWith("settings.py", settings, django.Options{Profile: django.ProductionProfile})
	if err != nil {
		t.Fatal(err)
	}
	if string(prod.YAML) != blocks["production"] {
		t.Errorf("the guide's production policy differs from the importer's:\n--- guide\n%s--- importer\n%s", blocks["production"], prod.YAML)
	}
	if got := warningLines(prod.Warnings); got != blocks["production-warnings"] {
		t.Errorf("the guide's warnings differ from the importer's:\n--- guide\n%s--- importer\n%s", blocks["production-warnings"], got)
	}
	if prod.LoadError != nil || !prod.Incomplete() {
		t.Errorf("production: LoadError %v, Incomplete %t; the guide says it loads and exits 1", prod.LoadError, prod.Incomplete())
	}

	// The reader writes in what production's CORS_EXTRA_ORIGINS holds.
	if !envLine.Match(prod.YAML) {
		t.Fatalf("no comment marks the environment's origins:\n%s", prod.YAML)
	}
	edited := envLine.ReplaceAllString(string(prod.YAML), "      - https://partners.example.com\n")
	if !strings.Contains(edited, blocks["production-edited"]) {
		t.Errorf("the guide's edited list is not the imported file with the comment replaced:\n--- guide\n%s--- edited\n%s", blocks["production-edited"], edited)
	}
	prodSet, err := policyfile.Parse("cors.yaml", []byte(edited))
	if err != nil {
		t.Fatalf("the edited file does not load: %v", err)
	}
	if ws := prodSet.Warnings(); len(ws) > 0 || !strings.Contains(doc, "`cors.yaml: valid: 1 policy, 0 warnings`") {
		t.Errorf("check --strict: %v", ws)
	}

	// Development: the same policy name, the local origins too.
	dev, err := django.ImportWith("settings.py", settings, django.Options{Profile: django.DebugProfile})
	if err != nil {
		t.Fatal(err)
	}
	if string(dev.YAML) != blocks["development"] {
		t.Errorf("the guide's development policy differs from the importer's:\n--- guide\n%s--- importer\n%s", blocks["development"], dev.YAML)
	}
	where := func(ws []django.Warning) []string {
		var out []string
		for _, w := range ws {
			out = append(out, w.File+":"+w.Setting)
		}
		return out
	}
	if !slices.Equal(where(dev.Warnings), where(prod.Warnings)) || !dev.Incomplete() {
		t.Errorf("development warnings %v (Incomplete %t); the guide says: the same as production's, exit 1", dev.Warnings, dev.Incomplete())
	}
	devSet, err := policyfile.Parse("cors-dev.yaml", []byte(envLine.ReplaceAllString(string(dev.YAML), "")))
	if err != nil {
		t.Fatalf("the development file does not load: %v", err)
	}

	// Both profiles in one file: django and django-debug.
	both, err := django.Import("settings.py", settings)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(both.Policies, []string{django.PolicyName, django.DebugPolicyName}) {
		t.Errorf("one file for both profiles holds %q", both.Policies)
	}
	bothSet, err := policyfile.Parse("cors-both.yaml", []byte(envLine.ReplaceAllString(string(both.YAML), "")))
	if err != nil {
		t.Fatalf("the file of both profiles does not load: %v", err)
	}

	const local = "http://localhost:3000"
	t.Run("dev_development_profile", func(t *testing.T) {
		s := newDevStack(t, devSet, "")
		s.wantLocalAllowed(t, "/api/items")
		if resp, _ := s.do(t, "GET", "/health", "Origin: "+local); resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("/health got CORS headers; DCH applied CORS only under /api/: %v", resp.Header)
		}
	})
	t.Run("dev_policy_name", func(t *testing.T) {
		s := newDevStack(t, bothSet, django.DebugPolicyName)
		s.wantLocalAllowed(t, "/api/items")
		// The route's metadata selects the policy for every path.
		if resp, _ := s.do(t, "GET", "/health", "Origin: "+local); resp.Header.Get("Access-Control-Allow-Origin") != local {
			t.Errorf("/health under --policy-name: %v", resp.Header)
		}
	})
	t.Run("production_profile", func(t *testing.T) {
		s := newDevStack(t, prodSet, "")
		if resp, _ := s.do(t, "GET", "/api/items", "Origin: "+local); resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("production allows %s: %v", local, resp.Header)
		}
		resp, _ := s.do(t, "GET", "/api/items", "Origin: https://partners.example.com")
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://partners.example.com" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("production refuses the origin written in by hand: %v", resp.Header)
		}
	})
}

// devStack is corsproc dev's request path: corsproc on loopback gRPC, an
// emulated Envoy configured as dev configures it (one route named dev, the
// newest Envoy release, the route name attribute, and with --policy-name
// the route's x-corsproc-policy metadata), and an application that records
// what reaches it.
type devStack struct {
	front *httptest.Server
	mu    sync.Mutex
	seen  []string
}

func newDevStack(t *testing.T, set *policy.Set, policyName string) *devStack {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, processor.New(set, processor.Options{}))
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &devStack{}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		w.Header().Set("X-Request-Id", "req-1")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(app.Close)
	route := emulator.Route{Name: "dev"}
	if policyName != "" {
		route.GRPCInitialMetadata = []emulator.Metadata{{Key: processor.MetadataPolicy, Value: policyName}}
	}
	proxy, err := emulator.New(emulator.Config{
		Release:           emulator.Newest,
		Upstream:          app.URL,
		Routes:            []emulator.Route{route},
		AllowModeOverride: true,
		RequestAttributes: []string{processor.AttributeRoute},
		MessageTimeout:    20 * time.Second, // generous: the race detector slows everything
		FailureModeAllow:  true,
	}, conn)
	if err != nil {
		t.Fatal(err)
	}
	s.front = httptest.NewServer(proxy)
	t.Cleanup(s.front.Close)
	t.Cleanup(proxy.CloseIdleConnections)
	return s
}

func (s *devStack) do(t *testing.T, method, path string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.front.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// wantLocalAllowed checks what the guide's step 3 promises the frontend on
// http://localhost:3000: its preflight answered 204 by corsproc, never seen
// by the application, and its request answered by the application with
// the CORS headers and x-request-id exposed.
func (s *devStack) wantLocalAllowed(t *testing.T, path string) {
	t.Helper()
	const local = "http://localhost:3000"
	resp, _ := s.do(t, "OPTIONS", path, "Origin: "+local, "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: content-type, x-request-id")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != local || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight %s: %d %v", path, resp.StatusCode, resp.Header)
	}
	resp, body := s.do(t, "PUT", path, "Origin: "+local, "Content-Type: application/json", "X-Request-Id: 1")
	if resp.StatusCode != http.StatusOK || body != `{"ok":true}` || resp.Header.Get("Access-Control-Allow-Origin") != local ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" || resp.Header.Get("Access-Control-Expose-Headers") != "x-request-id" {
		t.Errorf("PUT %s: %d %q %v", path, resp.StatusCode, body, resp.Header)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.seen, "OPTIONS "+path) || !slices.Contains(s.seen, "PUT "+path) {
		t.Errorf("the application saw %q: want the PUT, never the preflight", s.seen)
	}
}
