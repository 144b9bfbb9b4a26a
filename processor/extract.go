package processor

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/corsproc/corsproc/policy"
)

// Pseudo-headers Envoy puts in HttpHeaders, lower case like every key.
const (
	headerMethod    = ":method"
	headerAuthority = ":authority"
	headerPath      = ":path"
)

// headerValue is a view of one header value as Envoy sent it.
type headerValue struct {
	raw []byte
	str string
}

// valueOf reads a header value. Since Envoy 1.27 values travel in raw_value
// only and value is empty; older Envoys send value only
// (docs/extproc-protocol.md, "Headers Envoy sends").
func valueOf(hv *corev3.HeaderValue) headerValue {
	if hv == nil {
		return headerValue{}
	}
	if len(hv.RawValue) > 0 {
		return headerValue{raw: hv.RawValue}
	}
	return headerValue{str: hv.Value}
}

func (v headerValue) size() int { return len(v.raw) + len(v.str) }

// The single-valued facts extract looks for.
const (
	slotMethod = iota
	slotOrigin
	slotACRM
	slotACRPN
	slotAuthority
	slotPath
	numSlots

	// slotACRH is an Access-Control-Request-Headers line, of which every
	// one counts; slotNone is any header the processor does not read.
	slotACRH = numSlots
	slotNone = numSlots + 1
)

// slotOf returns the slot of a header name, as Envoy sends it (lower case).
// It is written for both key forms, the decoded string and the bytes on the
// wire; the compiler compares the bytes in place, without allocating.
func slotOf[K ~string | ~[]byte](key K) int {
	switch string(key) {
	case headerMethod:
		return slotMethod
	case headerAuthority:
		return slotAuthority
	case headerPath:
		return slotPath
	case policy.HeaderOrigin:
		return slotOrigin
	case policy.HeaderACRM:
		return slotACRM
	case policy.HeaderACRPN:
		return slotACRPN
	case policy.HeaderACRH:
		return slotACRH
	}
	return slotNone
}

// isCORSSlot reports whether a slot is one of the CORS request headers,
// which are not read at all from headers cut at the bounds.
func isCORSSlot(slot int) bool {
	switch slot {
	case slotOrigin, slotACRM, slotACRPN, slotACRH:
		return true
	}
	return false
}

// requestFacts are what the processor reads of one request_headers message:
// the values the policy needs, each a slice of one string the stream owns,
// and the bound the headers exceed.
type requestFacts struct {
	method, origin, acrm, acrpn, host, path string

	acrh               []string
	dupOrigin, dupACRM bool

	// exceeded is the bound the header map exceeds, "" when none; the CORS
	// headers are then not read (see headerScan).
	exceeded string
	// entries is the number of header entries inspected.
	entries int

	// route is the route name attribute, when the Codec read it with the
	// headers (haveRoute).
	route     string
	haveRoute bool
}

// headerScan reads a request's header entries one at a time, in the order
// Envoy sent them, and keeps what requestFacts needs: views of the values,
// which still point into the message, until facts copies them out.
//
// Keys arrive lower-cased, pseudo-headers included, one entry per value, so
// keys are matched exactly and a repeated header is seen as several entries.
// A repeated Origin or Access-Control-Request-Method is flagged (the policy
// refuses such requests); for the others the first value wins (HTTP/2 and
// Envoy's codecs forbid repeated pseudo-headers anyway).
//
// The entries are counted against the bounds (headerBounds.past), and the
// scan stops at the first entry past a bound. Past a bound
// the request's CORS is refused, never allowed because of what was not
// inspected: the facts that select the policy (method, host, path, route,
// metadata) are read from the entries within the bounds, where Envoy puts
// the pseudo-headers, and the CORS headers are not read at all, so the
// request is decided as one whose Origin is malformed (Request.Truncated).
// An OPTIONS request is also taken as a preflight whose method cannot be
// read. So a governed preflight is rejected (403, or forwarded with
// unmatched_preflight: forward), and an actual request's response gets no
// Access-Control-Allow-Origin, only Vary: Origin, with the upstream's CORS
// headers removed; under allow_all_origins it gets "*", the answer that
// policy gives every request whatever its origin.
type headerScan struct {
	bounds   headerBounds
	entries  int    // entries inspected
	total    int    // their bytes (headerSize)
	exceeded string // the bound the entry after them exceeds

	slots              [numSlots]headerValue
	seen               [numSlots]bool
	dupOrigin, dupACRM bool

	// Access-Control-Request-Headers lines: counted here and copied in a
	// second pass over the positions from acrhFrom to acrhTo (whatever the
	// caller's positions are: entry indices, wire offsets), so that many of
	// them cost no more than their bytes.
	lines, lineBytes int
	acrhFrom, acrhTo int

	route     headerValue // the route name attribute, when the Codec sees it
	haveRoute bool
}

