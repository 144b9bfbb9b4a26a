package processor

import (
	"unicode/utf8"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protowire"
)

// message is what Process receives every ProcessingRequest into.
//
// With the Codec, a request_headers message of the shape Envoy sends is not
// built: the Codec scans it on the wire (scanRequest) straight into the
// facts the processor reads, and the embedded ProcessingRequest says only
// which message it is, end_of_stream and observability_mode. Building it
// cost a HeaderValue per header entry, the entries' slices, a copy of the
// message and the attribute's maps, for the six values the processor reads:
// for a browser's request, 2.9 KB and a tenth of corsproc's CPU per HTTP
// request (docs/performance.md).
//
// Every other message, and every message when the gRPC server runs another
// codec, is an ordinary ProcessingRequest: grpc-go's proto codec decodes
// into the embedded one, whose methods *message has, and Process reads its
// headers with extract.
type message struct {
	extprocv3.ProcessingRequest

	// bounds are the Server's bounds on request headers, which the Codec
	// applies to the message in place of its own: the facts are then read
	// within exactly the bounds they would be read within from a decoded
	// message. Zero: the Codec's.
	bounds headerBounds

	// scanned: the Codec read the request headers into facts; the
	// HttpHeaders of the oneof has no header map.
	scanned bool
	facts   requestFacts

	// The oneof of a scanned message, here so that it costs no allocation.
	requestHeaders extprocv3.ProcessingRequest_RequestHeaders
	headers        extprocv3.HttpHeaders
}

// requestFacts returns the facts of m, a request_headers message: those
// the Codec scanned, or those read now from the decoded message, within
// bounds.
func (m *message) requestFacts(bounds headerBounds) *requestFacts {
	if !m.scanned {
		extract(m.GetRequestHeaders().GetHeaders().GetHeaders(), bounds, &m.facts)
		m.facts.route, m.facts.haveRoute = routeOf(&m.ProcessingRequest)
	}
	return &m.facts
}

// reset readies m for the next message, keeping its bounds and scratch
// space.
func (m *message) reset() {
	m.ProcessingRequest.Reset()
	m.scanned = false
	m.facts = requestFacts{acrh: m.facts.acrh[:0]}
	m.requestHeaders = extprocv3.ProcessingRequest_RequestHeaders{}
	m.headers.Reset()
}

// scanRequest reads b, a ProcessingRequest on the wire, into m when it is
// request_headers of the shape Envoy sends: the HttpHeaders (header map and
// end_of_stream), request attributes whose Structs hold strings, and
// observability_mode. It reports whether it did; when it did not, m is to
// be reset and b decoded as unmarshalRequest does.
//
// It accepts exactly the messages decodeRequest decodes, with the same
// checks in the same order, and counts what they would build in lim as
// decodeRequest does; its facts are those extract reads from decodeRequest's
// message (FuzzScan compares the two). Of the attributes it keeps only the
// route name, which captureRoute would read.
func scanRequest(b []byte, m *message, lim decodeLimits) bool {
	sc := headerScan{bounds: lim.headerBounds}
	var (
		headerMap []byte // the header map on the wire, for the second pass
		haveHTTP  bool   // request_headers seen
	)
	for len(b) > 0 {
		num, v, rest, ok := nextRequestField(b, &m.ObservabilityMode)
		if !ok {
			return false
		}
		b = rest
		switch num {
		case fieldObservabilityMode:
		case fieldRequestHeaders:
			if haveHTTP || !lim.other() {
				return false
			}
			haveHTTP = true
			var ok bool
			if headerMap, ok = scanHTTPHeaders(v, &m.headers, &sc, &lim); !ok {
				return false
			}
		case fieldAttributes:
			if !scanAttribute(v, &sc, &lim) {
				return false
			}
		default:
			// response_headers and everything else: decoded whole.
			return false
		}
	}
	if !haveHTTP {
		return false
	}
	sc.facts(&m.facts, acrhLines{wire: headerMap[sc.acrhFrom:sc.acrhTo]})
	m.scanned = true
	m.requestHeaders.RequestHeaders = &m.headers
	m.Request = &m.requestHeaders
	return true
}

// wireValue is valueOf for an entry on the wire.
func wireValue(value, raw []byte) headerValue {
	if len(raw) > 0 {
		return headerValue{raw: raw}
	}
	return headerValue{raw: value}
}

