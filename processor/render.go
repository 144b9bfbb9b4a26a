package processor

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/corsproc/corsproc/internal/extproc"
	"github.com/corsproc/corsproc/policy"
)

// Responses are built from structs that hold every sub-message of one
// ProcessingResponse, so that answering a message costs one allocation for
// the messages, and, when headers are set, one for the header messages and
// one for their value bytes. The messages are never reused after Send: gRPC
// may still read them (stats handlers).

// inlineHeaders is how many set headers a response points to without a
// further allocation; a preflight answer sets at most seven.
const inlineHeaders = 8

// headerSet renders policy headers as Envoy HeaderValueOptions.
type headerSet struct {
	ptrs       [inlineHeaders]*corev3.HeaderValueOption
	appendTrue wrapperspb.BoolValue
}

// renderedHeader is one set header's messages, allocated together.
type renderedHeader struct {
	opt corev3.HeaderValueOption
	val corev3.HeaderValue
}

// render returns hs as set_headers. Each header carries its value in
// raw_value only: Envoy reads only raw_value, and rejects a HeaderValue with
// both value and raw_value set (the request gets a 500). Envoy's ext_proc
// decides between replacing and adding from the deprecated append field
// alone and never reads append_action (envoyproxy/envoy#36982), in every
// release corsproc supports. Both are set so that they agree, which also
// holds for Envoy's general rule (HeaderParser: an explicit append decides,
// else append_action): replacing headers leave append unset (ext_proc's
// default is replace) and set append_action OVERWRITE_IF_EXISTS_OR_ADD;
// appending ones (Vary) set append: true and leave append_action at its
// default, APPEND_IF_EXISTS_OR_ADD. An Envoy that read append_action would
// therefore not duplicate Access-Control-Allow-Origin. See
// docs/extproc-protocol.md, "Header mutations".
func (s *headerSet) render(hs []policy.Header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	total := 0
	for _, h := range hs {
		total += len(h.Value)
	}
	buf := make([]byte, 0, total)
	msgs := make([]renderedHeader, len(hs))
	s.appendTrue.Value = true
	out := s.ptrs[:0]
	for i, h := range hs {
		m := &msgs[i]
		start := len(buf)
		buf = append(buf, h.Value...)
		m.val.Key = h.Name
		m.val.RawValue = buf[start:len(buf):len(buf)]
		m.opt.Header = &m.val
		if h.Append {
			m.opt.Append = &s.appendTrue
		} else {
			m.opt.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		}
		out = append(out, &m.opt)
	}
	return out
}

// headersReply answers request_headers or response_headers.
type headersReply struct {
	resp   extprocv3.ProcessingResponse
	reqH   extprocv3.ProcessingResponse_RequestHeaders
	respH  extprocv3.ProcessingResponse_ResponseHeaders
	hr     extprocv3.HeadersResponse
	common extprocv3.CommonResponse
	mut    extprocv3.HeaderMutation
	mode   extprocfilterv3.ProcessingMode
	set    headerSet
}

// newHeadersReply returns a CONTINUE answer to a headers message, with a
// header mutation when remove or set are non-empty, and a mode_override
// skipping the response headers phase when skipResponse.
func newHeadersReply(response bool, remove []string, set []policy.Header, skipResponse bool) *extprocv3.ProcessingResponse {
	r := new(headersReply)
	r.common.Status = extprocv3.CommonResponse_CONTINUE
	if len(remove) > 0 || len(set) > 0 {
		// Envoy applies remove_headers first, then set_headers. remove
		// is the policy's shared list; the message only reads it.
		r.mut.RemoveHeaders = remove
		r.mut.SetHeaders = r.set.render(set)
		r.common.HeaderMutation = &r.mut
	}
	r.hr.Response = &r.common
	if response {
		r.respH.ResponseHeaders = &r.hr
		r.resp.Response = &r.respH
	} else {
		r.reqH.RequestHeaders = &r.hr
		r.resp.Response = &r.reqH
	}
	if skipResponse {
		// Honoured only with allow_mode_override: true, and only on a
		// headers response. Without it Envoy still sends response_headers
		// and gets an empty CONTINUE.
		r.mode.ResponseHeaderMode = extprocfilterv3.ProcessingMode_SKIP
		r.resp.ModeOverride = &r.mode
	}
	return &r.resp
}

// immediateReply answers a preflight.
type immediateReply struct {
	resp   extprocv3.ProcessingResponse
	imm    extprocv3.ProcessingResponse_ImmediateResponse
	ir     extprocv3.ImmediateResponse
	status typev3.HttpStatus
	mut    extprocv3.HeaderMutation
	set    headerSet
}

