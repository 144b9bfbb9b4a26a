package processor

// Single-message mode (docs/envoy.md, "Single-message mode"): on a stream
// whose initial metadata declares x-corsproc-response-headers:
// dynamic-metadata, corsproc answers every request on its request headers,
// the response headers' values in dynamic metadata, and Envoy's
// header_mutation filter writes them. The browser must see exactly what the
// response-phase mode gives it.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/corsproc/corsproc/internal/extproc"
	"github.com/corsproc/corsproc/policy"
)

// modeStream is a fake stream whose initial metadata holds md (key, value
// pairs).
func modeStream(t testing.TB, md []string, msgs ...*extprocv3.ProcessingRequest) *fakeStream {
	ctx := context.Background()
	if len(md) > 0 {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(md...))
	}
	return &fakeStream{t: t, ctx: ctx, in: msgs}
}

// singleMD is the initial metadata of envoy/envoy-single-message.yaml.
var singleMD = []string{extproc.MetadataResponseHeaders, extproc.ResponseHeadersDynamicMetadata}

// corsMetadata returns the corsproc namespace of r's dynamic metadata as
// strings, failing on any other namespace or a value that is not a string
// (Envoy's formatter would render it as JSON); nil when r carries none.
func corsMetadata(t *testing.T, r *extprocv3.ProcessingResponse) map[string]string {
	t.Helper()
	dm := wireMetadata(t, r)
	if dm == nil {
		return nil
	}
	out := map[string]string{}
	for ns, v := range dm.GetFields() {
		if ns != extproc.DynamicMetadataNamespace {
			t.Errorf("dynamic metadata namespace %q, want only %q", ns, extproc.DynamicMetadataNamespace)
			continue
		}
		st, ok := v.GetKind().(*structpb.Value_StructValue)
		if !ok {
			t.Fatalf("namespace %q holds a %T: Envoy takes struct_value only (ext_proc.cc, setDynamicMetadata)", ns, v.GetKind())
		}
		for k, fv := range st.StructValue.GetFields() {
			s, ok := fv.GetKind().(*structpb.Value_StringValue)
			if !ok {
				t.Errorf("key %q holds a %T, want a string", k, fv.GetKind())
				continue
			}
			if s.StringValue == "" {
				t.Errorf("key %q is empty: leave it out", k)
			}
			out[k] = s.StringValue
		}
	}
	return out
}

// wireMetadata returns r's dynamic_metadata as Envoy reads it, from the
// wire: corsproc writes it in its wire form.
func wireMetadata(t *testing.T, r *extprocv3.ProcessingResponse) *structpb.Struct {
	t.Helper()
	b, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back extprocv3.ProcessingResponse
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back.GetDynamicMetadata()
}

// checkMetadataShape checks dynamic metadata as Envoy takes it: the
// corsproc namespace only, a struct of non-empty strings (Envoy's
// formatter renders any other value as JSON).
func checkMetadataShape(dm *structpb.Struct) error {
	for ns, v := range dm.GetFields() {
		st, ok := v.GetKind().(*structpb.Value_StructValue)
		if ns != extproc.DynamicMetadataNamespace || !ok {
			return fmt.Errorf("dynamic metadata namespace %q holding %T: want only %q, a struct", ns, v.GetKind(), extproc.DynamicMetadataNamespace)
		}
		for k, fv := range st.StructValue.GetFields() {
			if s, ok := fv.GetKind().(*structpb.Value_StringValue); !ok || s.StringValue == "" {
				return fmt.Errorf("metadata key %q holds %v: want a non-empty string", k, fv)
			}
		}
	}
	return nil
}

// headerMutationKeys are the response mutations of the header_mutation
// filter in envoy/envoy-single-message.yaml after its seven removals, in
// order: header, metadata key, append.
var headerMutationKeys = []struct {
	header, key string
	append      bool
}{
	{policy.HeaderACAO, extproc.KeyACAO, false},
	{policy.HeaderACAC, extproc.KeyACAC, false},
	{policy.HeaderACEH, extproc.KeyACEH, false},
	{policy.HeaderACAM, extproc.KeyACAM, false},
	{policy.HeaderACAH, extproc.KeyACAH, false},
	{policy.HeaderACMA, extproc.KeyACMA, false},
	{policy.HeaderACAPN, extproc.KeyACAPN, false},
	{HeaderReason, extproc.KeyReason, false},
	{policy.HeaderVary, extproc.KeyVary, true},
}

