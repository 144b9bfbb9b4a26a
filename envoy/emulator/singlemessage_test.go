package emulator_test

// Single-message mode: the processor answers request_headers with
// dynamic_metadata and mode_override SKIP, and the header_mutation filter
// after ext_proc sets the response headers from the metadata. Each test
// names the Envoy source it pins (see the package documentation).

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/corsproc/corsproc/envoy/emulator"
)

// withMetadata sets a response's dynamic_metadata: one Struct per
// namespace.
func withMetadata(r *extprocv3.ProcessingResponse, md map[string]any) *extprocv3.ProcessingResponse {
	s, err := structpb.NewStruct(md)
	if err != nil {
		panic(err)
	}
	r.DynamicMetadata = s
	return r
}

// corsHeaders are the CORS response headers with the metadata key that
// sets each, in the order of the single-message Envoy configuration.
var corsHeaders = []struct{ header, key string }{
	{"access-control-allow-origin", "acao"},
	{"access-control-allow-credentials", "acac"},
	{"access-control-expose-headers", "aceh"},
	{"access-control-allow-methods", "acam"},
	{"access-control-allow-headers", "acah"},
	{"access-control-max-age", "acma"},
	{"access-control-allow-private-network", "acapn"},
}

// corsMutations is the header_mutation list of the single-message
// configuration: remove the upstream's CORS headers, set them from the
// corsproc namespace, append vary.
func corsMutations() *emulator.HeaderMutation {
	var ms []emulator.ResponseMutation
	for _, h := range corsHeaders {
		ms = append(ms, emulator.ResponseMutation{Remove: h.header})
	}
	for _, h := range corsHeaders {
		ms = append(ms, emulator.ResponseMutation{Append: &emulator.HeaderAppend{
			Key: h.header, Value: "%DYNAMIC_METADATA(corsproc:" + h.key + ")%", Action: emulator.OverwriteIfExistsOrAdd,
		}})
	}
	ms = append(ms, emulator.ResponseMutation{Append: &emulator.HeaderAppend{
		Key: "vary", Value: "%DYNAMIC_METADATA(corsproc:vary)%", Action: emulator.AppendIfExistsOrAdd,
	}})
	return &emulator.HeaderMutation{ResponseMutations: ms}
}

// singleMessageConfig is the emulated single-message Envoy configuration.
func singleMessageConfig(rel emulator.Release) emulator.Config {
	return emulator.Config{
		Release:                    rel,
		AllowModeOverride:          true,
		ReceivingNamespaces:        []string{"corsproc"},
		GRPCServiceInitialMetadata: []emulator.Metadata{{Key: "x-corsproc-response-headers", Value: "dynamic-metadata"}},
		HeaderMutation:             corsMutations(),
	}
}

// upstreamWithCORS makes the upstream answer with CORS headers of its own.
func upstreamWithCORS(h *harness) {
	h.up.setRespond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Write([]byte("upstream"))
	})
}

// Filter::setDynamicMetadata (ext_proc.cc): only the namespaces listed in
// receiving_namespaces.untyped are written, each merged with MergeFrom;
// others are dropped silently; nothing is written without the list.
func TestDynamicMetadataReceivingNamespaces(t *testing.T) {
	t.Parallel()
	req := withMetadata(continueRequest(nil), map[string]any{
		"corsproc": map[string]any{"acao": "https://app.example", "vary": "Origin"},
		"other":    map[string]any{"x": "y"},
	})
	resp := withMetadata(continueResponse(nil), map[string]any{
		"corsproc": map[string]any{"vary": "", "acac": "true"},
	})

	h := newHarness(t, emulator.Config{ReceivingNamespaces: []string{"corsproc"}}, answer(req, resp))
	_, _, e := h.get("/")
	want := map[string]*structpb.Struct{"corsproc": {Fields: map[string]*structpb.Value{
		"acao": structpb.NewStringValue("https://app.example"),
		"vary": structpb.NewStringValue(""), // replaced by the later answer
		"acac": structpb.NewStringValue("true"),
	}}}
	if !mapsEqual(e.DynamicMetadata, want) {
		t.Errorf("dynamic metadata %v, want %v", e.DynamicMetadata, want)
	}
	if st := h.proxy.Stats(); st.DynamicMetadataWritten != 2 || st.DynamicMetadataDropped != 1 {
		t.Errorf("stats: written %d dropped %d, want 2 and 1", st.DynamicMetadataWritten, st.DynamicMetadataDropped)
	}

	// Without receiving namespaces nothing is written.
	h2 := newHarness(t, emulator.Config{}, answer(req, resp))
	if _, _, e := h2.get("/"); e.DynamicMetadata != nil {
		t.Errorf("dynamic metadata %v without receiving namespaces", e.DynamicMetadata)
	}

	// A namespace whose value is not a Struct reads as an empty Struct
	// (struct_value()): the namespace exists, with nothing in it.
	notStruct := continueRequest(nil)
	notStruct.DynamicMetadata = &structpb.Struct{Fields: map[string]*structpb.Value{"corsproc": structpb.NewStringValue("x")}}
	h3 := newHarness(t, emulator.Config{ReceivingNamespaces: []string{"corsproc"}}, answer(notStruct, continueResponse(nil)))
	if _, _, e := h3.get("/"); !mapsEqual(e.DynamicMetadata, map[string]*structpb.Struct{"corsproc": {}}) {
		t.Errorf("dynamic metadata %v, want an empty corsproc namespace", e.DynamicMetadata)
	}
}

