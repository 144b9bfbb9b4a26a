package processor

import (
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// codecMessages are ProcessingRequests as Envoy sends them, and the odd
// ones the hand-written decoder leaves to proto.Unmarshal.
func codecMessages() map[string]*extprocv3.ProcessingRequest {
	o := "https://app.example.com"
	withMeta := get("api.example.com", o).message()
	withMeta.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"envoy.filters.http.jwt_authn": {Fields: map[string]*structpb.Value{"sub": structpb.NewStringValue("alice")}},
	}}
	withMeta.ProtocolConfig = &extprocv3.ProtocolConfiguration{RequestBodyMode: extprocfilterv3.ProcessingMode_BUFFERED, SendBodyWithoutWaitingForHeaderResponse: true}
	observe := defaultUpstream()
	observe.ObservabilityMode = true
	headerAttrs := defaultUpstream()
	headerAttrs.GetResponseHeaders().Attributes = routeAttributes("x") // deprecated field: left to proto
	body := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte("{}"), EndOfStream: true}}}
	return map[string]*extprocv3.ProcessingRequest{
		"actual":          get("api.example.com", o).message(),
		"preflight":       preflight("api.example.com", o, "PUT", acrhH("content-type"), acrhH("x-a, x-b")).message(),
		"route":           envoyRequest{Route: "storefront", Headers: [][2]string{{"origin", o}}}.message(),
		"legacy_value":    envoyRequest{LegacyValue: true, Headers: [][2]string{{"origin", o}, {"x-unknown-header", "v"}}}.message(),
		"body_follows":    envoyRequest{Body: true, Method: "POST"}.message(),
		"upstream":        defaultUpstream(),
		"empty_value":     envoyResponse(204, [2]string{"x-empty", ""}),
		"no_headers":      {Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{}}},
		"empty_map":       {Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{}}}},
		"nothing":         {},
		"metadata":        withMeta,
		"observability":   observe,
		"header_attrs":    headerAttrs,
		"body":            body,
		"attributes_only": {Attributes: routeAttributes("r")},
	}
}

// checkDecode decodes b with the Codec and with proto.Unmarshal and fails
// unless both agree: both refuse it, or both produce equal messages.
func checkDecode(t testing.TB, b []byte) {
	t.Helper()
	checkDecodeBounded(t, Codec{}, b)
}

// checkDecodeBounded decodes b with c and with proto.Unmarshal. Within c's
// bounds (every header map within them as headerBounds.fit counts, at most
// MaxOtherMessages other messages), both must agree: both refuse b, or both
// produce equal messages. Past them, c may refuse b with errPastBounds, or
// decode it with its header maps cut after the entry fit stops at: the
// entries before it as proto.Unmarshal decodes them, fit finding the same
// bound at the same entry, and everything else equal.
func checkDecodeBounded(t testing.TB, c Codec, b []byte) {
	t.Helper()
	checkScan(t, c, b)
	want := new(extprocv3.ProcessingRequest)
	wantErr := proto.Unmarshal(b, want)
	got := new(extprocv3.ProcessingRequest)
	gotErr := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got)
	lim := c.limits()
	if wantErr == nil && withinBounds(want, lim.headerBounds) {
		if gotErr == errPastBounds && len(b) > 2*MaxOtherMessages {
			// More than MaxOtherMessages message fields on the wire can
			// decode to fewer (merged, or map entries of one key): each
			// takes two bytes at least.
			return
		}
		if gotErr != nil {
			t.Fatalf("Codec error %v for a message within its bounds, proto.Unmarshal decodes it: %x", gotErr, b)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("Codec decoded\n%v\nproto.Unmarshal decoded\n%v", got, want)
		}
		return
	}
	if gotErr != nil {
		if wantErr == nil && gotErr != errPastBounds {
			t.Fatalf("Codec error %v, want errPastBounds; proto.Unmarshal decodes %x", gotErr, b)
		}
		return
	}
	if wantErr != nil {
		// Accepted where proto.Unmarshal refuses: only when what it
		// refuses lies past a header bound, unread.
		for _, m := range headerMaps(got) {
			if _, l := lim.fit(m.GetHeaders()); l != "" {
				return
			}
		}
		t.Fatalf("Codec accepted %x within its bounds; proto.Unmarshal refuses it: %v", b, wantErr)
	}
	gm, wm := headerMaps(got), headerMaps(want)
	if len(gm) != len(wm) {
		t.Fatalf("Codec decoded %d header maps, proto.Unmarshal %d", len(gm), len(wm))
	}
	for i := range gm {
		g, w := gm[i].GetHeaders(), wm[i].GetHeaders()
		gn, gl := lim.fit(g)
		wn, wl := lim.fit(w)
		if gn != wn || gl != wl {
			t.Fatalf("header map %d: fit %d %q on the Codec's %d entries, %d %q on proto.Unmarshal's %d", i, gn, gl, len(g), wn, wl, len(w))
		}
		if len(g) > lim.entries+1 || wl != "" && len(g) != wn+1 || wl == "" && len(g) != len(w) {
			t.Fatalf("header map %d: the Codec kept %d entries of %d, fit stops at %d (%q)", i, len(g), len(w), wn, wl)
		}
		for j := range wn {
			if !proto.Equal(g[j], w[j]) {
				t.Fatalf("header map %d, entry %d: Codec %v, proto.Unmarshal %v", i, j, g[j], w[j])
			}
		}
	}
	got, want = withoutHeaderMaps(got), withoutHeaderMaps(want)
	if !proto.Equal(got, want) {
		t.Fatalf("besides the header maps, Codec decoded\n%v\nproto.Unmarshal decoded\n%v", got, want)
	}
}

