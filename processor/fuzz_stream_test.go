package processor

// Fuzz targets over whole ext_proc streams and over request header parsing,
// built from fuzz bytes by a small generator.

import (
	"net/url"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/corsproc/corsproc/policy"
)

// gen reads fuzz bytes as a sequence of choices; past the end every choice
// is 0.
type gen struct{ b []byte }

func (g *gen) byte() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

func (g *gen) n(max int) int { return int(g.byte()) % max }

// bytes returns up to max bytes taken from the input, prefixed by a length.
func (g *gen) bytes(max int) []byte {
	n := int(g.byte())
	if n > max {
		n = max
	}
	if n > len(g.b) {
		n = len(g.b)
	}
	s := g.b[:n]
	g.b = g.b[n:]
	return s
}

// pick chooses among dict, or, for the last choice, raw bytes.
func (g *gen) pick(dict []string) string {
	i := g.n(len(dict) + 1)
	if i == len(dict) {
		return string(g.bytes(64))
	}
	return dict[i]
}

var (
	fuzzKeys = []string{":method", ":authority", ":path", ":scheme", "origin", "access-control-request-method",
		"access-control-request-headers", "access-control-request-private-network", "Origin", "cookie", "", "x-other"}
	fuzzValues = []string{"GET", "OPTIONS", "PUT", "purge", "true", "api.example.com", "public.example.com",
		"creds.example.com", "star.example.com", "fwd.example.com", "pna.example.com", "shadow.example.com", "other.example.com",
		"/", "/api/items?x", "https://app.example.com", "https://a.b.example.com", "https://example.com", "https://evilexample.com",
		"https://app.example.com.evil.net", "http://localhost:3000", "http://localhost", "http://localhost:80", "https://x.example.org",
		"https://App.example.com", "https://app.example.com/", "null", "", "content-type, x-requested-with", "X-A,,\tx-b ", "\xff"}
	fuzzPolicies = []string{"web", "creds", "public", "star", "fwd", "pna", "shadow", "nope", ""}
)

func (g *gen) headers() []*corev3.HeaderValue {
	n := g.n(20)
	if g.n(16) == 0 {
		n += 300 // past DefaultMaxRequestHeaders
	}
	var hs []*corev3.HeaderValue
	for range n {
		if g.n(32) == 0 {
			hs = append(hs, nil)
			continue
		}
		k, v := g.pick(fuzzKeys), g.pick(fuzzValues)
		switch g.n(8) {
		case 0:
			hs = append(hs, &corev3.HeaderValue{Key: k, Value: v})
		case 1:
			hs = append(hs, &corev3.HeaderValue{Key: k, Value: v, RawValue: []byte(v + "!")})
		default:
			hs = append(hs, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
		}
	}
	return hs
}

// message makes one ProcessingRequest of any kind, or nil to skip.
func (g *gen) message() *extprocv3.ProcessingRequest {
	m := &extprocv3.ProcessingRequest{}
	switch g.n(10) {
	case 0, 1, 2:
		m.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: g.headers()}, EndOfStream: g.n(2) == 0}}
	case 3, 4:
		m.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: g.headers()}}}
	case 5:
		m.Request = &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: g.bytes(16)}}
	case 6:
		m.Request = &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: g.bytes(16)}}
	case 7:
		if g.n(2) == 0 {
			m.Request = &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}
		} else {
			m.Request = &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{}}
		}
	case 8:
		// The bytes as a protobuf message: any field, any oneof, unknown
		// fields too.
		if err := proto.Unmarshal(g.bytes(255), m); err != nil {
			return nil
		}
		return m
	case 9:
		// No oneof, or an empty one.
		if g.n(2) == 0 {
			m.Request = &extprocv3.ProcessingRequest_RequestHeaders{}
		}
	}
	switch g.n(4) {
	case 0:
		m.Attributes = routeAttributes(g.pick([]string{"storefront", "api", ""}))
	case 1:
		m.Attributes = map[string]*structpb.Struct{AttributesKey: {Fields: map[string]*structpb.Value{
			AttributeRoute: structpb.NewNumberValue(1)}}}
	}
	m.ObservabilityMode = g.n(16) == 0
	return m
}

