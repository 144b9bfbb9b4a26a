package processor

// Test helpers that speak ext_proc exactly as Envoy does (see
// docs/extproc-protocol.md): messages shaped like Envoy's, and a fake
// stream that checks every response the way Envoy would treat it.

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/corsproc/corsproc/policy"
)

// envoyRequest describes an HTTP request as Envoy's ext_proc filter reports
// it. Zero fields take the defaults of a plain browser GET.
type envoyRequest struct {
	Method    string // default GET
	Scheme    string // default https
	Authority string // default api.example.com
	Path      string // default /
	// Headers are the request headers other than pseudo-headers, in order;
	// a repeated header is given several times. Keys are lower-cased as
	// Envoy does.
	Headers [][2]string
	// Route is the xds.route_name attribute; "" sends no attributes (Envoy
	// omits absent attributes).
	Route string
	// Body makes end_of_stream false.
	Body bool
	// LegacyValue puts values in value instead of raw_value, as Envoy
	// before 1.27 did.
	LegacyValue bool
}

func headerValue_(k, v string, legacy bool) *corev3.HeaderValue {
	k = strings.ToLower(k)
	if legacy {
		return &corev3.HeaderValue{Key: k, Value: v}
	}
	return &corev3.HeaderValue{Key: k, RawValue: []byte(v)}
}

// message returns the request_headers ProcessingRequest Envoy sends: it is
// the first request-direction message, so it carries the attributes.
func (r envoyRequest) message() *extprocv3.ProcessingRequest {
	method := cmp(r.Method, "GET")
	hs := []*corev3.HeaderValue{
		headerValue_(":authority", cmp(r.Authority, "api.example.com"), r.LegacyValue),
		headerValue_(":path", cmp(r.Path, "/"), r.LegacyValue),
		headerValue_(":method", method, r.LegacyValue),
		headerValue_(":scheme", cmp(r.Scheme, "https"), r.LegacyValue),
		headerValue_("user-agent", "Mozilla/5.0", r.LegacyValue),
		headerValue_("accept", "*/*", r.LegacyValue),
	}
	for _, h := range r.Headers {
		hs = append(hs, headerValue_(h[0], h[1], r.LegacyValue))
	}
	m := &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers:     &corev3.HeaderMap{Headers: hs},
			EndOfStream: !r.Body,
		}},
	}
	if r.Route != "" {
		m.Attributes = routeAttributes(r.Route)
	}
	return m
}

func routeAttributes(route string) map[string]*structpb.Struct {
	return map[string]*structpb.Struct{
		"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{
			"xds.route_name": structpb.NewStringValue(route),
		}},
	}
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// envoyResponse returns the response_headers ProcessingRequest for an
// upstream response with status and headers (lower-cased keys, raw_value).
func envoyResponse(status int, headers ...[2]string) *extprocv3.ProcessingRequest {
	hs := []*corev3.HeaderValue{headerValue_(":status", strconv.Itoa(status), false)}
	for _, h := range headers {
		hs = append(hs, headerValue_(h[0], h[1], false))
	}
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: hs},
		}},
	}
}

// defaultUpstream is a typical upstream response.
func defaultUpstream() *extprocv3.ProcessingRequest {
	return envoyResponse(200, [2]string{"content-type", "application/json"}, [2]string{"content-length", "2"})
}

// fakeStream is Envoy's side of one ext_proc stream, hand-written. It hands
// the queued messages to the server one at a time and checks the protocol
// as Envoy would:
//   - every message gets exactly one response before the next is sent (a
//     missing one stalls the request until message_timeout: 504);
//   - the response type matches the message (else "spurious": 500);
//   - after an immediate response Envoy closes the stream;
//   - responses marshal (gRPC would fail otherwise) and pass the proto's
//     validation rules;
//   - header mutations set raw_value only, never value (Envoy rejects both
//     set, and reads only raw_value), and append_action agrees with append
//     (ext_proc reads only append; an Envoy reading append_action must not
//     get another answer).
//
// After the queue it returns End (io.EOF when nil), as Envoy's half-close.
type fakeStream struct {
	t   testing.TB
	ctx context.Context

	in  []*extprocv3.ProcessingRequest
	End error
	// BeforeRecv, if set, runs before message i is handed out.
	BeforeRecv func(i int)
	// SendErr, if set, is returned by Send.
	SendErr error
	// Lax skips the per-response checks (benchmarks).
	Lax bool

	next     int
	sent     int                          // responses sent in Lax mode
	pending  *extprocv3.ProcessingRequest // message awaiting its answer
	closed   bool                         // immediate response received
	out      []*extprocv3.ProcessingResponse
	received []*extprocv3.ProcessingRequest // messages answered, in order
}