// headerMaps are the header maps of m, in a fixed order.
func headerMaps(m *extprocv3.ProcessingRequest) []*corev3.HeaderMap {
	var ms []*corev3.HeaderMap
	for _, hm := range []*corev3.HeaderMap{
		m.GetRequestHeaders().GetHeaders(), m.GetResponseHeaders().GetHeaders(),
		m.GetRequestTrailers().GetTrailers(), m.GetResponseTrailers().GetTrailers(),
	} {
		if hm != nil {
			ms = append(ms, hm)
		}
	}
	return ms
}

// withoutHeaderMaps is a copy of m with its header maps emptied.
func withoutHeaderMaps(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingRequest {
	m = proto.Clone(m).(*extprocv3.ProcessingRequest)
	for _, hm := range headerMaps(m) {
		hm.Headers = nil
	}
	return m
}

// withinBounds reports whether every header map of m is within b and m
// holds at most MaxOtherMessages other messages.
func withinBounds(m *extprocv3.ProcessingRequest, b headerBounds) bool {
	for _, hm := range headerMaps(m) {
		if _, l := b.fit(hm.GetHeaders()); l != "" {
			return false
		}
	}
	return otherMessages(m.ProtoReflect()) <= MaxOtherMessages
}

// otherMessages counts the messages within m, header entries aside.
func otherMessages(m protoreflect.Message) int {
	n := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap() && fd.MapValue().Kind() == protoreflect.MessageKind:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				n += 2 + otherMessages(mv.Message())
				return true
			})
		case fd.IsMap():
			n += v.Map().Len()
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			l := v.List()
			for i := range l.Len() {
				if fd.Message().FullName() != "envoy.config.core.v3.HeaderValue" {
					n++
				}
				n += otherMessages(l.Get(i).Message())
			}
		case fd.Kind() == protoreflect.MessageKind:
			n += 1 + otherMessages(v.Message())
		}
		return true
	})
	return n
}

func TestCodecMatchesProto(t *testing.T) {
	for name, m := range codecMessages() {
		t.Run(name, func(t *testing.T) {
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			checkDecode(t, b)
			// The hand-written path, not the fallback, handles Envoy's
			// header messages.
			switch name {
			case "actual", "preflight", "route", "legacy_value", "upstream", "metadata", "observability":
				if !decodeRequest(b, new(extprocv3.ProcessingRequest), Codec{}.limits()) {
					t.Error("decodeRequest fell back to proto.Unmarshal")
				}
			}
			// Envoy's request headers are scanned, not built.
			switch name {
			case "actual", "preflight", "route", "legacy_value", "body_follows":
				m := new(message)
				if !scanRequest(b, m, Codec{}.limits()) {
					t.Error("scanRequest left the request headers to be decoded")
				}
			}
		})
	}
}