// stream reads one stream as FuzzStream runs it: up to two
// x-corsproc-policy metadata values, then one to eight messages, nil where
// message skips one.
func (g *gen) stream() (md []string, msgs []*extprocv3.ProcessingRequest) {
	for range g.n(3) {
		md = append(md, g.pick(fuzzPolicies))
	}
	for range 1 + g.n(8) {
		msgs = append(msgs, g.message())
	}
	return md, msgs
}

// fuzzOriginAllowed restates which origins some policy of fuzzSet allows:
// the union of semanticsYAML's allowed origins (allow_all_origins answers
// "*" and is checked apart).
func fuzzOriginAllowed(o string) bool {
	if o == "https://app.example.com" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme+"://"+u.Host != o || o != strings.ToLower(o) {
		return false
	}
	host, port := u.Hostname(), u.Port()
	label := regexp.MustCompile(`^[a-z0-9_-]{1,63}$`)
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if !label.MatchString(l) {
			return false
		}
	}
	switch {
	case u.Scheme == "https" && port == "" && len(labels) >= 3 && strings.HasSuffix(host, ".example.com"):
		return true
	case u.Scheme == "http" && host == "localhost":
		return port == "" || port != "80" && port[0] != '0'
	case u.Scheme == "https" && port == "" && len(labels) == 3 && strings.HasSuffix(host, ".example.org"):
		return true
	}
	return false
}

// requestOrigins returns the Origin values of request headers, as corsproc
// reads them.
func requestOrigins(hs []*corev3.HeaderValue) []string {
	var out []string
	for _, hv := range hs {
		if hv != nil && hv.Key == policy.HeaderOrigin {
			out = append(out, valueOf(hv).String())
		}
	}
	return out
}

func (v headerValue) String() string { return string(v.raw) + v.str }

// FuzzStream feeds the processor whole ext_proc streams built from the
// fuzz bytes: several messages of any kind (headers, bodies, trailers,
// unknown or empty oneofs, raw protobuf), any headers, attributes,
// metadata, observability mode. Invariants on every input:
//   - every message gets exactly one response of the matching type (an
//     immediate response for request_headers), none in observability mode,
//     and the stream ends cleanly, except with INVALID_ARGUMENT right
//     after a message with no known oneof (fakeStream checks the protocol
//     as Envoy does, including marshalling and the proto's rules);
//   - no header sets both value and raw_value;
//   - ACAO is "*" or the request's one Origin, and then an origin some
//     policy allows; never "*" with ACAC "true";
//   - no goroutine is left behind;
//   - never the upstream's CORS headers on a governed route: the same
//     stream, run against the set with every policy enforced (so that
//     every request is governed, by its policy, the default, or an unknown
//     name), is answered by corsproc or keeps its response phase, which
//     removes every CORS response header (checkGoverned).
func FuzzStream(f *testing.F) {
	set := mustParse(f, semanticsYAML+"\ndefault_policy: web\n")
	srv := New(set, Options{})
	srvIdle := New(set, Options{IdleTimeout: time.Minute})
	srvEnforced := New(mustParse(f, enforcedYAML()+"\ndefault_policy: web\n"), Options{})
	f.Add([]byte{})
	f.Add([]byte{0, 6, 4, 0, 4, 15, 0, 2, 0, 3, 5, 2, 3, 0})
	f.Add([]byte("\x01\x00\x00\x07\x02\x04\x10\x00\x00\x05\x0f\x03"))
	f.Fuzz(func(t *testing.T, data []byte) {
		before := runtime.NumGoroutine()
		g := &gen{b: data}
		md, msgs := g.stream()
		msgs = slices.DeleteFunc(msgs, func(m *extprocv3.ProcessingRequest) bool { return m == nil })
		fs := newFakeStream(t, md, msgs...)
		p := srv
		if g.n(2) == 0 {
			// As TapHandle makes it: the idle timer runs.
			fs.ctx, p = withStreamCancel(fs.ctx), srvIdle
		}
		err := p.Process(fs)
		if err != nil {
			last := fs.in[fs.next-1]
			if status.Code(err) != codes.InvalidArgument || kind(last) != "unknown" {
				t.Fatalf("Process = %v after %s", err, kind(last))
			}
		}
		// Every message handed out was answered, but the unknown last one
		// and those in observability mode; each answer is checked against
		// the Origin of the request_headers decided last.
		var origins []string
		j := 0
		for i, m := range fs.in[:fs.next] {
			if h := m.GetRequestHeaders(); h != nil {
				origins = requestOrigins(h.GetHeaders().GetHeaders())
			}
			if m.ObservabilityMode || err != nil && i == fs.next-1 {
				continue
			}
			if j >= len(fs.out) {
				t.Fatalf("message %d (%s) got no response", i, kind(m))
			}
			checkStreamInvariants(t, fs.out[j], origins)
			j++
		}
		if j != len(fs.out) {
			t.Fatalf("%d responses to %d messages that want one", len(fs.out), j)
		}
		governed := newFakeStream(t, md, msgs...)
		if err := srvEnforced.Process(governed); err != nil && status.Code(err) != codes.InvalidArgument {
			t.Fatalf("Process (enforced set) = %v", err)
		}
		checkGoverned(t, governed)
		deadline := time.Now().Add(time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Fatalf("%d goroutines after the stream, %d before", n, before)
		}
	})
}

