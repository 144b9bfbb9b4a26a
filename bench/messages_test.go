package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/corsproc/corsproc/bench/loadgen"
	"github.com/corsproc/corsproc/envoy/emulator"
	"github.com/corsproc/corsproc/processor"
)

// upstream answers every request 200 without a network round trip.
type upstream struct{}

func (upstream) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Request: r,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader("{}")),
		ContentLength: 2,
	}, nil
}

// envoyConfigs are the two shipped Envoy configurations, as the emulator
// runs them: envoy/envoy.yaml, and envoy/envoy-origin-only.yaml whose
// ExtensionWithMatcher skips the filter for requests without Origin.
var envoyConfigs = []struct {
	name              string
	skipWithoutOrigin bool
	singleMessage     bool
}{{"envoy.yaml", false, false}, {"envoy-origin-only.yaml", true, false}, {"envoy-single-message.yaml", true, true}}

// singleMessageMutations are the response mutations of
// envoy/envoy-single-message.yaml's header_mutation filter (checked against
// the file by envoy/configs_test.go and read from it by envoy/e2e).
func singleMessageMutations() *emulator.HeaderMutation {
	headers := []struct{ name, key string }{
		{"access-control-allow-origin", "acao"}, {"access-control-allow-credentials", "acac"},
		{"access-control-expose-headers", "aceh"}, {"access-control-allow-methods", "acam"},
		{"access-control-allow-headers", "acah"}, {"access-control-max-age", "acma"},
		{"access-control-allow-private-network", "acapn"},
	}
	m := &emulator.HeaderMutation{}
	for _, h := range headers {
		m.ResponseMutations = append(m.ResponseMutations, emulator.ResponseMutation{Remove: h.name})
	}
	for _, h := range headers {
		m.ResponseMutations = append(m.ResponseMutations, emulator.ResponseMutation{Append: &emulator.HeaderAppend{
			Key: h.name, Value: "%DYNAMIC_METADATA(corsproc:" + h.key + ")%", Action: emulator.OverwriteIfExistsOrAdd}})
	}
	m.ResponseMutations = append(m.ResponseMutations, emulator.ResponseMutation{Append: &emulator.HeaderAppend{
		Key: "vary", Value: "%DYNAMIC_METADATA(corsproc:vary)%", Action: emulator.AppendIfExistsOrAdd}})
	return m
}

// newEmulator returns an emulated Envoy in front of svc with the routes of
// loadgen's scenarios.
func newEmulator(tb testing.TB, svc extprocv3.ExternalProcessorServer, skipWithoutOrigin, singleMessage bool) *emulator.Proxy {
	tb.Helper()
	cfg := emulator.Config{
		Upstream: "http://upstream.test",
		Routes: []emulator.Route{
			{Name: "storefront", PathPrefix: "/shop/"},
			{Name: "static", PathPrefix: "/static/"},
		},
		AllowModeOverride: true,
		RequestAttributes: []string{emulator.AttributeRouteName},
		SkipWithoutOrigin: skipWithoutOrigin,
		Transport:         upstream{},
	}
	if singleMessage {
		cfg.GRPCServiceInitialMetadata = []emulator.Metadata{{Key: processor.MetadataResponseHeaders, Value: processor.ResponseHeadersDynamicMetadata}}
		cfg.ReceivingNamespaces = []string{"corsproc"}
		cfg.HeaderMutation = singleMessageMutations()
	}
	p, err := emulator.New(cfg, serveInMemory(tb, svc))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// httpRequest is the browser's request of scenario sc.
func httpRequest(sc loadgen.Scenario) *http.Request {
	r := httptest.NewRequest(sc.Method, "http://api.example.com"+sc.Path, nil)
	setCORSHeaders(r.Header, sc.Origin, sc.ACRM, sc.ACRH)
	return r
}

// messagesPerRequest sends sc through the emulated Envoy count times and
// returns the ext_proc messages Envoy sent per HTTP request, from the
// emulator's own counters.
func messagesPerRequest(tb testing.TB, p *emulator.Proxy, sc loadgen.Scenario, count int) float64 {
	before := p.Stats()
	for range count {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, httpRequest(sc))
		if w.Code >= 500 {
			tb.Fatalf("%s: status %d", sc.Name, w.Code)
		}
	}
	after := p.Stats()
	if n := after.Requests - before.Requests; n != count {
		tb.Fatalf("%s: emulator counted %d requests, want %d", sc.Name, n, count)
	}
	return float64(after.MessagesSent-before.MessagesSent) / float64(count)
}

// wantMessages is what each scenario costs with each configuration:
// preflights are answered immediately and ungoverned requests skip the
// response phase (one message); requests without Origin cost nothing when
// Envoy's matcher skips the filter; in single-message mode every CORS
// request costs one.
var wantMessages = map[string][3]float64{ // [envoy.yaml, envoy-origin-only.yaml, envoy-single-message.yaml]
	"non_cors":     {2, 0, 0},
	"cors_allowed": {2, 2, 1},
	"cors_refused": {2, 2, 1},
	"preflight":    {1, 1, 1},
	"ungoverned":   {1, 1, 1},
}

// TestEnvoyMessages measures, through the Envoy emulator, the ext_proc
// messages each scenario costs corsproc and the no-op server with both
// shipped configurations, and checks corsproc's against wantMessages.
func TestEnvoyMessages(t *testing.T) {
	for i, cfg := range envoyConfigs {
		corsproc := newEmulator(t, newCorsproc(t, loadgen.PolicyYAML), cfg.skipWithoutOrigin, cfg.singleMessage)
		noop := newEmulator(t, loadgen.Noop{}, cfg.skipWithoutOrigin, cfg.singleMessage)
		for _, sc := range loadgen.Scenarios {
			got := messagesPerRequest(t, corsproc, sc, 3)
			floor := messagesPerRequest(t, noop, sc, 3)
			t.Logf("%-24s %-13s corsproc %.0f  no-op %.0f messages per request", cfg.name, sc.Name, got, floor)
			if want := wantMessages[sc.Name][i]; got != want {
				t.Errorf("%s, %s: corsproc costs %v messages per request, want %v", cfg.name, sc.Name, got, want)
			}
		}
	}
}

// BenchmarkEnvoyMessages reports the ext_proc messages per HTTP request
// (msgs/op) of each scenario and configuration, for corsproc and the no-op
// server, through the Envoy emulator (an HTTP round trip included, so
// ns/op is not the processor's cost: see cmd/loadgen for that).
func BenchmarkEnvoyMessages(b *testing.B) {
	for _, cfg := range envoyConfigs {
		for _, impl := range []string{"corsproc", "noop"} {
			var svc extprocv3.ExternalProcessorServer = loadgen.Noop{}
			if impl == "corsproc" {
				svc = newCorsproc(b, loadgen.PolicyYAML)
			}
			p := newEmulator(b, svc, cfg.skipWithoutOrigin, cfg.singleMessage)
			for _, sc := range loadgen.Scenarios {
				b.Run(fmt.Sprintf("envoy=%s/impl=%s/case=%s", cfg.name, impl, sc.Name), func(b *testing.B) {
					before := p.Stats()
					n := 0
					for b.Loop() {
						w := httptest.NewRecorder()
						p.ServeHTTP(w, httpRequest(sc))
						n++
					}
					after := p.Stats()
					b.ReportMetric(float64(after.MessagesSent-before.MessagesSent)/float64(n), "msgs/op")
				})
			}
		}
	}
}