func mapsEqual(a, b map[string]*structpb.Struct) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !proto.Equal(v, w) && !(len(v.GetFields()) == 0 && len(w.GetFields()) == 0) {
			return false
		}
	}
	return true
}

// The single-message design on an upstream response, on every release:
// one message (mode_override SKIP), the upstream's CORS headers removed,
// corsproc's set from the metadata written on the request_headers answer,
// Vary appended to the inline header with ",", empty values dropped; and
// the metadata is the request's own: the next request does not see it.
func TestSingleMessageUpstreamResponse(t *testing.T) {
	t.Parallel()
	for _, rel := range emulator.Releases() {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			n := 0
			h := newHarness(t, singleMessageConfig(rel), func(s *procStream) error {
				n++
				if s.Recv() == nil {
					return nil
				}
				r := skipResponsePhase(continueRequest(nil))
				if n == 1 {
					withMetadata(r, map[string]any{"corsproc": map[string]any{
						"acao": "https://app.example", "acac": "true", "aceh": "", "vary": "Origin",
					}})
				}
				s.Send(r)
				s.WaitEnd()
				return nil
			})
			upstreamWithCORS(h)
			resp, body, e := h.get("/", "Origin: https://app.example")
			wantStatus(t, resp, 200)
			if body != "upstream" || e.Messages != 1 {
				t.Errorf("body %q, %d messages; want the upstream's body and 1 message", body, e.Messages)
			}
			if md := h.stream().md.Get("x-corsproc-response-headers"); !slices.Equal(md, []string{"dynamic-metadata"}) {
				t.Errorf("stream metadata x-corsproc-response-headers %q", md)
			}
			for k, want := range map[string][]string{
				"Access-Control-Allow-Origin":      {"https://app.example"},
				"Access-Control-Allow-Credentials": {"true"},
				"Access-Control-Expose-Headers":    nil, // "" is dropped
				"Access-Control-Max-Age":           nil, // the upstream's, removed
				"Vary":                             {"Accept-Encoding,Origin"},
			} {
				if got := resp.Header.Values(k); !slices.Equal(got, want) {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}

			// The second request's processor writes no metadata: the
			// upstream's CORS headers are removed and nothing is added.
			resp, _, e = h.get("/", "Origin: https://app.example")
			if got := resp.Header.Values("Access-Control-Allow-Origin"); got != nil || e.DynamicMetadata != nil {
				t.Errorf("second request: ACAO %q, metadata %v; want neither", got, e.DynamicMetadata)
			}
			if got := resp.Header.Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("second request: Vary %q", got)
			}
		})
	}
}