// headerMutationFilter applies envoy-single-message.yaml's header_mutation
// to a response's headers as Envoy does (docs/extproc-protocol.md,
// "Dynamic metadata"): every entry of the seven CORS headers removed, then
// each header set from its metadata key, a missing key rendering "" and
// the header then left alone (no keep_empty_value); the set actions
// replace, Vary's appends.
func headerMutationFilter(headers [][2]string, md map[string]string) [][2]string {
	out := slices.Clone(headers)
	for _, name := range managedRemoved {
		out = slices.DeleteFunc(out, func(h [2]string) bool { return h[0] == name })
	}
	for _, m := range headerMutationKeys {
		v := md[m.key]
		if v == "" {
			continue
		}
		if !m.append {
			out = slices.DeleteFunc(out, func(h [2]string) bool { return h[0] == m.header })
		}
		out = append(out, [2]string{m.header, v})
	}
	return out
}

// browserView is what a browser reads of headers: each name's values in
// order joined with "," (as Envoy keeps inline headers such as Vary on one
// line), sorted by name.
func browserView(headers [][2]string) string {
	m := map[string][]string{}
	for _, h := range headers {
		if !strings.HasPrefix(h[0], ":") {
			m[h[0]] = append(m[h[0]], h[1])
		}
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(m[k], ","))
	}
	return b.String()
}

// upstreamWithCORS is an upstream response that sets CORS headers of its
// own and a Vary, which both modes must treat alike.
var upstreamWithCORS = [][2]string{
	{":status", "200"},
	{"content-type", "application/json"},
	{"vary", "Accept-Encoding"},
	{"access-control-allow-origin", "*"},
	{"access-control-allow-credentials", "true"},
	{"access-control-expose-headers", "x-secret"},
	{"access-control-max-age", "99999"},
}

// modeCases are requests of every outcome under semanticsYAML.
func modeCases() []struct {
	name string
	md   []string // x-corsproc-policy values
	req  envoyRequest
} {
	const o = "https://app.example.com"
	type c = struct {
		name string
		md   []string
		req  envoyRequest
	}
	return []c{
		{"allowed", nil, get("api.example.com", o)},
		{"allowed credentials expose", nil, get("creds.example.com", o)},
		{"refused origin", nil, get("api.example.com", "https://evil.example.net")},
		{"malformed origin", nil, get("api.example.com", "https://APP.example.com")},
		{"non-CORS", nil, get("api.example.com", "")},
		{"all origins", nil, get("public.example.com", o)},
		{"all origins, non-CORS", nil, get("public.example.com", "")},
		{"unknown policy", []string{"nope"}, get("api.example.com", o)},
		{"preflight allowed", nil, preflight("api.example.com", o, "PUT", acrhH("content-type"))},
		{"preflight allowed, star", nil, preflight("star.example.com", o, "PATCH", acrhH("x-anything"))},
		{"preflight allowed, private network", nil, preflight("pna.example.com", o, "GET", acrpnH("true"))},
		{"preflight credentials", nil, preflight("creds.example.com", o, "GET")},
		{"preflight refused", nil, preflight("api.example.com", o, "PATCH")},
		{"preflight forwarded", nil, preflight("fwd.example.com", o, "PATCH")},
		{"preflight, unknown policy", []string{"nope"}, preflight("api.example.com", o, "PUT")},
	}
}

// runMode runs one request through a fresh server with the stream metadata
// md, the upstream answering upstreamWithCORS when the request reaches it,
// and returns the headers the browser gets and the responses.
func runMode(t *testing.T, srv *Server, md []string, req envoyRequest, single bool) ([][2]string, []*extprocv3.ProcessingResponse) {
	t.Helper()
	up := envoyResponse(200, upstreamWithCORS[1:]...)
	fs := modeStream(t, md, req.message(), up)
	// Envoy sends the response headers only when the answer neither ended
	// the request nor skipped the phase.
	fs.in = fs.in[:1]
	if err := srv.Process(fs); err != nil {
		t.Fatalf("Process: %v", err)
	}
	first := fs.responses()[0]
	var headers [][2]string
	switch x := first.Response.(type) {
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		// A local reply: its headers, then (single-message mode) every
		// encoder filter, header_mutation included.
		headers = applyMutation([][2]string{{":status", fmt.Sprint(x.ImmediateResponse.GetStatus().GetCode())}}, x.ImmediateResponse.GetHeaders())
		if single {
			headers = headerMutationFilter(headers, corsMetadata(t, first))
		}
		return headers, fs.responses()
	case *extprocv3.ProcessingResponse_RequestHeaders:
	default:
		t.Fatalf("answer %s", replyKind(first))
	}
	headers = slices.Clone(upstreamWithCORS)
	if single {
		// header_mutation encodes before ext_proc (it follows ext_proc in
		// http_filters).
		headers = headerMutationFilter(headers, corsMetadata(t, first))
	}
	if first.GetModeOverride().GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SKIP {
		fs2 := modeStream(t, md, req.message(), up)
		if err := srv.Process(fs2); err != nil {
			t.Fatalf("Process: %v", err)
		}
		rs := fs2.responses()
		if len(rs) != 2 {
			t.Fatalf("%d responses, want 2", len(rs))
		}
		headers = applyMutation(headers, rs[1].GetResponseHeaders().GetResponse().GetHeaderMutation())
		return headers, rs
	}
	return headers, fs.responses()
}