func newFakeStream(t testing.TB, policyMetadata []string, msgs ...*extprocv3.ProcessingRequest) *fakeStream {
	ctx := context.Background()
	if policyMetadata != nil {
		md := metadata.MD{}
		for _, v := range policyMetadata {
			md.Append(MetadataPolicy, v)
		}
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	return &fakeStream{t: t, ctx: ctx, in: msgs}
}

func (f *fakeStream) Context() context.Context                   { return f.ctx }
func (f *fakeStream) SetHeader(metadata.MD) error                { return nil }
func (f *fakeStream) SendHeader(metadata.MD) error               { return nil }
func (f *fakeStream) SetTrailer(metadata.MD)                     {}
func (f *fakeStream) SendMsg(m any) error                        { return f.Send(m.(*extprocv3.ProcessingResponse)) }
func (f *fakeStream) responses() []*extprocv3.ProcessingResponse { return f.out }

// RecvMsg is how Process receives: into its *message, which gets the next
// message's fields as they are, nil entries and all (proto.Merge would
// copy them, and refuse some).
func (f *fakeStream) RecvMsg(m any) error {
	req, err := f.Recv()
	if err != nil {
		return err
	}
	msg := m.(*message)
	msg.Request = req.Request
	msg.MetadataContext = req.MetadataContext
	msg.Attributes = req.Attributes
	msg.ObservabilityMode = req.ObservabilityMode
	msg.ProtocolConfig = req.ProtocolConfig
	msg.FlowControlInit = req.FlowControlInit
	msg.ClientWindowUpdate = req.ClientWindowUpdate
	return nil
}
func (f *fakeStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if f.pending != nil && !f.pending.ObservabilityMode && !f.Lax {
		f.t.Errorf("message %d (%s) got no response before the next Recv: Envoy would stall until message_timeout (504)",
			f.next-1, kind(f.pending))
	}
	f.pending = nil
	if f.closed || f.next >= len(f.in) {
		if f.End != nil {
			return nil, f.End
		}
		return nil, io.EOF
	}
	if f.BeforeRecv != nil {
		f.BeforeRecv(f.next)
	}
	m := f.in[f.next]
	f.next++
	f.pending = m
	return m, nil
}

func (f *fakeStream) Send(r *extprocv3.ProcessingResponse) error {
	if f.SendErr != nil {
		return f.SendErr
	}
	if f.Lax {
		f.pending = nil
		f.sent++
		return nil
	}
	f.t.Helper()
	if f.pending == nil {
		f.t.Errorf("spurious response %s: no message awaits an answer", r)
		return nil
	}
	if f.pending.ObservabilityMode {
		f.t.Errorf("response %s to a message in observability mode: the server should not respond", r)
	}
	if err := checkResponse(f.pending, r); err != nil {
		f.t.Errorf("response to %s: %v\n%s", kind(f.pending), err, r)
	}
	if _, ok := r.Response.(*extprocv3.ProcessingResponse_ImmediateResponse); ok {
		// Envoy sends the local reply and closes the stream.
		f.closed = true
	}
	f.received = append(f.received, f.pending)
	f.pending = nil
	f.out = append(f.out, r)
	return nil
}

// kind names the oneof case of a request: "request_headers"...,
// "unknown" when none is set.
func kind(m *extprocv3.ProcessingRequest) string { return oneofCase(m, "request", "unknown") }

// replyKind names the oneof case of a response, "none" when none is set.
func replyKind(r *extprocv3.ProcessingResponse) string { return oneofCase(r, "response", "none") }

// oneofCase returns the field name set in m's oneof, or unset.
func oneofCase(m proto.Message, oneof, unset string) string {
	r := m.ProtoReflect()
	if fd := r.WhichOneof(r.Descriptor().Oneofs().ByName(protoreflect.Name(oneof))); fd != nil {
		return string(fd.Name())
	}
	return unset
}

// checkResponse checks r the way Envoy treats it as the answer to m.
func checkResponse(m *extprocv3.ProcessingRequest, r *extprocv3.ProcessingResponse) error {
	want := kind(m)
	got := replyKind(r)
	if got != want && !(want == "request_headers" && got == "immediate_response") {
		return fmt.Errorf("spurious %s response to %s: Envoy fails the request (500)", got, want)
	}
	if r.ModeOverride != nil && want != "request_headers" && want != "response_headers" {
		return fmt.Errorf("mode_override on a %s response: Envoy ignores it", got)
	}
	// What gRPC does with the message: it must marshal (strings UTF-8) and
	// survive the trip.
	b, err := proto.Marshal(r)
	if err != nil {
		return fmt.Errorf("does not marshal: %v", err)
	}
	var back extprocv3.ProcessingResponse
	if err := proto.Unmarshal(b, &back); err != nil {
		return fmt.Errorf("does not unmarshal: %v", err)
	}
	if len(r.ProtoReflect().GetUnknown()) > 0 {
		// The dynamic metadata of single-message answers is written in
		// its wire form (render.go, setMetadata): read back, it must be
		// known fields only, and survive a second trip.
		if len(back.ProtoReflect().GetUnknown()) > 0 || back.DynamicMetadata == nil {
			return fmt.Errorf("unknown bytes that are not dynamic_metadata: %x", r.ProtoReflect().GetUnknown())
		}
		if err := checkMetadataShape(back.DynamicMetadata); err != nil {
			return err
		}
		b2, _ := proto.Marshal(&back)
		var again extprocv3.ProcessingResponse
		if err := proto.Unmarshal(b2, &again); err != nil || !proto.Equal(&again, &back) {
			return fmt.Errorf("changes in a marshal round trip")
		}
	} else if !proto.Equal(&back, r) {
		return fmt.Errorf("changes in a marshal round trip")
	}
	if err := r.ValidateAll(); err != nil {
		return fmt.Errorf("fails the proto's validation rules: %v", err)
	}
	var muts []*extprocv3.HeaderMutation
	switch x := r.Response.(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		muts = append(muts, x.RequestHeaders.GetResponse().GetHeaderMutation())
		if err := checkCommon(x.RequestHeaders.GetResponse()); err != nil {
			return err
		}
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		muts = append(muts, x.ResponseHeaders.GetResponse().GetHeaderMutation())
		if err := checkCommon(x.ResponseHeaders.GetResponse()); err != nil {
			return err
		}
	case *extprocv3.ProcessingResponse_RequestBody:
		if err := checkCommon(x.RequestBody.GetResponse()); err != nil {
			return err
		}
	case *extprocv3.ProcessingResponse_ResponseBody:
		if err := checkCommon(x.ResponseBody.GetResponse()); err != nil {
			return err
		}
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		ir := x.ImmediateResponse
		if ir.GetStatus() == nil {
			return fmt.Errorf("immediate response without status")
		}
		// corsproc's answers have no body, but for the reason of a refusal
		// with Options.ExplainRefusals, which the header repeats.
		if len(ir.Body) != 0 && !slices.ContainsFunc(ir.GetHeaders().GetSetHeaders(), func(h *corev3.HeaderValueOption) bool {
			return h.GetHeader().GetKey() == HeaderReason && string(h.GetHeader().GetRawValue())+"\n" == string(ir.Body)
		}) {
			return fmt.Errorf("immediate response with a body %q", ir.Body)
		}
		if ir.Details == "" || strings.ContainsAny(ir.Details, " \t\r\n") {
			return fmt.Errorf("immediate response details %q: want one token", ir.Details)
		}
		if ir.GrpcStatus != nil {
			return fmt.Errorf("immediate response with a grpc_status")
		}
		muts = append(muts, ir.GetHeaders())
	}
	for _, mu := range muts {
		for _, o := range mu.GetSetHeaders() {
			h := o.GetHeader()
			switch {
			case h == nil:
				return fmt.Errorf("set header without header")
			case h.Value != "":
				return fmt.Errorf("header %s sets value %q: Envoy rejects value with raw_value (500) and reads only raw_value", h.Key, h.Value)
			case len(h.RawValue) == 0:
				return fmt.Errorf("header %s has no raw_value", h.Key)
			case h.Key != strings.ToLower(h.Key):
				return fmt.Errorf("header key %q not lower case", h.Key)
			case o.Append == nil && o.AppendAction != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
				return fmt.Errorf("header %s replaces (append unset) but append_action is %v, not OVERWRITE_IF_EXISTS_OR_ADD", h.Key, o.AppendAction)
			case o.Append != nil && o.AppendAction != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
				return fmt.Errorf("header %s sets append and append_action %v: Envoy's header parser refuses both", h.Key, o.AppendAction)
			case o.Append != nil && !o.Append.Value:
				return fmt.Errorf("header %s sets append false: leave it unset to replace", h.Key)
			case o.KeepEmptyValue:
				return fmt.Errorf("header %s sets keep_empty_value: not supported by ext_proc", h.Key)
			}
		}
	}
	return nil
}

func checkCommon(c *extprocv3.CommonResponse) error {
	switch {
	case c == nil:
		return fmt.Errorf("no CommonResponse")
	case c.Status != extprocv3.CommonResponse_CONTINUE:
		return fmt.Errorf("status %v, want CONTINUE", c.Status)
	case c.BodyMutation != nil || c.Trailers != nil || c.ClearRouteCache:
		return fmt.Errorf("unexpected body mutation, trailers or clear_route_cache: %v", c)
	}
	return nil
}

// hdr is one set header as Envoy applies it.
type hdr struct {
	Key    string
	Value  string
	Append bool
}

func (h hdr) String() string {
	if h.Append {
		return h.Key + " += " + strconv.Quote(h.Value)
	}
	return h.Key + " = " + strconv.Quote(h.Value)
}

// reply is what an Envoy response means, in a comparable form.
type reply struct {
	Kind    string // replyKind
	Status  int    // immediate response status
	Details string // immediate response details
	Skip    bool   // mode_override skips the response headers phase
	Remove  []string
	Set     []hdr // sorted by key
}

func (r reply) String() string {
	var b strings.Builder
	b.WriteString(r.Kind)
	if r.Status != 0 {
		fmt.Fprintf(&b, " %d %s", r.Status, r.Details)
	}
	if r.Skip {
		b.WriteString(" +skip_response")
	}
	if r.Remove != nil {
		fmt.Fprintf(&b, " remove%v", r.Remove)
	}
	for _, h := range r.Set {
		fmt.Fprintf(&b, " [%v]", h)
	}
	return b.String()
}

// summarize reads r as Envoy does.
func summarize(r *extprocv3.ProcessingResponse) reply {
	out := reply{Kind: replyKind(r)}
	if mo := r.GetModeOverride(); mo != nil {
		out.Skip = mo.ResponseHeaderMode == extprocfilterv3.ProcessingMode_SKIP
	}
	var mu *extprocv3.HeaderMutation
	switch x := r.Response.(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		mu = x.RequestHeaders.GetResponse().GetHeaderMutation()
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		mu = x.ResponseHeaders.GetResponse().GetHeaderMutation()
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		out.Status = int(x.ImmediateResponse.GetStatus().GetCode())
		out.Details = x.ImmediateResponse.GetDetails()
		mu = x.ImmediateResponse.GetHeaders()
	}
	if len(mu.GetRemoveHeaders()) > 0 {
		out.Remove = slices.Sorted(slices.Values(mu.GetRemoveHeaders()))
	}
	for _, o := range mu.GetSetHeaders() {
		out.Set = append(out.Set, hdr{Key: o.GetHeader().GetKey(), Value: string(o.GetHeader().GetRawValue()), Append: o.GetAppend().GetValue()})
	}
	sortHdrs(out.Set)
	return out
}

func sortHdrs(hs []hdr) {
	slices.SortStableFunc(hs, func(a, b hdr) int { return strings.Compare(a.Key, b.Key) })
}

// applyMutation applies a header mutation to headers as Envoy does:
// remove_headers first (ignoring pseudo-headers and host), then each
// set_headers entry replaces every value (append unset or false) or adds one
// (append true).
func applyMutation(headers [][2]string, mu *extprocv3.HeaderMutation) [][2]string {
	out := slices.Clone(headers)
	for _, name := range mu.GetRemoveHeaders() {
		if strings.HasPrefix(name, ":") || name == "host" {
			continue
		}
		out = slices.DeleteFunc(out, func(h [2]string) bool { return h[0] == name })
	}
	for _, o := range mu.GetSetHeaders() {
		k, v := o.GetHeader().GetKey(), string(o.GetHeader().GetRawValue())
		if !o.GetAppend().GetValue() {
			out = slices.DeleteFunc(out, func(h [2]string) bool { return h[0] == k })
		}
		out = append(out, [2]string{k, v})
	}
	return out
}

// Shorthands for expected replies.

func continueReq() reply  { return reply{Kind: "request_headers"} }
func continueSkip() reply { return reply{Kind: "request_headers", Skip: true} }
func continueResp() reply { return reply{Kind: "response_headers"} }
func immediate(status int, details string, hs ...hdr) reply {
	sortHdrs(hs)
	return reply{Kind: "immediate_response", Status: status, Details: details, Set: hs}
}
func allowed(hs ...hdr) reply { return immediate(204, "cors_preflight_allowed", hs...) }
func rejected() reply         { return immediate(403, "cors_preflight_rejected") }

// managedRemoved is what every governed response removes, written out here
// so that the policy dropping one fails the tests.
var managedRemoved = []string{
	"access-control-allow-credentials",
	"access-control-allow-headers",
	"access-control-allow-methods",
	"access-control-allow-origin",
	"access-control-allow-private-network",
	"access-control-expose-headers",
	"access-control-max-age",
}

func corsResp(hs ...hdr) reply {
	sortHdrs(hs)
	return reply{Kind: "response_headers", Remove: managedRemoved, Set: hs}
}

func acao(v string) hdr { return hdr{Key: policy.HeaderACAO, Value: v} }
func acac() hdr         { return hdr{Key: policy.HeaderACAC, Value: "true"} }
func acam(v string) hdr { return hdr{Key: policy.HeaderACAM, Value: v} }
func acah(v string) hdr { return hdr{Key: policy.HeaderACAH, Value: v} }
func aceh(v string) hdr { return hdr{Key: policy.HeaderACEH, Value: v} }
func acma(v string) hdr { return hdr{Key: policy.HeaderACMA, Value: v} }
func acapn() hdr        { return hdr{Key: policy.HeaderACAPN, Value: "true"} }
func varyOrigin() hdr   { return hdr{Key: "vary", Value: "Origin", Append: true} }
func varyPreflight() hdr {
	return hdr{Key: "vary", Value: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
}

// fakeStream.RecvMsg copies a ProcessingRequest's fields one by one: a
// field go-control-plane adds must be added there.
func TestFakeStreamCopiesEveryField(t *testing.T) {
	typ := reflect.TypeFor[extprocv3.ProcessingRequest]()
	var exported []string
	for i := range typ.NumField() {
		if f := typ.Field(i); f.IsExported() {
			exported = append(exported, f.Name)
		}
	}
	want := []string{"Request", "MetadataContext", "Attributes", "ObservabilityMode", "ProtocolConfig", "FlowControlInit", "ClientWindowUpdate"}
	if !slices.Equal(exported, want) {
		t.Errorf("ProcessingRequest's fields are %v; fakeStream.RecvMsg copies %v", exported, want)
	}
}