// add takes the next entry: its slot (slotOf its key), value and size
// (headerSize), at position at, the next entry's position being next. It
// reports false when the entry is past a bound: the scan is over and the
// entries after it are not to be read.
func (sc *headerScan) add(slot int, v headerValue, size, at, next int) bool {
	sc.total += size
	if sc.exceeded = sc.bounds.past(sc.entries, sc.total); sc.exceeded != "" {
		return false
	}
	sc.entries++
	switch slot {
	case slotNone:
	case slotACRH:
		if sc.lines == 0 {
			sc.acrhFrom = at
		}
		sc.lines++
		sc.lineBytes += v.size()
		sc.acrhTo = next
	default:
		if !sc.seen[slot] {
			sc.seen[slot] = true
			sc.slots[slot] = v
			break
		}
		switch slot {
		case slotOrigin:
			sc.dupOrigin = true
		case slotACRM:
			sc.dupACRM = true
		}
	}
	return true
}

// facts writes what the scan found into f. lines are the entries from the
// positions acrhFrom to acrhTo, read only when there are
// Access-Control-Request-Headers lines.
//
// The values are copied into one string, whatever the number of headers:
// the request's strings are then owned by the stream, do not alias the
// message, and cost one allocation.
func (sc *headerScan) facts(f *requestFacts, lines acrhLines) {
	if sc.exceeded != "" {
		// Cut at a bound: the CORS headers among the entries read are not
		// the whole story, so none of them is used.
		for slot := range sc.slots {
			if isCORSSlot(slot) {
				sc.slots[slot] = headerValue{}
			}
		}
		sc.dupOrigin, sc.dupACRM = false, false
		sc.lines, sc.lineBytes = 0, 0
	}
	total := sc.lineBytes + sc.route.size()
	for _, v := range sc.slots {
		total += v.size()
	}
	var b strings.Builder
	b.Grow(total)
	var ends [numSlots]int
	for i, v := range sc.slots {
		b.Write(v.raw)
		b.WriteString(v.str)
		ends[i] = b.Len()
	}
	routeStart := b.Len()
	b.Write(sc.route.raw)
	b.WriteString(sc.route.str)
	lineStart := b.Len()
	if sc.lines > 0 {
		for l := lines; ; {
			v, ok := l.next()
			if !ok {
				break
			}
			b.Write(v.raw)
			b.WriteString(v.str)
		}
	}
	all := b.String()
	field := func(slot int) string {
		start := 0
		if slot > 0 {
			start = ends[slot-1]
		}
		return all[start:ends[slot]]
	}

	acrh := f.acrh[:0]
	if sc.lines > 0 {
		if cap(acrh) < sc.lines {
			acrh = make([]string, 0, sc.lines)
		}
		off := lineStart
		for l := lines; ; {
			v, ok := l.next()
			if !ok {
				break
			}
			n := v.size()
			acrh = append(acrh, all[off:off+n])
			off += n
		}
	}
	*f = requestFacts{
		method:    field(slotMethod),
		origin:    field(slotOrigin),
		acrm:      field(slotACRM),
		acrpn:     field(slotACRPN),
		host:      field(slotAuthority),
		path:      field(slotPath),
		acrh:      acrh,
		dupOrigin: sc.dupOrigin,
		dupACRM:   sc.dupACRM,
		exceeded:  sc.exceeded,
		entries:   sc.entries,
		route:     all[routeStart:lineStart],
		haveRoute: sc.haveRoute,
	}
}

// extract reads decoded request headers into f within bounds: the path
// for messages the Codec did not scan on the wire (see Codec).
func extract(hs []*corev3.HeaderValue, bounds headerBounds, f *requestFacts) {
	sc := headerScan{bounds: bounds}
	for i, hv := range hs {
		var v headerValue
		slot, size := slotNone, 0
		if hv != nil {
			v, slot, size = valueOf(hv), slotOf(hv.Key), headerSize(hv)
		}
		if !sc.add(slot, v, size, i, i+1) {
			break
		}
	}
	sc.facts(f, acrhLines{decoded: hs[sc.acrhFrom:sc.acrhTo]})
}

// acrhLines reads the Access-Control-Request-Headers lines among header
// entries, decoded or on the wire.
type acrhLines struct {
	decoded []*corev3.HeaderValue
	wire    []byte // a HeaderMap's entries, already checked by scanHeaderMap
}

// next returns the next line's value, and false when there is none left.
func (l *acrhLines) next() (headerValue, bool) {
	for len(l.decoded) > 0 {
		hv := l.decoded[0]
		l.decoded = l.decoded[1:]
		if hv != nil && hv.Key == policy.HeaderACRH {
			return valueOf(hv), true
		}
	}
	for len(l.wire) > 0 {
		_, _, n := protowire.ConsumeTag(l.wire)
		v, m := protowire.ConsumeBytes(l.wire[n:])
		l.wire = l.wire[n+m:]
		key, value, raw, _ := parseHeaderValue(v)
		if slotOf(key) == slotACRH {
			return wireValue(value, raw), true
		}
	}
	return headerValue{}, false
}

// request fills st.req from the facts of the stream's request headers, its
// policy metadata and route name.
func (st *streamState) request(f *requestFacts) {
	st.req = policy.Request{
		Method:              f.method,
		Origin:              f.origin,
		DuplicateOrigin:     f.dupOrigin,
		ACRM:                f.acrm,
		DuplicateACRM:       f.dupACRM,
		ACRH:                f.acrh,
		ACRPN:               f.acrpn,
		Host:                f.host,
		Path:                f.path,
		Route:               st.route,
		PolicyName:          st.policyName,
		AmbiguousPolicyName: st.ambiguousName,
		Truncated:           f.exceeded != "",
	}
}