// TestSingleMessageSameForTheBrowser runs every outcome in both modes,
// with and without --explain-refusals, and checks that the browser gets the
// same headers: in single-message mode, from the header_mutation filter
// applied to the metadata of the one answer, which must skip the response
// phase; in the response-phase mode, from corsproc's mutation of the
// response.
func TestSingleMessageSameForTheBrowser(t *testing.T) {
	set := mustParse(t, semanticsYAML)
	for _, explain := range []bool{false, true} {
		for _, c := range modeCases() {
			t.Run(fmt.Sprintf("%s/explain=%v", c.name, explain), func(t *testing.T) {
				srv := New(set, Options{Registerer: prometheus.NewRegistry(), ExplainRefusals: explain})
				var policyMD []string
				for _, v := range c.md {
					policyMD = append(policyMD, MetadataPolicy, v)
				}
				two, _ := runMode(t, srv, policyMD, c.req, false)
				one, rs := runMode(t, srv, append(slices.Clone(policyMD), singleMD...), c.req, true)
				if len(rs) != 1 {
					t.Fatalf("single-message mode: %d ext_proc answers, want 1", len(rs))
				}
				r := rs[0]
				if _, ok := r.Response.(*extprocv3.ProcessingResponse_RequestHeaders); ok {
					if r.GetModeOverride().GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SKIP {
						t.Error("single-message answer does not skip the response phase")
					}
					if r.GetRequestHeaders().GetResponse().GetHeaderMutation() != nil {
						t.Error("single-message answer mutates the request headers")
					}
				} else if _, ok := corsMetadata(t, r)[extproc.KeyVary]; ok {
					t.Error("an immediate response's metadata holds vary: header_mutation would append a second Vary")
				}
				if browserView(one) != browserView(two) {
					t.Errorf("the browser sees\nsingle-message:\n%s\nresponse phase:\n%s", browserView(one), browserView(two))
				}
			})
		}
	}
}

// A request whose response needs nothing (shadow mode, ungoverned) gets
// the same answer in both modes: no metadata, the response phase skipped.
// The header_mutation filter must not run on such routes
// (docs/envoy.md, "Single-message mode"); check --single-message refuses
// such policy sets.
func TestSingleMessageNothingToWrite(t *testing.T) {
	set := mustParse(t, semanticsYAML)
	const o = "https://app.example.com"
	for _, req := range []envoyRequest{
		get("shadow.example.com", o),
		preflight("shadow.example.com", o, "PUT"),
		get("other.example.com", o),
	} {
		srv := New(set, Options{Registerer: prometheus.NewRegistry()})
		fs := modeStream(t, singleMD, req.message())
		if err := srv.Process(fs); err != nil {
			t.Fatal(err)
		}
		r := fs.responses()[0]
		if got := summarize(r); !equalReply(got, continueSkip()) || wireMetadata(t, r) != nil {
			t.Errorf("%s %s: %s with metadata %v, want %s without metadata", req.Method, req.Authority, got, wireMetadata(t, r), continueSkip())
		}
	}
}

func equalReply(a, b reply) bool { return fmtReplies([]reply{a}) == fmtReplies([]reply{b}) }

