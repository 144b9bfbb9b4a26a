package processor

import (
	"bytes"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Codec is gRPC's "proto" codec with a hand-written decoder for the one
// message corsproc receives in bulk: the ProcessingRequest carrying request
// or response headers. Install it with grpc.ForceServerCodecV2(Codec{}).
//
// The standard codec decodes through protobuf reflection and allocates every
// header entry, key and value separately: for a browser's request that is
// most of the CPU a stream costs corsproc beyond gRPC itself. This decoder
// produces the very same message (tests compare it with proto.Equal, and a
// fuzz target with arbitrary bytes), with the header entries in one slice,
// their raw values in one buffer and common header names interned. Anything
// it does not handle itself (bodies, trailers, header attributes, a singular
// field repeated on the wire, unknown fields, malformed input) is decoded by
// the standard codec from the start, so the result never depends on which
// decoder ran. Every other message type, and every marshal, goes to the
// standard codec; when the binary is built with -tags vtprotobuf,
// go-control-plane's generated vtprotobuf code marshals the messages that
// have it.
type Codec struct{}

var stdCodec = encoding.GetCodecV2(protoenc.Name)

// Name implements encoding.CodecV2: it replaces the "proto" codec.
func (Codec) Name() string { return protoenc.Name }

// vtMarshaler is what go-control-plane's *_vtproto.pb.go files (build tag
// vtprotobuf) add to its messages: marshalling code only, no unmarshal.
type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict(dAtA []byte) (int, error)
}

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMarshaler)
	if !ok {
		return stdCodec.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if _, err := m.MarshalToSizedBufferVTStrict(buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if _, err := m.MarshalToSizedBufferVTStrict((*buf)[:size]); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*extprocv3.ProcessingRequest)
	if !ok {
		return stdCodec.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return unmarshalRequest(buf.ReadOnlyData(), req)
}

// unmarshalRequest decodes b into req like proto.Unmarshal does.
func unmarshalRequest(b []byte, req *extprocv3.ProcessingRequest) error {
	proto.Reset(req)
	if decodeRequest(b, req) {
		return nil
	}
	return proto.Unmarshal(b, req) // resets req first
}

// Field numbers of the messages decodeRequest reads.
const (
	fieldRequestHeaders    = 2  // ProcessingRequest.request_headers
	fieldResponseHeaders   = 3  // ProcessingRequest.response_headers
	fieldMetadataContext   = 8  // ProcessingRequest.metadata_context
	fieldAttributes        = 9  // ProcessingRequest.attributes
	fieldObservabilityMode = 10 // ProcessingRequest.observability_mode
	fieldProtocolConfig    = 11 // ProcessingRequest.protocol_config

	fieldHeaderMap   = 1 // HttpHeaders.headers
	fieldEndOfStream = 3 // HttpHeaders.end_of_stream

	fieldHeaderValues = 1 // HeaderMap.headers

	fieldKey      = 1 // HeaderValue.key, and map entries' key
	fieldValue    = 2 // HeaderValue.value, and map entries' value
	fieldRawValue = 3 // HeaderValue.raw_value
)

// decodeRequest decodes a ProcessingRequest holding headers into the reset
// req and reports whether it could; when it could not, req is garbage and
// the caller decodes b with proto.Unmarshal.
func decodeRequest(b []byte, req *extprocv3.ProcessingRequest) bool {
	var seen uint32 // singular message fields already decoded
	once := func(num protowire.Number) bool {
		bit := uint32(1) << num
		if seen&bit != 0 {
			return false // a repeated singular message merges: not handled here
		}
		seen |= bit
		return true
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case typ == protowire.VarintType && num == fieldObservabilityMode:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			req.ObservabilityMode = v != 0
			continue
		case typ != protowire.BytesType:
			return false
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case fieldRequestHeaders, fieldResponseHeaders:
			if req.Request != nil || !once(num) {
				return false
			}
			h := new(extprocv3.HttpHeaders)
			if !decodeHTTPHeaders(v, h) {
				return false
			}
			if num == fieldRequestHeaders {
				req.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: h}
			} else {
				req.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: h}
			}
		case fieldAttributes:
			key, val, ok := decodeAttribute(v)
			if !ok {
				return false
			}
			if req.Attributes == nil {
				req.Attributes = make(map[string]*structpb.Struct, 1)
			}
			req.Attributes[key] = val
		case fieldMetadataContext:
			if !once(num) {
				return false
			}
			req.MetadataContext = new(corev3.Metadata)
			if proto.Unmarshal(v, req.MetadataContext) != nil {
				return false
			}
		case fieldProtocolConfig:
			if !once(num) {
				return false
			}
			req.ProtocolConfig = new(extprocv3.ProtocolConfiguration)
			if proto.Unmarshal(v, req.ProtocolConfig) != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// decodeHTTPHeaders decodes an HttpHeaders without attributes.
func decodeHTTPHeaders(b []byte, h *extprocv3.HttpHeaders) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == fieldHeaderMap && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || h.Headers != nil {
				return false
			}
			b = b[n:]
			h.Headers = new(corev3.HeaderMap)
			if !decodeHeaderMap(v, h.Headers) {
				return false
			}
		case num == fieldEndOfStream && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			h.EndOfStream = v != 0
		default:
			return false
		}
	}
	return true
}