// Every local reply Envoy generates after the request phase (router 404,
// 503, 504, a later filter's 401) goes through the encoder filters
// (sendLocalReplyViaFilterChain), so header_mutation sets the CORS headers
// on it from the request's metadata; with the response phase skipped no
// release sends it to the processor (Filter::encodeHeaders checks
// encoding_state_.sendHeaders(), the same for local replies).
func TestSingleMessageLocalReplies(t *testing.T) {
	t.Parallel()
	dead := deadUpstream(t)
	for _, rel := range emulator.Releases() {
		for _, sc := range []struct {
			name, path string
			status     int
		}{
			{"no_route", "/nowhere", 404},
			{"upstream_down", "/down", 503},
			{"upstream_timeout", "/slow", 504},
			{"later_filter", "/auth", 401},
		} {
			t.Run(rel.Name+"/"+sc.name, func(t *testing.T) {
				t.Parallel()
				release := make(chan struct{})
				defer close(release)
				cfg := singleMessageConfig(rel)
				cfg.Routes = []emulator.Route{
					{Name: "slow", PathPrefix: "/slow", Timeout: time.Millisecond},
					{Name: "down", PathPrefix: "/down"},
					{Name: "auth", PathPrefix: "/auth"},
				}
				cfg.LaterFilter = func(method, path string, _ http.Header) *emulator.LocalReply {
					if strings.HasPrefix(path, "/auth") {
						return &emulator.LocalReply{Status: 401, Body: "Jwt is missing", Details: "jwt_authn_access_denied"}
					}
					return nil
				}
				if sc.name == "upstream_down" {
					cfg.Upstream = dead
				}
				h := newHarness(t, cfg, answer(withMetadata(skipResponsePhase(continueRequest(nil)), map[string]any{
					"corsproc": map[string]any{"acao": "https://app.example", "vary": "Origin"},
				})))
				h.up.setRespond(func(w http.ResponseWriter, r *http.Request) {
					select {
					case <-release:
					case <-r.Context().Done():
					}
				})
				resp, _, e := h.get(sc.path, "Origin: https://app.example")
				wantStatus(t, resp, sc.status)
				if k := kinds(h.stream().messages()); k != "request_headers" || e.Messages != 1 {
					t.Errorf("messages %s (%d), want request_headers only", k, e.Messages)
				}
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
					t.Errorf("ACAO %q on the %d", got, sc.status)
				}
				if got := resp.Header.Get("Vary"); got != "Origin" {
					t.Errorf("Vary %q on the %d", got, sc.status)
				}
				if st := h.proxy.Stats(); st.LocalReplies != 1 || st.LocalRepliesProcessed != 0 {
					t.Errorf("stats %+v", st)
				}
			})
		}
	}
}

// ext_proc's own immediate response (a preflight answer) is sent through
// every encoder filter after its mutation is applied (prepareLocalReply's
// modify_headers, then encodeHeaders from the first encoder filter), so
// header_mutation's removals strip the answer's CORS headers unless the
// immediate response also carries the values as metadata, which ext_proc
// writes before sending the reply (onReceiveMessage, kImmediateResponse).
func TestSingleMessageImmediateResponse(t *testing.T) {
	t.Parallel()
	preflight := func() *extprocv3.ProcessingResponse {
		return immediate(204, mutation(nil,
			set("access-control-allow-origin", "https://app.example"),
			set("access-control-allow-methods", "PUT"),
			add("vary", "Origin")), "", "cors_preflight")
	}
	for _, rel := range emulator.Releases() {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			// Without metadata the answer loses its CORS headers.
			h := newHarness(t, singleMessageConfig(rel), answer(preflight()))
			resp, _, _ := h.do(newRequest("OPTIONS", "/", "", "Origin: https://app.example", "Access-Control-Request-Method: PUT"))
			wantStatus(t, resp, 204)
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Errorf("ACAO %q: header_mutation's removal must strip it", got)
			}

			// With the same values as metadata (vary left out: the
			// answer has its own) the browser sees the answer intact.
			h2 := newHarness(t, singleMessageConfig(rel), answer(withMetadata(preflight(), map[string]any{
				"corsproc": map[string]any{"acao": "https://app.example", "acam": "PUT"},
			})))
			resp, _, e := h2.do(newRequest("OPTIONS", "/", "", "Origin: https://app.example", "Access-Control-Request-Method: PUT"))
			wantStatus(t, resp, 204)
			for k, want := range map[string]string{
				"Access-Control-Allow-Origin":  "https://app.example",
				"Access-Control-Allow-Methods": "PUT",
				"Vary":                         "Origin",
			} {
				if got := resp.Header.Values(k); !slices.Equal(got, []string{want}) {
					t.Errorf("%s %q, want [%s]", k, got, want)
				}
			}
			if e.Messages != 1 || e.DynamicMetadata["corsproc"] == nil {
				t.Errorf("%d messages, metadata %v", e.Messages, e.DynamicMetadata)
			}
		})
	}
}