// What the metadata holds for an allowed request, key by key, as the
// header_mutation config reads it.
func TestSingleMessageMetadata(t *testing.T) {
	set := mustParse(t, semanticsYAML)
	srv := New(set, Options{Registerer: prometheus.NewRegistry()})
	fs := modeStream(t, singleMD, get("creds.example.com", "https://app.example.com").message())
	if err := srv.Process(fs); err != nil {
		t.Fatal(err)
	}
	got := corsMetadata(t, fs.responses()[0])
	want := map[string]string{"acao": "https://app.example.com", "acac": "true", "aceh": "x-total, x-page", "vary": "Origin"}
	if !maps.Equal(got, want) {
		t.Errorf("metadata %v, want %v", got, want)
	}

	fs = modeStream(t, singleMD, preflight("api.example.com", "https://app.example.com", "PUT", acrhH("content-type")).message())
	if err := srv.Process(fs); err != nil {
		t.Fatal(err)
	}
	got = corsMetadata(t, fs.responses()[0])
	want = map[string]string{"acao": "https://app.example.com", "acam": "GET, POST, PUT, DELETE", "acah": "content-type, x-requested-with", "acma": "600"}
	if !maps.Equal(got, want) {
		t.Errorf("preflight metadata %v, want %v", got, want)
	}
	// The header_mutation filter writes them: the answer itself sets only
	// Vary.
	if got := summarize(fs.responses()[0]).Set; len(got) != 1 || got[0].Key != "vary" {
		t.Errorf("single-message preflight answer sets %v, want Vary only", got)
	}
}

// In single-message mode corsproc ends the stream with an OK status as soon
// as its one answer is sent, whatever the answer, instead of waiting for
// Envoy's half-close: Envoy takes a clean close after its last answer as the
// end of processing (Filter::onGrpcClose). So even an Envoy without
// allow_mode_override, which would send the response headers, sends nothing
// more, and the header_mutation filter writes the headers from the metadata.
func TestSingleMessageEndsTheStream(t *testing.T) {
	set := mustParse(t, semanticsYAML)
	const o = "https://app.example.com"
	for _, req := range []envoyRequest{
		get("api.example.com", o),
		get("api.example.com", ""),
		get("other.example.com", o),
		get("shadow.example.com", o),
		preflight("api.example.com", o, "PUT"),
		preflight("fwd.example.com", o, "PATCH"),
	} {
		srv := New(set, Options{Registerer: prometheus.NewRegistry()})
		fs := modeStream(t, singleMD, req.message(), defaultUpstream())
		if err := srv.Process(fs); err != nil {
			t.Fatal(err)
		}
		if fs.next != 1 || len(fs.responses()) != 1 {
			t.Errorf("%s %s: the stream went on after the first answer: %d messages read, %d answers", req.Method, req.Authority, fs.next, len(fs.responses()))
		}
		// The response-phase mode still waits for Envoy to end the stream.
		fs = modeStream(t, nil, req.message(), defaultUpstream())
		fs.Lax = true // the upstream message may follow a skip: not what is checked here
		if err := srv.Process(fs); err != nil {
			t.Fatal(err)
		}
		if fs.next != 2 && fs.sent > 0 && !fs.closed {
			t.Errorf("%s %s: response-phase mode ended the stream before Envoy did", req.Method, req.Authority)
		}
	}
}

// The mode is the Envoy config's: only the exact value dynamic-metadata
// selects it. Any other value, or several, is the response phase, counted
// as unknown; a stream that declares any value gets its preflight headers
// in metadata too, so that a header_mutation filter cannot strip them. The
// mode series exist at zero from the start.
func TestSingleMessageDeclaration(t *testing.T) {
	set := mustParse(t, semanticsYAML)
	reg := prometheus.NewPedanticRegistry()
	srv := New(set, Options{Registerer: reg})
	modes := func() map[string]float64 { return counterValues(t, reg, MetricResponseMode, "mode") }
	if n := testutil.CollectAndCount(reg, MetricResponseMode); n != 3 || len(modes()) != 0 {
		t.Errorf("before any stream: %d series of %s, values %v; want 3 series at zero", n, MetricResponseMode, modes())
	}
	const o = "https://app.example.com"
	cases := []struct {
		md                  []string
		single, preflightMD bool
		mode                string
	}{
		{nil, false, false, ResponseModeResponsePhase},
		{[]string{extproc.MetadataResponseHeaders, "response-phase"}, false, true, ResponseModeResponsePhase},
		{singleMD, true, true, ResponseModeDynamicMetadata},
		{[]string{extproc.MetadataResponseHeaders, "Dynamic-Metadata"}, false, true, ResponseModeUnknown},
		{[]string{extproc.MetadataResponseHeaders, "dynamic_metadata"}, false, true, ResponseModeUnknown},
		{[]string{extproc.MetadataResponseHeaders, "dynamic-metadata", extproc.MetadataResponseHeaders, "dynamic-metadata"}, false, true, ResponseModeUnknown},
	}
	for _, c := range cases {
		before := modes()[c.mode]
		fs := modeStream(t, c.md, get("api.example.com", o).message(), defaultUpstream())
		fs.in = fs.in[:1]
		if err := srv.Process(fs); err != nil {
			t.Fatal(err)
		}
		r := fs.responses()[0]
		single := wireMetadata(t, r) != nil && r.GetModeOverride().GetResponseHeaderMode() == extprocfilterv3.ProcessingMode_SKIP
		if single != c.single {
			t.Errorf("%q: single-message answer %v, want %v", c.md, single, c.single)
		}
		if got := modes()[c.mode]; got != before+1 {
			t.Errorf("%q: %s{mode=%q} went from %v to %v, want one more", c.md, MetricResponseMode, c.mode, before, got)
		}
		fs = modeStream(t, c.md, preflight("api.example.com", o, "PUT").message())
		if err := srv.Process(fs); err != nil {
			t.Fatal(err)
		}
		if got := corsMetadata(t, fs.responses()[0])[extproc.KeyACAO]; (got == o) != c.preflightMD {
			t.Errorf("%q: preflight metadata acao %q, want it there: %v", c.md, got, c.preflightMD)
		}
	}
	if n := testutil.CollectAndCount(reg, MetricResponseMode); n != 3 {
		t.Errorf("%s has %d series, want 3", MetricResponseMode, n)
	}
}