// newImmediateReply returns an immediate response with status, headers and
// an empty body; with a reason (Options.ExplainRefusals), the reason is the
// plain-text body and the X-Corsproc-Reason header. Envoy sends it as a
// local reply; the upstream never sees the request and no response_headers
// message follows (docs/extproc-protocol.md, "Immediate responses").
//
// md says where the CORS headers go besides or instead of the headers
// (docs/extproc-protocol.md, "Dynamic metadata"): Envoy's header_mutation
// filter runs on the immediate response after its headers are applied,
// removes the CORS headers and writes them back from the metadata.
func newImmediateReply(status int, headers []policy.Header, details, reason string, md immediateMetadata) *extprocv3.ProcessingResponse {
	r := new(immediateReply)
	if md != metadataNone {
		setMetadata(&r.resp, headers, "", true)
	}
	var kept [inlineHeaders]policy.Header
	if md == metadataOnly {
		// The header_mutation filter writes every header the metadata
		// carries: the answer sets only the others (Vary).
		n := 0
		for _, h := range headers {
			if _, ok := metadataKey(h.Name); (!ok || h.Name == policy.HeaderVary) && n < len(kept) {
				kept[n] = h
				n++
			}
		}
		headers = kept[:n:n]
	}
	r.status.Code = typev3.StatusCode(status)
	r.ir.Status = &r.status
	if reason != "" {
		headers = append(headers[:len(headers):len(headers)],
			policy.Header{Name: HeaderReason, Value: reason},
			policy.Header{Name: "content-type", Value: "text/plain; charset=utf-8"})
		r.ir.Body = []byte(reason + "\n")
	}
	if len(headers) > 0 {
		r.mut.SetHeaders = r.set.render(headers)
		r.ir.Headers = &r.mut
	}
	r.ir.Details = details
	r.imm.ImmediateResponse = &r.ir
	r.resp.Response = &r.imm
	return &r.resp
}

// immediateMetadata says where an immediate response carries its CORS
// headers.
type immediateMetadata uint8

const (
	// metadataNone: as headers only (a stream that declares no mode).
	metadataNone immediateMetadata = iota
	// metadataAlso: as headers, and in dynamic metadata (a stream that
	// declares response-phase or an unknown value: the config may run the
	// header_mutation filter, which would remove them otherwise).
	metadataAlso
	// metadataOnly: in dynamic metadata, for the header_mutation filter to
	// write (single-message mode, which requires the filter): a smaller
	// answer.
	metadataOnly
)

// bodyReply passes a body chunk on unchanged.
type bodyReply struct {
	resp   extprocv3.ProcessingResponse
	reqB   extprocv3.ProcessingResponse_RequestBody
	respB  extprocv3.ProcessingResponse_ResponseBody
	br     extprocv3.BodyResponse
	common extprocv3.CommonResponse
}

func newBodyReply(response bool) *extprocv3.ProcessingResponse {
	r := new(bodyReply)
	r.common.Status = extprocv3.CommonResponse_CONTINUE
	r.br.Response = &r.common
	if response {
		r.respB.ResponseBody = &r.br
		r.resp.Response = &r.respB
	} else {
		r.reqB.RequestBody = &r.br
		r.resp.Response = &r.reqB
	}
	return &r.resp
}

// trailersReply passes trailers on unchanged.
type trailersReply struct {
	resp  extprocv3.ProcessingResponse
	reqT  extprocv3.ProcessingResponse_RequestTrailers
	respT extprocv3.ProcessingResponse_ResponseTrailers
	tr    extprocv3.TrailersResponse
}

func newTrailersReply(response bool) *extprocv3.ProcessingResponse {
	r := new(trailersReply)
	if response {
		r.respT.ResponseTrailers = &r.tr
		r.resp.Response = &r.respT
	} else {
		r.reqT.RequestTrailers = &r.tr
		r.resp.Response = &r.reqT
	}
	return &r.resp
}

// Field numbers of the dynamic metadata's wire form, a
// google.protobuf.Struct in ProcessingResponse.dynamic_metadata, besides
// those the Codec reads (codec.go: fieldStructFields, fieldStringValue, and
// fieldKey and fieldValue for a map entry's key and value).
const (
	fieldDynamicMetadata = 8 // ProcessingResponse.dynamic_metadata
	fieldStructValue     = 5 // Value.struct_value
)

// metadataKey returns the key of DynamicMetadataNamespace that carries
// header name, and whether there is one.
func metadataKey(name string) (string, bool) {
	switch name {
	case policy.HeaderACAO:
		return extproc.KeyACAO, true
	case policy.HeaderACAC:
		return extproc.KeyACAC, true
	case policy.HeaderACEH:
		return extproc.KeyACEH, true
	case policy.HeaderACAM:
		return extproc.KeyACAM, true
	case policy.HeaderACAH:
		return extproc.KeyACAH, true
	case policy.HeaderACMA:
		return extproc.KeyACMA, true
	case policy.HeaderACAPN:
		return extproc.KeyACAPN, true
	case policy.HeaderVary:
		return extproc.KeyVary, true
	case HeaderReason:
		return extproc.KeyReason, true
	}
	return "", false
}

// metadataEntry is one key and value of the corsproc namespace.
type metadataEntry struct{ key, value string }