// TestCodecOddWire feeds encodings Envoy does not produce: a singular field
// twice (merged by proto), two oneof cases, invalid UTF-8, truncation.
func TestCodecOddWire(t *testing.T) {
	hv := func(k, v string) []byte {
		var b []byte
		b = protowire.AppendTag(b, fieldKey, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, fieldRawValue, protowire.BytesType)
		b = protowire.AppendString(b, v)
		return b
	}
	headerMap := func(entries ...[]byte) []byte {
		var b []byte
		for _, e := range entries {
			b = protowire.AppendTag(b, fieldHeaderValues, protowire.BytesType)
			b = protowire.AppendBytes(b, e)
		}
		return b
	}
	httpHeaders := func(m []byte) []byte {
		b := protowire.AppendTag(nil, fieldHeaderMap, protowire.BytesType)
		return protowire.AppendBytes(b, m)
	}
	field := func(num protowire.Number, v []byte) []byte {
		b := protowire.AppendTag(nil, num, protowire.BytesType)
		return protowire.AppendBytes(b, v)
	}
	m1 := httpHeaders(headerMap(hv(":method", "GET"), hv("origin", "https://a.example")))
	m2 := httpHeaders(headerMap(hv(":path", "/x")))
	cases := map[string][]byte{
		"request_headers_twice":  append(field(fieldRequestHeaders, m1), field(fieldRequestHeaders, m2)...),
		"two_oneof_cases":        append(field(fieldRequestHeaders, m1), field(fieldResponseHeaders, m2)...),
		"header_map_twice":       field(fieldRequestHeaders, append(httpHeaders(headerMap(hv("a", "1"))), httpHeaders(headerMap(hv("b", "2")))...)),
		"key_twice":              field(fieldRequestHeaders, httpHeaders(headerMap(append(hv("a", "1"), hv("b", "2")...)))),
		"invalid_utf8_key":       field(fieldRequestHeaders, httpHeaders(headerMap(hv("a\xff", "1")))),
		"invalid_utf8_raw_value": field(fieldRequestHeaders, httpHeaders(headerMap(hv("a", "\xff")))),
		"truncated":              field(fieldRequestHeaders, m1)[:10],
		"unknown_field":          append(field(fieldRequestHeaders, m1), field(99, []byte("x"))...),
		"attribute_twice":        append(field(fieldAttributes, field(fieldKey, []byte("k"))), field(fieldAttributes, field(fieldKey, []byte("k")))...),
		"attribute_no_value":     field(fieldAttributes, field(fieldKey, []byte("k"))),
		"observability_as_bytes": append(field(fieldRequestHeaders, m1), field(fieldObservabilityMode, []byte{1})...),
		"struct_entry_no_value":  field(fieldAttributes, field(fieldValue, field(fieldStructFields, field(fieldKey, []byte("k"))))),
		"struct_number_value": field(fieldAttributes, field(fieldValue, field(fieldStructFields,
			append(field(fieldKey, []byte("k")), field(fieldValue, protowire.AppendFixed64(protowire.AppendTag(nil, 2, protowire.Fixed64Type), 1))...)))),
		"struct_key_twice": field(fieldAttributes, field(fieldValue, append(
			field(fieldStructFields, append(field(fieldKey, []byte("k")), field(fieldValue, field(fieldStringValue, []byte("a")))...)),
			field(fieldStructFields, append(field(fieldKey, []byte("k")), field(fieldValue, field(fieldStringValue, []byte("b")))...))...))),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) { checkDecode(t, b) })
	}
}

func FuzzCodec(f *testing.F) {
	for _, m := range codecMessages() {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// Past the small codec's bounds, on both paths.
	five := wireHeaderMap(wireHV(":method", "GET"), wireHV("origin", "https://a.example"), wireHV("a", "1"), wireHV("b", "2"), wireHV("c", "3"))
	f.Add(requestHeadersWire(five))
	f.Add(append(requestHeadersWire(five), wireField(99, []byte("x"))...))
	f.Add(requestHeadersWire(wireHeaderMap(wireHV("cookie", strings.Repeat("c", 100)))))
	small := Codec{MaxHeaders: 4, MaxHeaderBytes: 64}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		checkDecodeBounded(t, small, b)
	})
}