// decodeHeaderMap decodes a HeaderMap: every entry in one slice, every
// raw_value in one copy of b.
func decodeHeaderMap(b []byte, m *corev3.HeaderMap) bool {
	// Count the entries first, so that they are allocated at once. Like
	// decodeHeaderValue, this per-header loop does nextBytesField's work
	// in place.
	count := 0
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 || num != fieldHeaderValues || typ != protowire.BytesType {
			return false
		}
		rest = rest[n:]
		_, n = protowire.ConsumeBytes(rest)
		if n < 0 {
			return false
		}
		rest = rest[n:]
		count++
	}
	if count == 0 {
		return true
	}
	// The values alias one copy of the message: the gRPC buffer b points
	// into is reused once Unmarshal returns.
	own := bytes.Clone(b)
	vals := make([]corev3.HeaderValue, count)
	m.Headers = make([]*corev3.HeaderValue, count)
	i := 0
	for rest := own; len(rest) > 0; i++ {
		_, _, n := protowire.ConsumeTag(rest)
		rest = rest[n:]
		v, n := protowire.ConsumeBytes(rest)
		rest = rest[n:]
		if !decodeHeaderValue(v, &vals[i]) {
			return false
		}
		m.Headers[i] = &vals[i]
	}
	return true
}

// decodeHeaderValue decodes a HeaderValue whose bytes stay valid: raw_value
// aliases b. Like proto.Unmarshal, it refuses a key or value that is not
// UTF-8, and the last occurrence of a field wins.
func decodeHeaderValue(b []byte, hv *corev3.HeaderValue) bool {
	// Run for every header: nextBytesField's work written out, as the
	// compiler does not inline it (measured: 7% more instructions per
	// request message through the helper).
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case fieldKey:
			if !utf8.Valid(v) {
				return false
			}
			hv.Key = internHeaderName(v)
		case fieldValue:
			if !utf8.Valid(v) {
				return false
			}
			hv.Value = string(v)
		case fieldRawValue:
			hv.RawValue = v[:len(v):len(v)]
		default:
			return false
		}
	}
	return true
}

// decodeAttribute decodes one entry of the attributes map.
func decodeAttribute(b []byte) (string, *structpb.Struct, bool) {
	var (
		key string
		val *structpb.Struct
	)
	for len(b) > 0 {
		num, v, rest, ok := nextBytesField(b)
		if !ok {
			return "", nil, false
		}
		b = rest
		switch num {
		case fieldKey:
			if !utf8.Valid(v) {
				return "", nil, false
			}
			key = internHeaderName(v)
		case fieldValue:
			if val != nil {
				return "", nil, false // merges: not handled here
			}
			if val, ok = decodeStruct(v); !ok {
				return "", nil, false
			}
		default:
			return "", nil, false
		}
	}
	if val == nil {
		val = new(structpb.Struct)
	}
	return key, val, true
}

// Field numbers of google.protobuf.Struct and Value.
const (
	fieldStructFields = 1 // Struct.fields
	fieldStringValue  = 3 // Value.string_value
)