// TestSingleMessageAllocations bounds what the single-message answer adds
// to the response-phase mode's first answer: the metadata's one buffer.
func TestSingleMessageAllocations(t *testing.T) {
	set := mustParse(t, semanticsYAML)
	srv := New(set, Options{})
	msg := get("creds.example.com", "https://app.example.com").message()
	allocs := func(md []string) float64 {
		fs := modeStream(t, md, msg)
		fs.Lax = true
		return testing.AllocsPerRun(200, func() {
			fs.next, fs.closed = 0, false
			if err := srv.Process(fs); err != nil {
				t.Fatal(err)
			}
		})
	}
	two, one := allocs(nil), allocs(singleMD)
	// 1 for the metadata's wire form, 1 for the metadata value gRPC
	// copies out of the context.
	if one > two+2 {
		t.Errorf("single-message answer: %v allocations, response-phase first answer %v: want at most 2 more", one, two)
	}
	t.Logf("allocations per stream: response phase (first answer) %v, single message %v", two, one)
}

// TestSingleMessageWireForm checks the metadata written in its wire form
// against proto.Marshal of the same message with the field set: the same
// length, and the same message once read back.
func TestSingleMessageWireForm(t *testing.T) {
	hs := []policy.Header{
		{Name: policy.HeaderACAO, Value: "https://app.example.com"},
		{Name: policy.HeaderACAC, Value: "true"},
		{Name: policy.HeaderACEH, Value: strings.Repeat("x-long-header-name, ", 20) + "x-end"},
		{Name: "x-not-carried", Value: "v"},
		{Name: policy.HeaderVary, Value: "Origin", Append: true},
	}
	for _, c := range []struct {
		name     string
		reason   string
		skipVary bool
		want     map[string]string
	}{
		{"actual", "", false, map[string]string{"acao": "https://app.example.com", "acac": "true", "aceh": hs[2].Value, "vary": "Origin"}},
		{"reason", "origin refused", false, map[string]string{"acao": "https://app.example.com", "acac": "true", "aceh": hs[2].Value, "vary": "Origin", "reason": "origin refused"}},
		{"preflight", "", true, map[string]string{"acao": "https://app.example.com", "acac": "true", "aceh": hs[2].Value}},
	} {
		var r extprocv3.ProcessingResponse
		setMetadata(&r, hs, c.reason, c.skipVary)
		fields := map[string]*structpb.Value{}
		for k, v := range c.want {
			fields[k] = structpb.NewStringValue(v)
		}
		want := &extprocv3.ProcessingResponse{DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			extproc.DynamicMetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: fields}),
		}}}
		got := &extprocv3.ProcessingResponse{DynamicMetadata: wireMetadata(t, &r)}
		if !proto.Equal(got, want) {
			t.Errorf("%s: reads back as %v, want %v", c.name, got, want)
		}
		if a, b := proto.Size(&r), proto.Size(want); a != b {
			t.Errorf("%s: %d bytes, proto.Marshal gives %d", c.name, a, b)
		}
	}
	var r extprocv3.ProcessingResponse
	if setMetadata(&r, hs[3:4], "", false); len(r.ProtoReflect().GetUnknown()) != 0 {
		t.Error("metadata written with no key to carry")
	}
}
