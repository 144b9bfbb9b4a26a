package processor

import (
	"bytes"
	"reflect"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// checkScan decodes b with c into a *message, as Process receives, and into
// a *ProcessingRequest, and fails unless the two agree: both refuse b, for
// the same reason, or the message is the same ProcessingRequest, or it was
// scanned and its facts are those extract and routeOf read from the
// decoded message, within the same bounds. The scanned facts must not
// point into b, which gRPC reuses once Unmarshal returns.
func checkScan(t testing.TB, c Codec, b []byte) {
	t.Helper()
	lim := c.limits()
	buf := bytes.Clone(b)
	m := &message{bounds: lim.headerBounds}
	errM := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(buf)}, m)
	for i := range buf {
		buf[i] = 0xff // gRPC's buffer, reused
	}
	req := new(extprocv3.ProcessingRequest)
	errR := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, req)
	if (errM == nil) != (errR == nil) || (errM == errPastBounds) != (errR == errPastBounds) {
		t.Fatalf("into a message: error %v; into a ProcessingRequest: error %v; %x", errM, errR, b)
	}
	if errM != nil {
		return
	}
	if !m.scanned {
		if !proto.Equal(&m.ProcessingRequest, req) {
			t.Fatalf("not scanned, and decoded\n%v\ninto a message, but\n%v\ninto a ProcessingRequest", &m.ProcessingRequest, req)
		}
		return
	}
	h := req.GetRequestHeaders()
	if h == nil || m.GetRequestHeaders() == nil || m.GetRequestHeaders().GetHeaders() != nil ||
		m.GetRequestHeaders().GetEndOfStream() != h.GetEndOfStream() || m.ObservabilityMode != req.ObservabilityMode {
		t.Fatalf("scanned %v, decoded %v", &m.ProcessingRequest, req)
	}
	var want requestFacts
	extract(h.GetHeaders().GetHeaders(), lim.headerBounds, &want)
	want.route, want.haveRoute = routeOf(req)
	got := m.facts
	if len(got.acrh) == 0 && len(want.acrh) == 0 {
		got.acrh, want.acrh = nil, nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("scanned facts\n%+v\nfacts of the decoded message\n%+v\n%x", got, want, b)
	}
}

// Envoy's request headers are scanned, not decoded, and cost one
// allocation: the string every value the processor reads is a slice of.
// So does the message of half a million empty entries that cost 54 MB to
// decode.
func TestScanAllocatesOnce(t *testing.T) {
	wire := map[string][]byte{"worst_case_entries": worstCaseEntries(DefaultMaxRecvMsgSize)}
	for name, m := range codecMessages() {
		if m.GetRequestHeaders() == nil || m.MetadataContext != nil {
			continue // not the shape scanRequest reads
		}
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		wire[name] = b
	}
	for name, b := range wire {
		msg := &message{bounds: Codec{}.limits().headerBounds}
		data := mem.BufferSlice{mem.SliceBuffer(b)}
		allocs := testing.AllocsPerRun(100, func() {
			if err := (Codec{}).Unmarshal(data, msg); err != nil {
				t.Fatal(err)
			}
		})
		if !msg.scanned {
			t.Errorf("%s: not scanned", name)
		}
		if allocs > 1 {
			t.Errorf("%s: %v allocations, want at most 1", name, allocs)
		}
	}
}

// The Server's bounds, carried by the message, are the ones a scan applies,
// whatever the Codec's own: the request is cut exactly where the Server
// would cut the decoded message.
func TestScanTakesTheServerBounds(t *testing.T) {
	b := requestHeadersWire(wireHeaderMap(wireHV(":method", "GET"), wireHV("a", "1"), wireHV("b", "2"), wireHV("origin", "https://a.example")))
	for _, c := range []struct {
		bounds headerBounds
		want   string
	}{
		{headerBounds{3, 1000}, LimitRequestHeaders},
		{headerBounds{4, 1000}, ""},
		{headerBounds{100, 12}, LimitRequestHeaderBytes},
	} {
		m := &message{bounds: c.bounds}
		if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, m); err != nil {
			t.Fatal(err)
		}
		f := m.requestFacts(c.bounds)
		if f.exceeded != c.want || f.method != "GET" {
			t.Errorf("bounds %v: exceeded %q, method %q; want %q, GET", c.bounds, f.exceeded, f.method, c.want)
		}
		if wantOrigin := map[bool]string{true: "https://a.example"}[c.want == ""]; f.origin != wantOrigin {
			t.Errorf("bounds %v: origin %q, want %q", c.bounds, f.origin, wantOrigin)
		}
		small := Codec{MaxHeaders: c.bounds.entries, MaxHeaderBytes: c.bounds.bytes}
		checkScan(t, small, b)
	}
}

// Encodings Envoy does not produce, where a scan could part from the
// decoded message: both value fields, a route attribute replaced by a later
// entry of the same key, a Struct field repeated.
func TestScanOddWire(t *testing.T) {
	entry := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	str := func(num protowire.Number, s string) []byte { return wireField(num, []byte(s)) }
	routeStruct := func(fields ...[2]string) []byte {
		var b []byte
		for _, f := range fields {
			b = append(b, wireField(fieldStructFields, entry(str(fieldKey, f[0]), wireField(fieldValue, str(fieldStringValue, f[1]))))...)
		}
		return b
	}
	attr := func(key string, st []byte) []byte {
		return wireField(fieldAttributes, entry(str(fieldKey, key), wireField(fieldValue, st)))
	}
	get := requestHeadersWire(wireHeaderMap(wireHV(":method", "GET"), wireHV("origin", "https://a.example")))
	cases := map[string][]byte{
		"value_and_raw_value": requestHeadersWire(wireHeaderMap(
			entry(str(fieldKey, "origin"), str(fieldValue, "https://value.example"), str(fieldRawValue, "https://raw.example")))),
		"value_only": requestHeadersWire(wireHeaderMap(entry(str(fieldKey, "origin"), str(fieldValue, "https://value.example")))),
		"empty_raw_value_then_value": requestHeadersWire(wireHeaderMap(
			entry(str(fieldKey, "origin"), str(fieldRawValue, ""), str(fieldValue, "https://value.example")))),
		"acrh_lines_around_others": requestHeadersWire(wireHeaderMap(wireHV("access-control-request-headers", "a"),
			wireHV("x", "1"), wireHV("access-control-request-headers", "b, c"), wireHV("origin", "o"), wireHV("origin", "p"))),
		"route_replaced_without_route": entry(get, attr(AttributesKey, routeStruct([2]string{AttributeRoute, "first"})),
			attr(AttributesKey, routeStruct([2]string{"other", "x"}))),
		"route_replaced": entry(get, attr(AttributesKey, routeStruct([2]string{AttributeRoute, "first"})),
			attr(AttributesKey, routeStruct([2]string{AttributeRoute, "second"}))),
		"route_field_twice":   entry(get, attr(AttributesKey, routeStruct([2]string{AttributeRoute, "a"}, [2]string{AttributeRoute, "b"}))),
		"route_under_other":   entry(get, attr("other.filter", routeStruct([2]string{AttributeRoute, "a"}))),
		"route_before_header": entry(attr(AttributesKey, routeStruct([2]string{AttributeRoute, "r"})), get),
		"attribute_no_value":  entry(get, wireField(fieldAttributes, str(fieldKey, AttributesKey))),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			checkScan(t, Codec{}, b)
			if !scanRequest(b, new(message), Codec{}.limits()) {
				t.Error("not scanned")
			}
		})
	}
}