// decodeStruct decodes a Struct whose values are all strings, as Envoy's
// attributes are (xds.route_name); anything else is left to proto.Unmarshal.
func decodeStruct(b []byte) (*structpb.Struct, bool) {
	st := new(structpb.Struct)
	for len(b) > 0 {
		num, entry, rest, ok := nextBytesField(b)
		if !ok || num != fieldStructFields {
			return nil, false
		}
		b = rest
		var key string
		var val *structpb.Value
		for len(entry) > 0 {
			num, v, rest, ok := nextBytesField(entry)
			if !ok {
				return nil, false
			}
			entry = rest
			switch num {
			case fieldKey:
				if !utf8.Valid(v) {
					return nil, false
				}
				key = internHeaderName(v)
			case fieldValue:
				if val != nil {
					return nil, false // merges: not handled here
				}
				s, ok := decodeStringValue(v)
				if !ok {
					return nil, false
				}
				val = structpb.NewStringValue(s)
			default:
				return nil, false
			}
		}
		if val == nil {
			return nil, false
		}
		if st.Fields == nil {
			st.Fields = make(map[string]*structpb.Value, 1)
		}
		st.Fields[key] = val
	}
	return st, true
}

// decodeStringValue decodes a Value holding a string_value, and nothing
// else.
func decodeStringValue(b []byte) (string, bool) {
	num, v, rest, ok := nextBytesField(b)
	if !ok || num != fieldStringValue || len(rest) > 0 || !utf8.Valid(v) {
		return "", false
	}
	return string(v), true
}

// nextBytesField reads the length-delimited field b starts with: its number,
// its bytes and what follows it. ok is false when b does not start with a
// well-formed field of that wire type.
func nextBytesField(b []byte) (num protowire.Number, v, rest []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || typ != protowire.BytesType {
		return 0, nil, nil, false
	}
	v, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		return 0, nil, nil, false
	}
	return num, v, b[n+m:], true
}

// internHeaderName returns b as a string, without allocating for the names
// Envoy sends on most requests and responses.
func internHeaderName(b []byte) string {
	switch string(b) { // no allocation: the compiler compares in place
	case ":authority":
		return ":authority"
	case ":path":
		return ":path"
	case ":method":
		return ":method"
	case ":scheme":
		return ":scheme"
	case ":status":
		return ":status"
	case "accept":
		return "accept"
	case "accept-encoding":
		return "accept-encoding"
	case "accept-language":
		return "accept-language"
	case "access-control-request-headers":
		return "access-control-request-headers"
	case "access-control-request-method":
		return "access-control-request-method"
	case "access-control-request-private-network":
		return "access-control-request-private-network"
	case "authorization":
		return "authorization"
	case "cache-control":
		return "cache-control"
	case "content-length":
		return "content-length"
	case "content-type":
		return "content-type"
	case "cookie":
		return "cookie"
	case "date":
		return "date"
	case "etag":
		return "etag"
	case "origin":
		return "origin"
	case "pragma":
		return "pragma"
	case "priority":
		return "priority"
	case "referer":
		return "referer"
	case "sec-ch-ua":
		return "sec-ch-ua"
	case "sec-ch-ua-mobile":
		return "sec-ch-ua-mobile"
	case "sec-ch-ua-platform":
		return "sec-ch-ua-platform"
	case "sec-fetch-dest":
		return "sec-fetch-dest"
	case "sec-fetch-mode":
		return "sec-fetch-mode"
	case "sec-fetch-site":
		return "sec-fetch-site"
	case "server":
		return "server"
	case "set-cookie":
		return "set-cookie"
	case "user-agent":
		return "user-agent"
	case "vary":
		return "vary"
	case "x-envoy-upstream-service-time":
		return "x-envoy-upstream-service-time"
	case "x-forwarded-for":
		return "x-forwarded-for"
	case "x-forwarded-proto":
		return "x-forwarded-proto"
	case "x-request-id":
		return "x-request-id"
	case AttributesKey:
		return AttributesKey
	case AttributeRoute:
		return AttributeRoute
	}
	return string(b)
}