// scanHTTPHeaders reads an HttpHeaders as decodeHTTPHeaders decodes it: its
// end_of_stream into h, its header map's entries into sc, within sc's
// bounds. It returns the header map's bytes.
func scanHTTPHeaders(b []byte, h *extprocv3.HttpHeaders, sc *headerScan, lim *decodeLimits) ([]byte, bool) {
	var headerMap []byte
	haveMap := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case num == fieldHeaderMap && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || haveMap || !lim.other() {
				return nil, false
			}
			b = b[n:]
			haveMap = true
			if !scanHeaderMap(v, sc) {
				return nil, false
			}
			headerMap = v
		case num == fieldEndOfStream && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			h.EndOfStream = v != 0
		default:
			return nil, false
		}
	}
	return headerMap, true
}

// scanHeaderMap reads a HeaderMap's entries into sc as decodeHeaderMap
// decodes them: every entry must be a well-formed header_values field, and
// the entries are read, and checked, until the first past sc's bounds (the
// one decodeHeaderMapBounded replaces by a stand-in).
func scanHeaderMap(b []byte, sc *headerScan) bool {
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 || num != fieldHeaderValues || typ != protowire.BytesType {
			return false
		}
		rest = rest[n:]
		if _, n = protowire.ConsumeBytes(rest); n < 0 {
			return false
		}
		rest = rest[n:]
	}
	for off := 0; off < len(b); {
		if sc.entries >= sc.bounds.entries {
			// Past the count: the entry is not read (the stand-in of
			// decodeHeaderMapBounded is an empty entry).
			sc.add(slotNone, headerValue{}, 0, off, off)
			return true
		}
		_, _, n := protowire.ConsumeTag(b[off:])
		v, m := protowire.ConsumeBytes(b[off+n:])
		next := off + n + m
		key, value, raw, ok := parseHeaderValue(v)
		if !ok {
			return false
		}
		if !sc.add(slotOf(key), wireValue(value, raw), len(key)+len(value)+len(raw), off, next) {
			return true
		}
		off = next
	}
	return true
}

// scanAttribute reads one entry of the attributes map as decodeAttribute
// decodes it, keeping the route name of the ext_proc filter's Struct in sc.
// A later entry for the same key replaces an earlier one, as in the map.
func scanAttribute(b []byte, sc *headerScan, lim *decodeLimits) bool {
	if !lim.other() {
		return false
	}
	var (
		key       []byte
		haveValue bool
		route     []byte
		haveRoute bool
	)
	for len(b) > 0 {
		num, v, rest, ok := nextBytesField(b)
		if !ok {
			return false
		}
		b = rest
		switch num {
		case fieldKey:
			if !utf8.Valid(v) {
				return false
			}
			key = v
		case fieldValue:
			if haveValue || !lim.other() {
				return false
			}
			haveValue = true
			if route, haveRoute, ok = scanStruct(v, lim); !ok {
				return false
			}
		default:
			return false
		}
	}
	if string(key) == AttributesKey {
		sc.route, sc.haveRoute = headerValue{raw: route}, haveRoute
	}
	return true
}

// scanStruct reads a Struct as decodeStruct decodes it, and returns its
// AttributeRoute field's string, the last one as in the map.
func scanStruct(b []byte, lim *decodeLimits) (route []byte, haveRoute, ok bool) {
	for len(b) > 0 {
		num, entry, rest, ok := nextBytesField(b)
		if !ok || num != fieldStructFields || !lim.other() {
			return nil, false, false
		}
		b = rest
		var (
			key       []byte
			val       []byte
			haveValue bool
		)
		for len(entry) > 0 {
			num, v, rest, ok := nextBytesField(entry)
			if !ok {
				return nil, false, false
			}
			entry = rest
			switch num {
			case fieldKey:
				if !utf8.Valid(v) {
					return nil, false, false
				}
				key = v
			case fieldValue:
				if haveValue || !lim.other() {
					return nil, false, false
				}
				s, ok := stringValue(v)
				if !ok {
					return nil, false, false
				}
				val, haveValue = s, true
			default:
				return nil, false, false
			}
		}
		if !haveValue {
			return nil, false, false
		}
		if string(key) == AttributeRoute {
			route, haveRoute = val, true
		}
	}
	return route, haveRoute, true
}