// A local reply ext_proc sends while it processes response headers goes
// directly to the codec (DownstreamFilterManager::sendLocalReply calls
// sendDirectLocalReply once response headers exist): no encoder filter,
// neither header_mutation nor another filter after ext_proc, runs on it.
func TestResponsePhaseReplyBypassesEncoderFilters(t *testing.T) {
	t.Parallel()
	cfg := singleMessageConfig(emulator.Newest)
	cfg.AllowModeOverride = false
	cfg.LaterEncoderHeaders = []emulator.HeaderValueOption{{Key: "x-later", Value: "later"}}
	md := map[string]any{"corsproc": map[string]any{"acao": "https://app.example"}}

	// An immediate response to the response_headers message.
	h := newHarness(t, cfg, answer(withMetadata(continueRequest(nil), md), immediate(403, nil, "no", "denied")))
	resp, _, _ := h.get("/")
	wantStatus(t, resp, 403)
	if got := resp.Header.Get("X-Later"); got != "" {
		t.Errorf("X-Later %q on a reply sent in the response phase", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("ACAO %q on a reply sent in the response phase", got)
	}

	// The same reply in the request phase goes through both.
	h2 := newHarness(t, cfg, answer(withMetadata(immediate(403, nil, "no", "denied"), md)))
	resp, _, _ = h2.get("/")
	if resp.Header.Get("X-Later") != "later" || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("request-phase reply headers %v", resp.Header)
	}
}

// When the response phase is not skipped, ext_proc sees the response after
// header_mutation (encoder filters run in reverse configuration order,
// FilterManager::addStreamEncoderFilterWorker), and its own mutation wins.
func TestHeaderMutationBeforeExtProcResponsePhase(t *testing.T) {
	t.Parallel()
	cfg := singleMessageConfig(emulator.Newest)
	h := newHarness(t, cfg, answer(
		withMetadata(continueRequest(nil), map[string]any{"corsproc": map[string]any{"acao": "https://a.example"}}),
		continueResponse(mutation(nil, set("access-control-allow-origin", "https://b.example")))))
	upstreamWithCORS(h)
	resp, _, _ := h.get("/")
	ms := h.stream().messages()
	if k := kinds(ms); k != "request_headers,response_headers" {
		t.Fatalf("messages %s", k)
	}
	lines := headerLines(t, responseHeadersOf(t, ms[1]))
	if !slices.Contains(lines, "access-control-allow-origin: https://a.example") || slices.Contains(lines, "access-control-max-age: 600") {
		t.Errorf("ext_proc saw %q, want header_mutation's result", lines)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://b.example" {
		t.Errorf("ACAO %q, want the processor's", got)
	}
}

// HeaderMutations::evaluateHeaders applies the mutations one by one on the
// live map, and AppendMutation's four append actions and keep_empty_value
// behave as in source/common/http/header_mutation.cc.
func TestHeaderMutationActions(t *testing.T) {
	t.Parallel()
	ap := func(key, value string, action emulator.AppendAction, keep bool) emulator.ResponseMutation {
		return emulator.ResponseMutation{Append: &emulator.HeaderAppend{Key: key, Value: value, Action: action, KeepEmptyValue: keep}}
	}
	cfg := emulator.Config{
		ReceivingNamespaces: []string{"ns"},
		HeaderMutation: &emulator.HeaderMutation{ResponseMutations: []emulator.ResponseMutation{
			// Sequential: the removal sees the first append.
			ap("x-seq", "first", emulator.AppendIfExistsOrAdd, false),
			{Remove: "X-Seq"},
			ap("x-seq", "second", emulator.AppendIfExistsOrAdd, false),
			// APPEND_IF_EXISTS_OR_ADD: a second line, or joined for an
			// inline header.
			ap("x-multi", "two", emulator.AppendIfExistsOrAdd, false),
			ap("vary", "Origin", emulator.AppendIfExistsOrAdd, false),
			// ADD_IF_ABSENT.
			ap("x-multi", "never", emulator.AddIfAbsent, false),
			ap("x-absent", "added", emulator.AddIfAbsent, false),
			// OVERWRITE_IF_EXISTS.
			ap("x-none", "never", emulator.OverwriteIfExists, false),
			ap("x-over", "new", emulator.OverwriteIfExists, false),
			// OVERWRITE_IF_EXISTS_OR_ADD replaces every line.
			ap("x-replace", "one", emulator.OverwriteIfExistsOrAdd, false),
			// An empty value adds nothing, unless keep_empty_value.
			ap("x-empty", "%DYNAMIC_METADATA(ns:missing)%", emulator.OverwriteIfExistsOrAdd, false),
			ap("x-over", "%DYNAMIC_METADATA(ns:missing)%", emulator.OverwriteIfExistsOrAdd, false),
			ap("x-kept", "%DYNAMIC_METADATA(ns:missing)%", emulator.AppendIfExistsOrAdd, true),
		}},
	}
	h := newHarness(t, cfg, answer(continueRequest(nil), continueResponse(nil)))
	h.up.setRespond(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Multi"] = []string{"one"}
		w.Header()["Vary"] = []string{"Accept-Encoding"}
		w.Header()["X-Over"] = []string{"a", "b"}
		w.Header()["X-Replace"] = []string{"a", "b"}
	})
	resp, _, _ := h.get("/")
	for k, want := range map[string][]string{
		"X-Seq":     {"second"},
		"X-Multi":   {"one", "two"},
		"Vary":      {"Accept-Encoding,Origin"},
		"X-Absent":  {"added"},
		"X-None":    nil,
		"X-Over":    {"new"},
		"X-Replace": {"one"},
		"X-Empty":   nil,
		"X-Kept":    {""},
	} {
		if got := resp.Header.Values(k); !slices.Equal(got, want) {
			t.Errorf("%s %q, want %q", k, got, want)
		}
	}
}