// enforcedYAML is semanticsYAML with its shadow policy enforced: every
// request a policy of it selects is governed and enforced.
func enforcedYAML() string {
	return strings.ReplaceAll(semanticsYAML, "mode: shadow", "mode: enforce")
}

// corsResponseHeaders are every CORS response header an upstream could
// send, written out here rather than taken from the policy package.
var corsResponseHeaders = []string{
	"access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-methods",
	"access-control-allow-headers", "access-control-expose-headers", "access-control-max-age",
	"access-control-allow-private-network",
}

// checkGoverned asserts "never the upstream's CORS headers on a governed
// route" on a stream whose every request is governed and enforced: each
// request_headers answered is answered by corsproc itself (an immediate
// response) or with a CONTINUE that keeps the response phase, and the
// response_headers that follows removes every CORS response header and
// sets only corsproc's. A request_headers in observability mode is decided
// but not answered: the response phase after it is not checked.
func checkGoverned(t *testing.T, fs *fakeStream) {
	t.Helper()
	strip := false
	j := 0
	for i, m := range fs.in[:fs.next] {
		var r *extprocv3.ProcessingResponse
		if j < len(fs.received) && fs.received[j] == m {
			r = fs.out[j]
			j++
		}
		switch kind(m) {
		case "request_headers":
			strip = false
			switch {
			case r == nil, r.GetImmediateResponse() != nil:
			case r.GetModeOverride().GetResponseHeaderMode() == extprocfilterv3.ProcessingMode_SKIP:
				t.Fatalf("message %d: a governed request's response phase skipped: the upstream's CORS headers would reach the browser", i)
			default:
				strip = true
			}
		case "response_headers":
			if !strip || r == nil {
				continue
			}
			removed := r.GetResponseHeaders().GetResponse().GetHeaderMutation().GetRemoveHeaders()
			for _, h := range corsResponseHeaders {
				if !slices.Contains(removed, h) {
					t.Fatalf("message %d: a governed response keeps the upstream's %s (removed %q)", i, h, removed)
				}
			}
		}
	}
}

func checkStreamInvariants(t *testing.T, r *extprocv3.ProcessingResponse, origins []string) {
	t.Helper()
	var set []*corev3.HeaderValueOption
	switch {
	case r.GetImmediateResponse() != nil:
		set = r.GetImmediateResponse().GetHeaders().GetSetHeaders()
	case r.GetRequestHeaders() != nil:
		set = r.GetRequestHeaders().GetResponse().GetHeaderMutation().GetSetHeaders()
	case r.GetResponseHeaders() != nil:
		set = r.GetResponseHeaders().GetResponse().GetHeaderMutation().GetSetHeaders()
	}
	var acao, acac []string
	for _, o := range set {
		h := o.GetHeader()
		if h.GetValue() != "" && len(h.GetRawValue()) > 0 {
			t.Fatalf("header %s sets both value and raw_value", h.GetKey())
		}
		switch h.GetKey() {
		case policy.HeaderACAO:
			acao = append(acao, string(h.GetRawValue()))
		case policy.HeaderACAC:
			acac = append(acac, string(h.GetRawValue()))
		}
	}
	if len(acao) > 1 || len(acac) > 1 {
		t.Fatalf("ACAO %q, ACAC %q: set more than once", acao, acac)
	}
	if len(acao) == 0 {
		if len(acac) > 0 {
			t.Fatalf("ACAC %q without ACAO", acac)
		}
		return
	}
	if acao[0] == "*" {
		if slices.Contains(acac, "true") {
			t.Fatal("ACAO * with ACAC true")
		}
		return
	}
	if len(origins) != 1 || acao[0] != origins[0] {
		t.Fatalf("ACAO %q for the request's Origin values %q", acao[0], origins)
	}
	if !fuzzOriginAllowed(acao[0]) {
		t.Fatalf("ACAO %q: no policy allows that origin", acao[0])
	}
}