// TestCodecServer runs the processor behind a gRPC server using the Codec,
// as cmd/corsproc would install it, for an actual request and a preflight.
func TestCodecServer(t *testing.T) {
	srv := New(mustParse(t, semanticsYAML), Options{Registerer: prometheus.NewRegistry()})
	conn, _ := newBufconn(t, func(s *grpc.Server) { extprocv3.RegisterExternalProcessorServer(s, srv) },
		grpc.ForceServerCodecV2(Codec{}))
	client := extprocv3.NewExternalProcessorClient(conn)

	const o = "https://app.example.com"
	st, err := client.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(get("api.example.com", o).message()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := st.Send(defaultUpstream()); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var acao string
	for _, h := range resp.GetResponseHeaders().GetResponse().GetHeaderMutation().GetSetHeaders() {
		if h.GetHeader().GetKey() == "access-control-allow-origin" {
			acao = string(h.GetHeader().GetRawValue())
		}
	}
	if acao != o {
		t.Errorf("ACAO %q, want %q; response %v", acao, o, resp)
	}
	st.CloseSend()

	st, err = client.Process(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(preflight("api.example.com", o, "PUT", acrhH("content-type")).message()); err != nil {
		t.Fatal(err)
	}
	resp, err = st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetImmediateResponse().GetStatus().GetCode(); got != 204 && got != 200 {
		t.Errorf("preflight answered %v, want an immediate 2xx: %v", got, resp)
	}
	st.CloseSend()
}

// BenchmarkCodecUnmarshal compares the Codec with the standard "proto"
// codec on Envoy's request headers message.
func BenchmarkCodecUnmarshal(b *testing.B) {
	m := envoyRequest{Route: "storefront", Headers: [][2]string{
		{"accept-encoding", "gzip, deflate, br, zstd"}, {"accept-language", "en-GB,en;q=0.9"},
		{"origin", "https://app.example.com"}, {"referer", "https://app.example.com/"},
		{"sec-fetch-dest", "empty"}, {"sec-fetch-mode", "cors"}, {"sec-fetch-site", "same-site"},
		{"x-forwarded-proto", "https"}, {"x-request-id", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"},
	}}.message()
	wire, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	data := mem.BufferSlice{mem.SliceBuffer(wire)} // as gRPC hands it over, once
	for _, c := range []struct {
		name  string
		codec interface {
			Unmarshal(mem.BufferSlice, any) error
		}
	}{{"codec=proto", stdCodec}, {"codec=corsproc", Codec{}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.codec.Unmarshal(data, new(extprocv3.ProcessingRequest)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// What Process receives: the request headers scanned into its message.
	b.Run("codec=corsproc/scan", func(b *testing.B) {
		b.ReportAllocs()
		m := new(message)
		for b.Loop() {
			if err := (Codec{}).Unmarshal(data, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// wireHeaders builds a HeaderMap on the wire from HeaderValues already
// encoded.
func wireHeaderMap(entries ...[]byte) []byte {
	var b []byte
	for _, e := range entries {
		b = protowire.AppendTag(b, fieldHeaderValues, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return b
}

// wireField is one length-delimited field.
func wireField(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

// wireHV is a HeaderValue with a key and a raw_value.
func wireHV(k, v string) []byte {
	return append(wireField(fieldKey, []byte(k)), wireField(fieldRawValue, []byte(v))...)
}

// requestHeadersWire is a ProcessingRequest with request_headers holding
// the header map m.
func requestHeadersWire(m []byte) []byte {
	return wireField(fieldRequestHeaders, wireField(fieldHeaderMap, m))
}

// The codec's bounds: a header map past them is cut after the entry the
// processor's bound check stops at, or, on the path left to
// proto.Unmarshal, refused; other messages past MaxOtherMessages are
// refused. Within them it decodes what proto.Unmarshal decodes.
func TestCodecBounds(t *testing.T) {
	c := Codec{MaxHeaders: 4, MaxHeaderBytes: 64}
	entries := func(n int, k, v string) [][]byte {
		es := make([][]byte, n)
		for i := range es {
			es[i] = wireHV(k, v)
		}
		return es
	}
	bigStruct := func(n int) []byte {
		var st []byte
		for i := range n {
			st = append(st, wireField(fieldStructFields, append(wireField(fieldKey, []byte(strconv.Itoa(i))),
				wireField(fieldValue, wireField(fieldStringValue, []byte("v")))...))...)
		}
		return st
	}
	unknown := wireField(99, []byte("x"))
	for _, c2 := range []struct {
		name string
		b    []byte
		// want: "" decodes as proto.Unmarshal does; a limit: cut, fit
		// stopping at that bound; "refused": errPastBounds.
		want string
	}{
		{"at_count", requestHeadersWire(wireHeaderMap(entries(4, "a", "1")...)), ""},
		{"past_count", requestHeadersWire(wireHeaderMap(entries(10, "a", "1")...)), LimitRequestHeaders},
		{"many_empty", requestHeadersWire(wireHeaderMap(entries(100000, "", "")...)), LimitRequestHeaders},
		{"at_bytes", requestHeadersWire(wireHeaderMap(wireHV("a", strings.Repeat("v", 63)))), ""},
		{"past_bytes", requestHeadersWire(wireHeaderMap(wireHV("a", "1"), wireHV("cookie", strings.Repeat("c", 1000)), wireHV("b", "2"))), LimitRequestHeaderBytes},
		// More bytes on the wire than the bound, fewer counted: a key
		// repeated, the last one kept.
		{"wire_past_bytes_counted_within", requestHeadersWire(wireHeaderMap(append(wireField(fieldKey, []byte(strings.Repeat("k", 100))), wireHV("a", "1")...))), ""},
		// What proto.Unmarshal refuses, past the bound, is not read.
		{"invalid_utf8_past_count", requestHeadersWire(wireHeaderMap(append(entries(5, "a", "1"), wireHV("\xff", "1"))...)), LimitRequestHeaders},
		{"response_past_count", wireField(fieldResponseHeaders, wireField(fieldHeaderMap, wireHeaderMap(entries(10, "a", "1")...))), LimitRequestHeaders},
		// Left to proto.Unmarshal: refused past the bounds, decoded within.
		{"fallback_within", append(requestHeadersWire(wireHeaderMap(entries(4, "a", "1")...)), unknown...), ""},
		{"fallback_past_count", append(requestHeadersWire(wireHeaderMap(entries(5, "a", "1")...)), unknown...), "refused"},
		{"fallback_past_bytes", append(requestHeadersWire(wireHeaderMap(wireHV("cookie", strings.Repeat("c", 65)))), unknown...), "refused"},
		{"trailers_past_count", wireField(6, wireField(1, wireHeaderMap(entries(5, "a", "1")...))), "refused"},
		{"attributes_within", wireField(fieldAttributes, append(wireField(fieldKey, []byte("k")), wireField(fieldValue, bigStruct(MaxOtherMessages/2-2))...)), ""},
		{"attributes_past_others", wireField(fieldAttributes, append(wireField(fieldKey, []byte("k")), wireField(fieldValue, bigStruct(MaxOtherMessages/2))...)), "refused"},
		{"metadata_past_others", wireField(fieldMetadataContext, wireField(1, append(wireField(fieldKey, []byte("ns")), wireField(fieldValue, bigStruct(MaxOtherMessages))...))), "refused"},
		{"fallback_attributes_past_others", append(wireField(fieldAttributes, append(wireField(fieldKey, []byte("k")), wireField(fieldValue, bigStruct(MaxOtherMessages/2))...)), unknown...), "refused"},
	} {
		t.Run(c2.name, func(t *testing.T) {
			checkDecodeBounded(t, c, c2.b)
			got := new(extprocv3.ProcessingRequest)
			err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(c2.b)}, got)
			if c2.want == "refused" {
				if err != errPastBounds {
					t.Fatalf("error %v, want errPastBounds", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range headerMaps(got) {
				n, l := c.limits().fit(m.GetHeaders())
				if l != c2.want {
					t.Errorf("fit = %d, %q, want %q", n, l, c2.want)
				}
				if len(m.GetHeaders()) > c.MaxHeaders+1 {
					t.Errorf("%d entries built, bound %d", len(m.GetHeaders()), c.MaxHeaders)
				}
			}
		})
	}
}

// One message of half a million empty header entries, the shape that cost
// 54 MB to decode: the Codec builds the entries the default bound lets the
// processor inspect, and one more.
func TestCodecBuildsNoMoreThanTheBound(t *testing.T) {
	b := worstCaseEntries(DefaultMaxRecvMsgSize)
	got := new(extprocv3.ProcessingRequest)
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got); err != nil {
		t.Fatal(err)
	}
	if n := len(got.GetRequestHeaders().GetHeaders().GetHeaders()); n != DefaultMaxRequestHeaders+1 {
		t.Errorf("%d header entries built, want %d", n, DefaultMaxRequestHeaders+1)
	}
	if n, l := (Codec{}).limits().fit(got.GetRequestHeaders().GetHeaders().GetHeaders()); l != LimitRequestHeaders || n != DefaultMaxRequestHeaders {
		t.Errorf("fit = %d, %q", n, l)
	}
}

// worstCaseEntries is a request_headers message of size bytes at most,
// made of empty header entries: the most entries a message of that size
// can carry (two bytes each).
func worstCaseEntries(size int) []byte {
	n := (size - 16) / 2
	m := make([]byte, 0, 2*n)
	for range n {
		m = protowire.AppendTag(m, fieldHeaderValues, protowire.BytesType)
		m = protowire.AppendVarint(m, 0)
	}
	return requestHeadersWire(m)
}