// The substitution formatter as a header value uses it
// (SubstitutionFormatParser::parse, MetadataFormatter::formatMetadata):
// literal text and %%, a string unquoted, other values as JSON, no value
// for an absent namespace, key or null, a :LENGTH truncation, the whole
// namespace without a key.
func TestHeaderMutationFormatter(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ format, want string }{
		"x-literal":   {"100%% sure", "100% sure"},
		"x-string":    {"%DYNAMIC_METADATA(ns:s)%", `a "quoted" value`},
		"x-number":    {"%DYNAMIC_METADATA(ns:n)%", "1.5"},
		"x-bool":      {"%DYNAMIC_METADATA(ns:b)%", "true"},
		"x-list":      {"%DYNAMIC_METADATA(ns:l)%", `["a",1]`},
		"x-nested":    {"%DYNAMIC_METADATA(ns:o:k)%", "v"},
		"x-object":    {"%DYNAMIC_METADATA(ns:o)%", `{"k":"v"}`},
		"x-truncated": {"%DYNAMIC_METADATA(ns:s):3%", "a \""},
		"x-mixed":     {"<%DYNAMIC_METADATA(ns:missing)%|%DYNAMIC_METADATA(ns:s)%>", `<|a "quoted" value>`},
		"x-null":      {"%DYNAMIC_METADATA(ns:null)%", ""},
		"x-through":   {"%DYNAMIC_METADATA(ns:s:deeper)%", ""},
		"x-other-ns":  {"%DYNAMIC_METADATA(other:s)%", ""},
		"x-whole":     {"%DYNAMIC_METADATA(small)%", `{"k":"v"}`},
	}
	var ms []emulator.ResponseMutation
	for k, c := range cases {
		ms = append(ms, emulator.ResponseMutation{Append: &emulator.HeaderAppend{Key: k, Value: c.format}})
	}
	cfg := emulator.Config{
		AllowModeOverride:   true,
		ReceivingNamespaces: []string{"ns", "small"},
		HeaderMutation:      &emulator.HeaderMutation{ResponseMutations: ms},
	}
	h := newHarness(t, cfg, answer(withMetadata(skipResponsePhase(continueRequest(nil)), map[string]any{
		"ns": map[string]any{
			"s": `a "quoted" value`, "n": 1.5, "b": true, "l": []any{"a", 1}, "o": map[string]any{"k": "v"}, "null": nil,
		},
		"small": map[string]any{"k": "v"},
	})))
	resp, _, _ := h.get("/")
	for k, c := range cases {
		var want []string
		if c.want != "" {
			want = []string{c.want}
		}
		if got := resp.Header.Values(k); !slices.Equal(got, want) {
			t.Errorf("%s = %q: %q, want %q", k, c.format, got, want)
		}
	}
}