// FuzzRequestHeaders checks the reading of request headers against a
// plain restatement: the first :method, :authority, :path, Origin, ACRM
// and ACRPN entry wins (raw_value, or value when raw_value is empty), a
// repeated Origin or ACRM is flagged, every ACRH line is kept in order;
// past the header bounds the Origin is unusable and an OPTIONS is a failed
// preflight, whatever the headers beyond say.
func FuzzRequestHeaders(f *testing.F) {
	f.Add([]byte{}, uint8(0), uint16(0))
	f.Add([]byte("\x0c\x00\x00\x01\x00\x04\x0f\x05\x01\x06\x1c"), uint8(4), uint16(100))
	f.Add([]byte("\x03\x04\x0f\x04\x10\x05\x01\x06\x1c\x06\x1d"), uint8(0), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, maxEntries uint8, maxBytes uint16) {
		g := &gen{b: data}
		hs := g.headers()
		srv := New(nil, Options{MaxRequestHeaders: int(maxEntries), MaxRequestHeaderBytes: int(maxBytes)})
		st := getStream()
		defer putStream(st)
		st.route, st.policyName = "route", "name"
		var facts requestFacts
		extract(hs, srv.bounds, &facts)
		st.request(&facts)
		exceeded := facts.exceeded
		r := st.req

		// The bounds, restated.
		entries, bytes := DefaultMaxRequestHeaders, DefaultMaxRequestHeaderBytes
		if maxEntries > 0 {
			entries = int(maxEntries)
		}
		if maxBytes > 0 {
			bytes = int(maxBytes)
		}
		size := 0
		for _, hv := range hs {
			if hv != nil {
				size += len(hv.Key) + len(hv.Value) + len(hv.RawValue)
			}
		}
		if over := len(hs) > entries || size > bytes; over != (exceeded != "") {
			t.Fatalf("%d entries, %d bytes, bounds %d and %d: exceeded %q", len(hs), size, entries, bytes, exceeded)
		}
		if r.Route != "route" || r.PolicyName != "name" {
			t.Fatalf("route %q, policy %q", r.Route, r.PolicyName)
		}
		if exceeded != "" {
			// Nothing partly read of the CORS headers is kept, and the
			// policy is told the request was cut (policy tests show it then
			// refuses CORS: TestDecideTruncated).
			if !r.Truncated || r.Origin != "" || r.DuplicateOrigin || r.ACRM != "" || r.DuplicateACRM || r.ACRH != nil || r.ACRPN != "" {
				t.Fatalf("past the bounds: %+v", r)
			}
			return
		}
		first := map[string]string{}
		count := map[string]int{}
		var acrh []string
		for _, hv := range hs {
			if hv == nil {
				continue
			}
			v := valueOf(hv).String()
			if hv.Key == policy.HeaderACRH {
				acrh = append(acrh, v)
				continue
			}
			if count[hv.Key] == 0 {
				first[hv.Key] = v
			}
			count[hv.Key]++
		}
		want := policy.Request{
			Method: first[":method"], Origin: first["origin"], DuplicateOrigin: count["origin"] > 1,
			ACRM: first["access-control-request-method"], DuplicateACRM: count["access-control-request-method"] > 1,
			ACRH: acrh, ACRPN: first["access-control-request-private-network"],
			Host: first[":authority"], Path: first[":path"], Route: "route", PolicyName: "name",
		}
		if !equalRequest(r, want) {
			t.Fatalf("read %+v\nwant %+v", r, want)
		}
	})
}

func equalRequest(a, b policy.Request) bool {
	return slices.Equal(a.ACRH, b.ACRH) && reflect.DeepEqual(
		[]any{a.Method, a.Origin, a.DuplicateOrigin, a.ACRM, a.DuplicateACRM, a.ACRPN, a.Host, a.Path, a.Route, a.PolicyName, a.AmbiguousPolicyName},
		[]any{b.Method, b.Origin, b.DuplicateOrigin, b.ACRM, b.DuplicateACRM, b.ACRPN, b.Host, b.Path, b.Route, b.PolicyName, b.AmbiguousPolicyName})
}