// entrySize is the encoded size of a Struct map entry of key and a Value
// of size valueSize.
func entrySize(key string, valueSize int) int {
	return protowire.SizeTag(fieldKey) + protowire.SizeBytes(len(key)) +
		protowire.SizeTag(fieldValue) + protowire.SizeBytes(valueSize)
}

// stringValueSize is the encoded size of a Value holding string_value v.
func stringValueSize(v string) int {
	return protowire.SizeTag(fieldStringValue) + protowire.SizeBytes(len(v))
}

// setMetadata sets msg's dynamic_metadata to {corsproc: {key: value...}}
// for the headers of hs that have a key (Vary left out with skipVary: an
// immediate response sets its own, which the header_mutation filter must
// not append to again) and reason under KeyReason when it is not empty;
// nothing when no entry is left (docs/extproc-protocol.md, "Dynamic
// metadata"). The Struct is written in its wire form, once, as the
// message's unknown bytes, which every marshaller writes as they are:
// Envoy reads the very bytes proto.Marshal gives for the field set, and
// corsproc builds no map and allocates one buffer, which also holds the
// values (a decision's values may point into the request's memory). Read
// back with proto.Unmarshal, the message has dynamic_metadata set
// (TestSingleMessageWireForm).
func setMetadata(msg protoreflect.ProtoMessage, hs []policy.Header, reason string, skipVary bool) {
	var entries [inlineHeaders + 1]metadataEntry
	n := 0
	for _, h := range hs {
		if skipVary && h.Name == policy.HeaderVary {
			continue
		}
		if key, ok := metadataKey(h.Name); ok && n < len(entries) {
			entries[n] = metadataEntry{key, h.Value}
			n++
		}
	}
	if reason != "" && n < len(entries) {
		entries[n] = metadataEntry{extproc.KeyReason, reason}
		n++
	}
	if n == 0 {
		return
	}
	inner := 0
	for _, e := range entries[:n] {
		inner += protowire.SizeTag(fieldStructFields) + protowire.SizeBytes(entrySize(e.key, stringValueSize(e.value)))
	}
	nsValue := protowire.SizeTag(fieldStructValue) + protowire.SizeBytes(inner)
	nsEntry := entrySize(extproc.DynamicMetadataNamespace, nsValue)
	outer := protowire.SizeTag(fieldStructFields) + protowire.SizeBytes(nsEntry)
	total := protowire.SizeTag(fieldDynamicMetadata) + protowire.SizeBytes(outer)

	b := make([]byte, 0, total)
	b = protowire.AppendTag(b, fieldDynamicMetadata, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(outer))
	b = protowire.AppendTag(b, fieldStructFields, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(nsEntry))
	b = protowire.AppendTag(b, fieldKey, protowire.BytesType)
	b = protowire.AppendString(b, extproc.DynamicMetadataNamespace)
	b = protowire.AppendTag(b, fieldValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(nsValue))
	b = protowire.AppendTag(b, fieldStructValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	for _, e := range entries[:n] {
		vs := stringValueSize(e.value)
		b = protowire.AppendTag(b, fieldStructFields, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(entrySize(e.key, vs)))
		b = protowire.AppendTag(b, fieldKey, protowire.BytesType)
		b = protowire.AppendString(b, e.key)
		b = protowire.AppendTag(b, fieldValue, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(vs))
		b = protowire.AppendTag(b, fieldStringValue, protowire.BytesType)
		b = protowire.AppendString(b, e.value)
	}
	msg.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
}

// metadataReply answers request_headers in single-message mode: CONTINUE,
// the response phase skipped, the response headers' values in dynamic
// metadata for Envoy's header_mutation filter to write.
type metadataReply struct {
	resp   extprocv3.ProcessingResponse
	reqH   extprocv3.ProcessingResponse_RequestHeaders
	hr     extprocv3.HeadersResponse
	common extprocv3.CommonResponse
	mode   extprocfilterv3.ProcessingMode
}

// newMetadataReply returns the single-message answer to the request
// headers of a request whose response gets set (and reason, with
// Options.ExplainRefusals), the upstream's CORS headers being removed by
// Envoy's header_mutation filter.
func newMetadataReply(set []policy.Header, reason string) *extprocv3.ProcessingResponse {
	r := new(metadataReply)
	r.common.Status = extprocv3.CommonResponse_CONTINUE
	r.hr.Response = &r.common
	r.reqH.RequestHeaders = &r.hr
	r.resp.Response = &r.reqH
	// Honoured only with allow_mode_override: true. Without it Envoy sends
	// the response headers anyway, and corsproc answers them as in the
	// response-phase mode: the same headers, applied after the
	// header_mutation filter's (docs/envoy.md, "Single-message mode").
	r.mode.ResponseHeaderMode = extprocfilterv3.ProcessingMode_SKIP
	r.resp.ModeOverride = &r.mode
	setMetadata(&r.resp, set, reason, false)
	return &r.resp
}