// HeaderMutation::encodeHeaders: the filter-level mutations, then the
// route's HeaderMutationPerRoute, then the virtual host's (least specific
// last, most_specific_header_mutations_wins false). Per-route configs add
// to the filter-level list; a request without a route gets the filter's
// only; without the filter in the chain per-route configs do nothing.
func TestHeaderMutationPerRoute(t *testing.T) {
	t.Parallel()
	step := func(v string) *emulator.HeaderMutation {
		return &emulator.HeaderMutation{ResponseMutations: []emulator.ResponseMutation{
			{Append: &emulator.HeaderAppend{Key: "x-order", Value: v}},
		}}
	}
	cfg := emulator.Config{
		HeaderMutation: step("filter"),
		VirtualHost:    emulator.VirtualHost{HeaderMutation: step("vhost")},
		Routes: []emulator.Route{
			{Name: "governed", PathPrefix: "/governed", HeaderMutation: step("route")},
			{Name: "other", PathPrefix: "/other"},
		},
	}
	h := newHarness(t, cfg, answer(continueRequest(nil), continueResponse(nil)))
	for path, want := range map[string][]string{
		"/governed": {"filter", "route", "vhost"},
		"/other":    {"filter", "vhost"},
		"/nowhere":  {"filter"}, // the router's 404, no route
	} {
		resp, _, _ := h.get(path)
		h.stream()
		if got := resp.Header.Values("X-Order"); !slices.Equal(got, want) {
			t.Errorf("%s: X-Order %q, want %q", path, got, want)
		}
	}

	// Scoped to one route: the filter-level list empty.
	cfg.HeaderMutation = &emulator.HeaderMutation{}
	cfg.VirtualHost.HeaderMutation = nil
	h2 := newHarness(t, cfg, answer(continueRequest(nil), continueResponse(nil)))
	for path, want := range map[string][]string{"/governed": {"route"}, "/other": nil} {
		resp, _, _ := h2.get(path)
		if got := resp.Header.Values("X-Order"); !slices.Equal(got, want) {
			t.Errorf("scoped, %s: X-Order %q, want %q", path, got, want)
		}
	}

	// No header_mutation filter: a per-route config does nothing.
	cfg.HeaderMutation = nil
	h3 := newHarness(t, cfg, answer(continueRequest(nil), continueResponse(nil)))
	if resp, _, _ := h3.get("/governed"); resp.Header.Values("X-Order") != nil {
		t.Errorf("X-Order %q without the filter", resp.Header.Values("X-Order"))
	}
}

// grpc_service.initial_metadata is sent on every stream; a per-route
// grpc_initial_metadata entry replaces the entry of the same key, others
// are added (Filter::mergePerRouteConfig, mergeHeaderValuesField).
func TestGRPCServiceInitialMetadata(t *testing.T) {
	t.Parallel()
	cfg := emulator.Config{
		GRPCServiceInitialMetadata: []emulator.Metadata{
			{Key: "x-corsproc-response-headers", Value: "dynamic-metadata"}, {Key: "x-a", Value: "service"},
		},
		VirtualHost: emulator.VirtualHost{GRPCInitialMetadata: []emulator.Metadata{{Key: "x-a", Value: "vhost"}}},
		Routes: []emulator.Route{
			{Name: "legacy", PathPrefix: "/legacy", GRPCInitialMetadata: []emulator.Metadata{
				{Key: "x-corsproc-response-headers", Value: "two-message"}, {Key: "x-corsproc-policy", Value: "p"},
			}},
			{Name: "plain", PathPrefix: "/plain"},
		},
	}
	h := newHarness(t, cfg, answer(continueRequest(nil), continueResponse(nil)))
	for path, want := range map[string]map[string][]string{
		"/legacy":  {"x-corsproc-response-headers": {"two-message"}, "x-a": {"vhost"}, "x-corsproc-policy": {"p"}},
		"/plain":   {"x-corsproc-response-headers": {"dynamic-metadata"}, "x-a": {"vhost"}, "x-corsproc-policy": nil},
		"/nowhere": {"x-corsproc-response-headers": {"dynamic-metadata"}, "x-a": {"service"}, "x-corsproc-policy": nil},
	} {
		h.get(path)
		md := h.stream().md
		for k, v := range want {
			if got := md.Get(k); !slices.Equal(got, v) {
				t.Errorf("%s: %s = %q, want %q", path, k, got, v)
			}
		}
	}
}

