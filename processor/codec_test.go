package processor

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
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
	want := new(extprocv3.ProcessingRequest)
	wantErr := proto.Unmarshal(b, want)
	got := new(extprocv3.ProcessingRequest)
	gotErr := Codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("Codec error %v, proto.Unmarshal error %v, for %x", gotErr, wantErr, b)
	}
	if wantErr == nil && !proto.Equal(got, want) {
		t.Fatalf("Codec decoded\n%v\nproto.Unmarshal decoded\n%v", got, want)
	}
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
				if !decodeRequest(b, new(extprocv3.ProcessingRequest)) {
					t.Error("decodeRequest fell back to proto.Unmarshal")
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
	f.Fuzz(func(t *testing.T, b []byte) { checkDecode(t, b) })
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
	data, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		codec interface {
			Unmarshal(mem.BufferSlice, any) error
		}
	}{{"codec=proto", stdCodec}, {"codec=corsproc", Codec{}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, new(extprocv3.ProcessingRequest)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
