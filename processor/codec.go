package processor

import (
	"bytes"
	"errors"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// Codec is gRPC's "proto" codec with a hand-written decoder for the one
// message corsproc receives in bulk: the ProcessingRequest carrying request
// or response headers. Install it with grpc.ForceServerCodecV2; a Server's
// GRPCServerOptions does, with the Server's bounds.
//
// The standard codec decodes through protobuf reflection and allocates every
// header entry, key and value separately: for a browser's request that is
// most of the CPU a stream costs corsproc beyond gRPC itself. This decoder
// produces the very same message (tests compare it with proto.Equal, and a
// fuzz target with arbitrary bytes), with the header entries in one slice,
// their raw values in one buffer and common header names interned. Anything
// it does not handle itself (bodies, trailers, header attributes, a singular
// field repeated on the wire, unknown fields, malformed input) is decoded by
// the standard codec from the start, once checked against the bounds below,
// so within them the result never depends on which decoder ran. Every other message type, and every marshal, goes to the
// standard codec; when the binary is built with -tags vtprotobuf,
// go-control-plane's generated vtprotobuf code marshals the messages that
// have it.
//
// Process receives into its own message type, and for it the Codec does
// less still: request headers of the shape Envoy sends are not built at
// all but scanned on the wire into the few values the processor reads
// (scanRequest; one allocation per message), within the Server's bounds;
// anything else is decoded as above. Tests compare the facts read either
// way (checkScan, run by FuzzCodec).
//
// The codec bounds what one message can make corsproc allocate
// (docs/security.md, "Bounds"), so that a message of many tiny entries
// cannot cost many times its size:
//
//   - A header map past MaxHeaders entries or MaxHeaderBytes bytes (counted
//     as headerScan counts them) is not built whole: its entries
//     within the bounds are decoded as proto.Unmarshal decodes them, then
//     one stand-in entry for the rest, which no one reads, makes the map
//     past its bound, and the processor refuses the request's CORS as it
//     refuses any request past the bounds. Entries past the stand-in are
//     neither built nor checked.
//   - Other messages in one ProcessingRequest (attributes, Struct fields and
//     values, metadata) are counted: past MaxOtherMessages the message is
//     refused (errPastBounds).
//   - A message the hand-written decoder leaves to proto.Unmarshal is first
//     walked on the wire: one with a header map past the bounds, or past
//     MaxOtherMessages, is refused the same way, never built.
type Codec struct {
	// MaxHeaders and MaxHeaderBytes bound each header map, as
	// Options.MaxRequestHeaders and Options.MaxRequestHeaderBytes bound the
	// request's; 0 means DefaultMaxRequestHeaders and
	// DefaultMaxRequestHeaderBytes.
	MaxHeaders, MaxHeaderBytes int

	// refused counts the messages refused past a bound; nil counts nothing.
	refused prometheus.Counter
}

// MaxOtherMessages bounds the protobuf messages of one ProcessingRequest
// other than header entries: the attributes map's entries and Structs, the
// metadata's, each Struct field and Value. Envoy sends a handful (one route
// name attribute: four); past it the message is refused (errPastBounds:
// the stream fails with INTERNAL).
const MaxOtherMessages = 1024

// errPastBounds is the error of a message refused past the codec's bounds.
// grpc-go fails the stream with an INTERNAL status that quotes it ("grpc:
// failed to unmarshal the received message: corsproc: message past the
// decoder's bounds ..."), written by the receive itself: a codec's error is
// always INTERNAL (recv in rpc_util.go, serverStream.RecvMsg in stream.go,
// grpc-go 1.85), so no other code can be given without decoding the message
// as accepted. Envoy treats every status alike: a processor error.
var errPastBounds = errors.New("corsproc: message past the decoder's bounds (header entries or bytes, or other messages)")

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
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	var (
		req *extprocv3.ProcessingRequest
		m   *message
	)
	switch v := v.(type) {
	case *message: // Process
		m, req = v, &v.ProcessingRequest
	case *extprocv3.ProcessingRequest:
		req = v
	default:
		// The health service's requests: one string, nothing to bound.
		return stdCodec.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	lim := c.limits()
	if m != nil {
		if m.bounds.entries > 0 {
			lim.headerBounds = m.bounds
		}
		m.reset()
		if scanRequest(buf.ReadOnlyData(), m, lim) {
			return nil
		}
		m.reset()
	}
	err := unmarshalRequest(buf.ReadOnlyData(), req, lim)
	if err == errPastBounds && c.refused != nil {
		c.refused.Inc()
	}
	return err
}

// decodeLimits are a Codec's bounds, defaults applied.
type decodeLimits struct {
	headerBounds
	// others is what is left of MaxOtherMessages while a message is
	// decoded.
	others int
}

func (c Codec) limits() decodeLimits {
	l := decodeLimits{headerBounds{DefaultMaxRequestHeaders, DefaultMaxRequestHeaderBytes}, MaxOtherMessages}
	if c.MaxHeaders > 0 {
		l.entries = c.MaxHeaders
	}
	if c.MaxHeaderBytes > 0 {
		l.bytes = c.MaxHeaderBytes
	}
	return l
}

// other counts one more message other than a header entry, and reports
// whether it is within MaxOtherMessages.
func (l *decodeLimits) other() bool {
	l.others--
	return l.others >= 0
}

// unmarshalRequest decodes b into req like proto.Unmarshal does, within
// lim (see Codec).
func unmarshalRequest(b []byte, req *extprocv3.ProcessingRequest, lim decodeLimits) error {
	proto.Reset(req)
	if decodeRequest(b, req, lim) {
		return nil
	}
	if err := checkWire(b, lim); err != nil {
		return err
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
// req, within lim, and reports whether it could; when it could not, req is
// garbage and the caller decodes b with proto.Unmarshal (after checkWire).
// It counts the messages it builds as checkWire does.
func decodeRequest(b []byte, req *extprocv3.ProcessingRequest, lim decodeLimits) bool {
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
		num, v, rest, ok := nextRequestField(b, &req.ObservabilityMode)
		if !ok {
			return false
		}
		b = rest
		switch num {
		case fieldObservabilityMode:
		case fieldRequestHeaders, fieldResponseHeaders:
			if req.Request != nil || !once(num) || !lim.other() {
				return false
			}
			h := new(extprocv3.HttpHeaders)
			if !decodeHTTPHeaders(v, h, &lim) {
				return false
			}
			if num == fieldRequestHeaders {
				req.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: h}
			} else {
				req.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: h}
			}
		case fieldAttributes:
			key, val, ok := decodeAttribute(v, &lim)
			if !ok {
				return false
			}
			if req.Attributes == nil {
				req.Attributes = make(map[string]*structpb.Struct, 1)
			}
			req.Attributes[key] = val
		case fieldMetadataContext:
			// Metadata holds Structs of any shape: walked first, so that
			// one of many tiny values is refused, not built.
			if !once(num) || !lim.other() || walkMessage(v, metadataDesc, &lim, 1) != nil {
				return false
			}
			req.MetadataContext = new(corev3.Metadata)
			if proto.Unmarshal(v, req.MetadataContext) != nil {
				return false
			}
		case fieldProtocolConfig:
			// Scalars only: it cannot cost more than its size.
			if !once(num) || !lim.other() {
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

// nextRequestField reads the field of a ProcessingRequest b starts with, for
// the hand-written decoders: observability_mode, stored in observe, or a
// length-delimited field's number and bytes. ok is false for any other
// field and for malformed input.
func nextRequestField(b []byte, observe *bool) (num protowire.Number, v, rest []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, nil, nil, false
	}
	b = b[n:]
	switch {
	case typ == protowire.VarintType && num == fieldObservabilityMode:
		x, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return 0, nil, nil, false
		}
		*observe = x != 0
		return num, nil, b[n:], true
	case typ != protowire.BytesType, num == fieldObservabilityMode:
		// observability_mode in another wire type is an unknown field
		// to proto.Unmarshal: not handled here.
		return 0, nil, nil, false
	}
	v, n = protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, nil, nil, false
	}
	return num, v, b[n:], true
}

// decodeHTTPHeaders decodes an HttpHeaders without attributes.
func decodeHTTPHeaders(b []byte, h *extprocv3.HttpHeaders, lim *decodeLimits) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == fieldHeaderMap && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || h.Headers != nil || !lim.other() {
				return false
			}
			b = b[n:]
			h.Headers = new(corev3.HeaderMap)
			if !decodeHeaderMap(v, h.Headers, lim.headerBounds) {
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
// raw_value in one copy of b. Past lim it decodes only what
// headerScan inspects (decodeHeaderMapBounded).
func decodeHeaderMap(b []byte, m *corev3.HeaderMap, lim headerBounds) bool {
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
	// Within both bounds for sure: no more entries than allowed, and fewer
	// bytes on the wire than allowed, which the names and values are a
	// part of. Otherwise the map may be past a bound.
	if count > lim.entries || len(b) > lim.bytes {
		return decodeHeaderMapBounded(b, m, count, lim)
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

// decodeHeaderMapBounded decodes a HeaderMap of count entries (b, the
// gRPC buffer) that may be past lim, building no more than
// headerScan looks at. It decodes the entries in order, exactly as
// proto.Unmarshal would, until the first one the scan stops at: the entry
// lim.entries (counting from 0), or the one that takes the bytes past
// lim.bytes. That one is replaced by a stand-in that the scan sees just as it
// would the real one (an empty entry at index lim.entries; an entry of
// exactly the bytes that take the map one byte past lim.bytes), and the
// entries after it are dropped unread. So the processor finds the request
// past the same bound, from the same inspected entries, as it would in the
// whole map, and the map costs at most lim.entries+1 entries and about
// twice lim.bytes (raw values copied once, values as strings).
func decodeHeaderMapBounded(b []byte, m *corev3.HeaderMap, count int, lim headerBounds) bool {
	n := min(count, lim.entries+1)
	vals := make([]corev3.HeaderValue, n)
	standIn := -1 // the stand-in's index, if there is one
	total, raws := 0, 0
	rest := b
	for i := range n {
		if lim.past(i, total) == LimitRequestHeaders {
			standIn = i // an empty entry
			break
		}
		_, _, k := protowire.ConsumeTag(rest)
		rest = rest[k:]
		v, k := protowire.ConsumeBytes(rest)
		rest = rest[k:]
		hv := &vals[i]
		if !decodeHeaderValue(v, hv) { // raw_value aliases b for now
			return false
		}
		size := headerSize(hv)
		if lim.past(i, total+size) != "" {
			standIn = i
			*hv = corev3.HeaderValue{RawValue: make([]byte, lim.bytes+1-total)}
			break
		}
		total += size
		raws += len(hv.RawValue)
	}
	if standIn >= 0 {
		vals = vals[:standIn+1]
	}
	// The raw values of the entries within the bounds, copied out of the
	// gRPC buffer into one buffer.
	own := make([]byte, 0, raws)
	m.Headers = make([]*corev3.HeaderValue, len(vals))
	for i := range vals {
		hv := &vals[i]
		if i != standIn && hv.RawValue != nil {
			start := len(own)
			own = append(own, hv.RawValue...)
			hv.RawValue = own[start:len(own):len(own)]
		}
		m.Headers[i] = hv
	}
	return true
}

// decodeHeaderValue decodes a HeaderValue whose bytes stay valid: raw_value
// aliases b.
func decodeHeaderValue(b []byte, hv *corev3.HeaderValue) bool {
	key, value, raw, ok := parseHeaderValue(b)
	if !ok {
		return false
	}
	hv.Key = internHeaderName(key)
	if value != nil {
		hv.Value = string(value)
	}
	if raw != nil {
		hv.RawValue = raw[:len(raw):len(raw)]
	}
	return true
}

// parseHeaderValue reads a HeaderValue on the wire, b, into views of its
// key, value and raw_value (nil when absent). Like proto.Unmarshal, it
// refuses a key or value that is not UTF-8, and the last occurrence of a
// field wins.
func parseHeaderValue(b []byte) (key, value, raw []byte, ok bool) {
	// Run for every header: nextBytesField's work written out, as the
	// compiler does not inline it (measured: 7% more instructions per
	// request message through the helper).
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return nil, nil, nil, false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, nil, nil, false
		}
		b = b[n:]
		switch num {
		case fieldKey:
			if !utf8.Valid(v) {
				return nil, nil, nil, false
			}
			key = v
		case fieldValue:
			if !utf8.Valid(v) {
				return nil, nil, nil, false
			}
			value = v
		case fieldRawValue:
			raw = v
		default:
			return nil, nil, nil, false
		}
	}
	return key, value, raw, true
}

// decodeAttribute decodes one entry of the attributes map, counting it and
// its Struct in lim.
func decodeAttribute(b []byte, lim *decodeLimits) (string, *structpb.Struct, bool) {
	var (
		key string
		val *structpb.Struct
	)
	if !lim.other() {
		return "", nil, false
	}
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
			if val != nil || !lim.other() {
				return "", nil, false // merges: not handled here
			}
			if val, ok = decodeStruct(v, lim); !ok {
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
// attributes are (xds.route_name), counting each field and its Value in lim;
// anything else is left to proto.Unmarshal.
func decodeStruct(b []byte, lim *decodeLimits) (*structpb.Struct, bool) {
	st := new(structpb.Struct)
	for len(b) > 0 {
		num, entry, rest, ok := nextBytesField(b)
		if !ok || num != fieldStructFields || !lim.other() {
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
				if val != nil || !lim.other() {
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
	v, ok := stringValue(b)
	return string(v), ok
}

// stringValue is decodeStringValue's view of the string, in b.
func stringValue(b []byte) ([]byte, bool) {
	num, v, rest, ok := nextBytesField(b)
	if !ok || num != fieldStringValue || len(rest) > 0 || !utf8.Valid(v) {
		return nil, false
	}
	return v, true
}

// Descriptors checkWire walks by.
var (
	requestDesc   = (*extprocv3.ProcessingRequest)(nil).ProtoReflect().Descriptor()
	headerMapDesc = (*corev3.HeaderMap)(nil).ProtoReflect().Descriptor()
	metadataDesc  = (*corev3.Metadata)(nil).ProtoReflect().Descriptor()
)

// errMalformed refuses a message checkWire cannot walk, which
// proto.Unmarshal would refuse too.
var errMalformed = errors.New("corsproc: malformed ProcessingRequest")

// checkWire is the bound of a message decodeRequest leaves to
// proto.Unmarshal: it walks b, a ProcessingRequest on the wire, field by
// field as proto.Unmarshal would decode it, building nothing, and returns
// errPastBounds for a header map past lim's bounds or more than
// MaxOtherMessages other messages, errMalformed for what proto.Unmarshal
// would refuse as malformed, nil otherwise. It costs a pass over b and no
// allocation.
func checkWire(b []byte, lim decodeLimits) error {
	return walkMessage(b, requestDesc, &lim, 0)
}

// walkMessage walks b, a message of type md at nesting depth depth,
// counting each message field in lim (header entries aside) and checking
// header maps against it. Fields it does not know, or of the wrong wire
// type, are skipped, as proto.Unmarshal keeps them as unknown bytes: they
// cost their size. Like proto.Unmarshal, it refuses nesting deeper than
// protowire.DefaultRecursionLimit.
func walkMessage(b []byte, md protoreflect.MessageDescriptor, lim *decodeLimits, depth int) error {
	if depth > protowire.DefaultRecursionLimit {
		return errMalformed
	}
	if md == headerMapDesc {
		return walkHeaderMap(b, lim.headerBounds)
	}
	fields := md.Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if typ == protowire.BytesType {
			if fd := fields.ByNumber(num); fd != nil && fd.Kind() == protoreflect.MessageKind {
				v, n := protowire.ConsumeBytes(b)
				if n < 0 {
					return errMalformed
				}
				b = b[n:]
				if !lim.other() {
					return errPastBounds
				}
				if err := walkMessage(v, fd.Message(), lim, depth+1); err != nil {
					return err
				}
				continue
			}
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
	}
	return nil
}

// walkHeaderMap checks a HeaderMap on the wire against lim, counting its
// entries and their bytes as headerScan counts them once decoded.
func walkHeaderMap(b []byte, lim headerBounds) error {
	entries, total := 0, 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if num != fieldHeaderValues || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return errMalformed
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		size, ok := headerValueSize(v)
		if !ok {
			return errMalformed
		}
		total += size
		if lim.past(entries, total) != "" {
			return errPastBounds
		}
		entries++
	}
	return nil
}

// headerValueSize is the size headerScan counts for a HeaderValue on
// the wire: the lengths of its key, value and raw_value, the last of each
// (proto3 keeps the last occurrence of a singular field).
func headerValueSize(b []byte) (int, bool) {
	var sizes [fieldRawValue + 1]int
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		if typ == protowire.BytesType && num >= fieldKey && num <= fieldRawValue {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, false
			}
			b = b[n:]
			sizes[num] = len(v)
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return 0, false
		}
		b = b[n:]
	}
	return sizes[fieldKey] + sizes[fieldValue] + sizes[fieldRawValue], true
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
