package processor

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

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
)

// extract fills st.req from Envoy's request headers, keeping the stream's
// policy metadata and route name.
//
// Keys arrive lower-cased, pseudo-headers included, one entry per value, so
// keys are matched exactly and a repeated header is seen as several entries.
// A repeated Origin or Access-Control-Request-Method is flagged (the policy
// refuses such requests); for the others the first value wins (HTTP/2 and
// Envoy's codecs forbid repeated pseudo-headers anyway).
//
// truncated says that hs are only the entries within corsproc's bounds (see
// extractBounded): the CORS headers among them are not the whole story, so
// they are not read at all, and the request is marked Request.Truncated for
// the policy to refuse.
//
// The values the policy needs are copied into one string, whatever the
// number of headers: the request's strings are then owned by the stream, do
// not alias the message, and cost one allocation. Access-Control-Request-
// Headers lines are counted in the first pass over the entries and copied
// in a second, so that many of them cost no more than their bytes.
func (st *streamState) extract(hs []*corev3.HeaderValue, truncated bool) {
	var (
		slots     [numSlots]headerValue
		seen      [numSlots]bool
		dupOrigin bool
		dupACRM   bool
		lines     int // Access-Control-Request-Headers entries
		lineBytes int
	)
	for _, hv := range hs {
		if hv == nil {
			continue
		}
		var slot int
		switch hv.Key {
		case headerMethod:
			slot = slotMethod
		case headerAuthority:
			slot = slotAuthority
		case headerPath:
			slot = slotPath
		case policy.HeaderOrigin, policy.HeaderACRM, policy.HeaderACRPN, policy.HeaderACRH:
			if truncated {
				continue
			}
			switch hv.Key {
			case policy.HeaderOrigin:
				slot = slotOrigin
			case policy.HeaderACRM:
				slot = slotACRM
			case policy.HeaderACRPN:
				slot = slotACRPN
			default:
				lines++
				lineBytes += valueOf(hv).size()
				continue
			}
		default:
			continue
		}
		if seen[slot] {
			switch slot {
			case slotOrigin:
				dupOrigin = true
			case slotACRM:
				dupACRM = true
			}
			continue
		}
		seen[slot] = true
		slots[slot] = valueOf(hv)
	}

	total := lineBytes
	for _, v := range slots {
		total += v.size()
	}
	var b strings.Builder
	b.Grow(total)
	var ends [numSlots]int
	for i, v := range slots {
		b.Write(v.raw)
		b.WriteString(v.str)
		ends[i] = b.Len()
	}
	lineStart := b.Len()
	if lines > 0 {
		for _, hv := range hs {
			if hv != nil && hv.Key == policy.HeaderACRH {
				v := valueOf(hv)
				b.Write(v.raw)
				b.WriteString(v.str)
			}
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

	var acrh []string
	if lines > 0 {
		acrh = st.acrh[:0]
		if cap(acrh) < lines {
			acrh = make([]string, 0, lines)
		}
		off := lineStart
		for _, hv := range hs {
			if hv != nil && hv.Key == policy.HeaderACRH {
				n := valueOf(hv).size()
				acrh = append(acrh, all[off:off+n])
				off += n
			}
		}
		st.acrh = acrh
	}

	st.req = policy.Request{
		Method:              field(slotMethod),
		Origin:              field(slotOrigin),
		DuplicateOrigin:     dupOrigin,
		ACRM:                field(slotACRM),
		DuplicateACRM:       dupACRM,
		ACRH:                acrh,
		ACRPN:               field(slotACRPN),
		Host:                field(slotAuthority),
		Path:                field(slotPath),
		Route:               st.route,
		PolicyName:          st.policyName,
		AmbiguousPolicyName: st.ambiguousName,
		Truncated:           truncated,
	}
}
