package processor

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// Bounds on what one request may make corsproc do. Each is a named setting
// with a defined outcome past it; docs/security.md lists them all.
const (
	// DefaultMaxRequestHeaders bounds the header entries (pseudo-headers
	// included, one per value) of one request_headers message that corsproc
	// inspects. Envoy refuses requests with more than 100 headers by default
	// (max_headers_count); 256 leaves room for a deployment that raised it.
	DefaultMaxRequestHeaders = 256
	// DefaultMaxRequestHeaderBytes bounds the bytes of header names and
	// values of one request_headers message that corsproc inspects. Envoy
	// refuses requests with more than 60 KiB of headers by default
	// (max_request_headers_kb); 128 KiB leaves room for large cookies.
	DefaultMaxRequestHeaderBytes = 128 << 10
)

// Values of the limit label of corsproc_limits_exceeded_total.
const (
	MetricLimitsExceeded = "corsproc_limits_exceeded_total"

	LimitRequestHeaders     = "request_headers"
	LimitRequestHeaderBytes = "request_header_bytes"
	LimitStreamIdle         = "stream_idle_timeout"
	LimitStreams            = "streams"
	LimitMessage            = "message"
	// LimitEnvoyResponseHeaders counts responses whose header map corsproc's
	// headers would take past Envoy's default limits (envoylimits.go).
	LimitEnvoyResponseHeaders = "envoy_response_headers"
)

type limitMetrics struct {
	headers, headerBytes, idle prometheus.Counter
	streams, message           prometheus.Counter
	envoyResponse              prometheus.Counter
}

func newLimitMetrics(reg prometheus.Registerer) *limitMetrics {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricLimitsExceeded,
		Help: "Requests and streams past one of corsproc's bounds, by limit: request_headers and request_header_bytes (the request's CORS is refused), stream_idle_timeout (the stream is closed with DEADLINE_EXCEEDED), streams (a stream past --max-streams is refused with RESOURCE_EXHAUSTED), message (a message past the decoder's bounds is refused: its stream fails with INTERNAL), envoy_response_headers (a response whose header map corsproc's headers would take past Envoy's default limits of 100 headers or 60 KiB: CORS headers withheld, as Envoy would answer 500).",
	}, []string{"limit"})
	if reg != nil {
		vec = register(reg, vec)
	}
	return &limitMetrics{
		headers:     vec.WithLabelValues(LimitRequestHeaders),
		headerBytes: vec.WithLabelValues(LimitRequestHeaderBytes),
		idle:        vec.WithLabelValues(LimitStreamIdle),
		streams:     vec.WithLabelValues(LimitStreams),
		message:     vec.WithLabelValues(LimitMessage),

		envoyResponse: vec.WithLabelValues(LimitEnvoyResponseHeaders),
	}
}

// headerBounds are the limits of one request_headers message.
type headerBounds struct {
	entries, bytes int
}

// past returns the bound that entry i (counting from 0) of a header map
// exceeds when the entries up to and including it hold total bytes, ""
// when none. headerScan, and the Codec on the wire and while decoding, stop
// at the same entry through it.
func (b headerBounds) past(i, total int) string {
	if i >= b.entries {
		return LimitRequestHeaders
	}
	if total > b.bytes {
		return LimitRequestHeaderBytes
	}
	return ""
}

// headerSize is what an entry counts towards the bytes bound: the lengths of
// its key, value and raw value.
func headerSize(hv *corev3.HeaderValue) int {
	return len(hv.Key) + len(hv.Value) + len(hv.RawValue)
}