// Filter::onReceiveMessage writes the metadata of a headers response of
// the wrong type before finding it spurious; since 1.35 the request then
// fails with a 500 sent through the filter chain, which header_mutation
// sees with that metadata.
func TestDynamicMetadataOnSpuriousResponse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, singleMessageConfig(emulator.Envoy1_37), answer(withMetadata(continueResponse(nil),
		map[string]any{"corsproc": map[string]any{"acao": "https://app.example"}})))
	resp, _, _ := h.get("/")
	wantStatus(t, resp, 500)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("ACAO %q", got)
	}
}

// New refuses what Envoy refuses at configuration time, and what the
// emulator does not emulate, with an error naming the field.
func TestNewValidatesSingleMessage(t *testing.T) {
	t.Parallel()
	ap := func(key, value string) emulator.ResponseMutation {
		return emulator.ResponseMutation{Append: &emulator.HeaderAppend{Key: key, Value: value}}
	}
	for name, c := range map[string]struct {
		m    emulator.ResponseMutation
		want string
	}{
		"unknown_command": {ap("x", "%REQ(origin)%"), "Not supported field in StreamInfo: REQ"},
		"lone_percent":    {ap("x", "100%"), "Couldn't find valid command at position 3"},
		"lowercase":       {ap("x", "%dynamic_metadata(a:b)%"), "Couldn't find valid command"},
		"no_params":       {ap("x", "%DYNAMIC_METADATA%"), "DYNAMIC_METADATA requires parameters"},
		"pseudo":          {ap(":status", "200"), ":-prefixed or host headers may not be modified"},
		"host":            {ap("Host", "x"), ":-prefixed or host headers may not be modified"},
		"bad_name":        {ap("a b", "x"), "want a header name"},
		"control":         {ap("x", "a\nb"), "control characters"},
		"both":            {emulator.ResponseMutation{Remove: "x", Append: &emulator.HeaderAppend{Key: "x"}}, "both Remove and Append"},
		"neither":         {emulator.ResponseMutation{}, "neither Remove nor Append"},
		"remove_pseudo":   {emulator.ResponseMutation{Remove: ":status"}, "Remove \":status\""},
		"bad_action":      {emulator.ResponseMutation{Append: &emulator.HeaderAppend{Key: "x", Action: 7}}, "Append.Action 7"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := emulator.Config{Upstream: "http://127.0.0.1:1", Routes: []emulator.Route{{
				HeaderMutation: &emulator.HeaderMutation{ResponseMutations: []emulator.ResponseMutation{c.m}},
			}}}
			_, err := emulator.New(cfg, noConn(t))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "Routes[0].HeaderMutation.ResponseMutations[0]") {
				t.Errorf("New: %v, want an error with %q", err, c.want)
			}
		})
	}
	_, err := emulator.New(emulator.Config{
		Upstream:                   "http://127.0.0.1:1",
		ReceivingNamespaces:        []string{""},
		GRPCServiceInitialMetadata: []emulator.Metadata{{Key: ":bad"}},
	}, noConn(t))
	if err == nil || !strings.Contains(err.Error(), "ReceivingNamespaces[0] is empty") || !strings.Contains(err.Error(), "GRPCServiceInitialMetadata[0]") {
		t.Errorf("New: %v", err)
	}
}

// noConn is a client connection that is never used.
func noConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///x", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// A processor that fails writes no metadata. With failure_mode_allow the
// request continues and header_mutation still removes the upstream's CORS
// headers, adding none: a fail-closed CORS denial. Without it ext_proc's
// 500, sent in the request phase, goes through header_mutation too
// (Filter::onGrpcError, sendImmediateResponse, sendLocalReplyViaFilterChain).
func TestSingleMessageProcessorFailure(t *testing.T) {
	t.Parallel()
	fail := func(s *procStream) error {
		s.Recv()
		return status.Error(codes.Internal, "boom")
	}
	for _, allow := range []bool{true, false} {
		cfg := singleMessageConfig(emulator.Newest)
		cfg.FailureModeAllow = allow
		h := newHarness(t, cfg, fail)
		upstreamWithCORS(h)
		resp, _, e := h.get("/", "Origin: https://app.example")
		want := 500
		if allow {
			want = 200
		}
		wantStatus(t, resp, want)
		for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Max-Age"} {
			if got := resp.Header.Get(k); got != "" {
				t.Errorf("failure_mode_allow %v: %s %q", allow, k, got)
			}
		}
		if e.DynamicMetadata != nil {
			t.Errorf("failure_mode_allow %v: metadata %v", allow, e.DynamicMetadata)
		}
	}
}
