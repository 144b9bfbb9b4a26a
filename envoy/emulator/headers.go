package emulator

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"golang.org/x/net/http/httpguts"
)

// Pseudo-headers, lower case like every key in Envoy's header maps.
const (
	hdrMethod    = ":method"
	hdrPath      = ":path"
	hdrAuthority = ":authority"
	hdrScheme    = ":scheme"
	hdrStatus    = ":status"
)

// header is one entry of an Envoy header map: a lower-case key and one value.
// A header sent several times is several entries.
type header struct{ key, value string }

// headerMap is an Envoy header map: ordered entries, pseudo-headers first.
type headerMap []header

// get returns the first value of key.
func (m headerMap) get(key string) (string, bool) {
	for _, h := range m {
		if h.key == key {
			return h.value, true
		}
	}
	return "", false
}

// remove removes every entry of key.
func (m *headerMap) remove(key string) {
	*m = slices.DeleteFunc(*m, func(h header) bool { return h.key == key })
}

// set is Envoy's HeaderMap::setCopy: the first entry of key takes value and
// the others are removed; a key not present is added at the end.
func (m *headerMap) set(key, value string) {
	for i, h := range *m {
		if h.key == key {
			(*m)[i].value = value
			rest := slices.DeleteFunc((*m)[i+1:], func(h header) bool { return h.key == key })
			*m = (*m)[:i+1+len(rest)]
			return
		}
	}
	m.add(key, value)
}

// add is Envoy's HeaderMap::addCopy: one more entry at the end, except for
// a header Envoy keeps inline (see inlineHeaders) that is already present,
// whose value gets the new one joined with "," (HeaderMapImpl::insertByKey
// and appendToHeader, source/common/http/header_map_impl.cc). Envoy's
// codecs add the header lines they parse the same way.
func (m *headerMap) add(key, value string) {
	if inlineHeaders[key] {
		for i, h := range *m {
			if h.key == key {
				if h.value == "" {
					(*m)[i].value = value
				} else if value != "" {
					(*m)[i].value = h.value + "," + value
				}
				return
			}
		}
	}
	*m = append(*m, header{key, value})
}

// inlineHeaders are the headers corsproc deals with that Envoy keeps as
// "inline" headers, one entry per map: the CORS request and response
// headers (registered by the CORS filter, the RegisterCustomInlineHeader
// handles of source/extensions/filters/http/cors/cors_filter.cc), and Vary
// and ETag (registered by the compressor, vary_handle and etag_handle in
// source/extensions/filters/http/common/compressor/compressor.cc). Both
// extensions are in Envoy's standard build, so the registrations hold
// whether or not the filters are configured.
var inlineHeaders = map[string]bool{
	"origin":                                 true,
	"access-control-request-method":          true,
	"access-control-request-headers":         true,
	"access-control-request-private-network": true,
	"access-control-allow-origin":            true,
	"access-control-allow-credentials":       true,
	"access-control-allow-methods":           true,
	"access-control-allow-headers":           true,
	"access-control-max-age":                 true,
	"access-control-expose-headers":          true,
	"access-control-allow-private-network":   true,
	"vary":                                   true,
	"etag":                                   true,
}

// byteSize is Envoy's HeaderMap::byteSize: the keys' and values' lengths.
func (m headerMap) byteSize() int {
	n := 0
	for _, h := range m {
		n += len(h.key) + len(h.value)
	}
	return n
}

// proto renders the map as Envoy sends it: one HeaderValue per entry, the
// value in raw_value only (Envoy 1.27 and later), value empty.
func (m headerMap) proto() *corev3.HeaderMap {
	hs := make([]*corev3.HeaderValue, len(m))
	for i, h := range m {
		hs[i] = &corev3.HeaderValue{Key: h.key, RawValue: []byte(h.value)}
	}
	return &corev3.HeaderMap{Headers: hs}
}

// hopByHop are the connection-specific headers Envoy's HTTP connection
// manager removes from requests and responses: ext_proc never sees them
// and they are never forwarded.
var hopByHop = map[string]bool{
	"connection":        true,
	"keep-alive":        true,
	"proxy-connection":  true,
	"transfer-encoding": true,
	"upgrade":           true,
}

// isHopByHop reports whether a header is removed as connection-specific.
// TE is kept only as "te: trailers", as Envoy does.
func isHopByHop(key, value string) bool {
	if key == "te" {
		return !strings.EqualFold(strings.TrimSpace(value), "trailers")
	}
	return hopByHop[key]
}

// requestHeaders builds the request header map Envoy's filter chain sees for
// r: the pseudo-headers :method, :path (query included), :authority and
// :scheme first, then the request's headers with lower-cased keys, one entry
// per value, connection-specific ones removed. Like Envoy's connection
// manager before the filters run, it adds x-forwarded-proto and an
// x-request-id when the request has none, and removes Expect: 100-continue.
//
// Go's server merges the lines of a header into one slice, losing their
// interleaving with other headers; the emulator sorts keys, so the order is
// deterministic.
func requestHeaders(r *http.Request) headerMap {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	path := r.RequestURI
	if !strings.HasPrefix(path, "/") {
		// Absolute-form (a proxy request) or a handler called directly:
		// Envoy's :path is the origin-form.
		path = r.URL.RequestURI()
	}
	m := headerMap{
		{hdrMethod, r.Method},
		{hdrPath, path},
		{hdrAuthority, r.Host},
		{hdrScheme, scheme},
	}
	m = appendHeaders(m, r.Header)
	// Envoy answers "Expect: 100-continue" itself (proxy_100_continue
	// false) and removes the header; Go's server sends the 100 when the
	// body is first read.
	if v, ok := m.get("expect"); ok && strings.EqualFold(v, "100-continue") {
		m.remove("expect")
	}
	if _, ok := m.get("content-length"); !ok && r.ContentLength > 0 {
		m.add("content-length", strconv.FormatInt(r.ContentLength, 10))
	}
	if _, ok := m.get("x-forwarded-proto"); !ok {
		m.add("x-forwarded-proto", scheme)
	}
	if _, ok := m.get("x-request-id"); !ok {
		m.add("x-request-id", newRequestID())
	}
	return m
}

// responseHeaders builds the response header map of an upstream response:
// :status first, then the headers as requestHeaders does.
func responseHeaders(resp *http.Response) headerMap {
	m := headerMap{{hdrStatus, strconv.Itoa(resp.StatusCode)}}
	return appendHeaders(m, resp.Header)
}

// appendHeaders appends h to m with lower-cased keys in sorted order, one
// entry per value, without connection-specific headers.
func appendHeaders(m headerMap, h http.Header) headerMap {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	for _, k := range keys {
		lk := strings.ToLower(k)
		if lk == "host" {
			continue // carried by :authority
		}
		for _, v := range h[k] {
			if isHopByHop(lk, v) {
				continue
			}
			m.add(lk, v)
		}
	}
	return m
}

// newRequestID returns a random UUID, as Envoy's x-request-id.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// direction says which header map a mutation applies to; the mutation rules
// depend on it.
type direction int

const (
	dirRequest   direction = iota // request headers, before the upstream
	dirResponse                   // upstream response headers
	dirImmediate                  // the headers of an immediate response
)

// mutationError is a header mutation Envoy refuses as a processing error,
// not by silently ignoring it.
type mutationError struct{ msg string }

func (e *mutationError) Error() string { return e.msg }

// limits are a header map's bounds; zero means unbounded (the header map
// of a local reply, created without the codec's limits).
type limits struct{ count, bytes int }

// applyMutation applies an ext_proc HeaderMutation to m as Envoy's
// MutationUtils::applyHeaderMutations (mutation_utils.cc) does with the
// default mutation rules (no mutation_rules configured). It returns how many
// changes the rules silently ignored, and a *mutationError for what Envoy
// refuses outright, after which nothing more is applied:
//
//   - more remove_headers or set_headers entries than the map's count limit
//     (responseHeaderSizeCheck);
//   - a name in remove_headers or set_headers, or a value, that
//     headerNameIsValid/headerValueIsValid refuse;
//   - a HeaderValue with both value and raw_value set;
//   - a map past its count or byte limit once the mutation is applied
//     (headerMutationResultCheck).
func applyMutation(m *headerMap, mu *extprocv3.HeaderMutation, dir direction, lim limits) (rejected int, err error) {
	if lim.count > 0 && (len(mu.GetRemoveHeaders()) > lim.count || len(mu.GetSetHeaders()) > lim.count) {
		return 1, &mutationError{fmt.Sprintf("%d removals or %d sets exceed the header count limit %d",
			len(mu.GetRemoveHeaders()), len(mu.GetSetHeaders()), lim.count)}
	}
	// remove_headers first. Envoy refuses to remove pseudo-headers and
	// host, and the default rules ignore changes to x-envoy-* headers.
	for _, name := range mu.GetRemoveHeaders() {
		if !validHeaderName(name) {
			return rejected + 1, &mutationError{fmt.Sprintf("invalid header name %q in remove_headers", name)}
		}
		key := strings.ToLower(name)
		if strings.HasPrefix(key, ":") || key == "host" || !allowedChange(key) {
			rejected++
			continue
		}
		m.remove(key)
	}
	// Then set_headers, in order.
	for _, o := range mu.GetSetHeaders() {
		hv := o.GetHeader()
		if hv == nil {
			continue // Envoy skips an option without a header
		}
		// Envoy reads values from raw_value only, and refuses a
		// HeaderValue with both fields set: the request fails.
		if hv.GetValue() != "" && len(hv.GetRawValue()) > 0 {
			return rejected + 1, &mutationError{fmt.Sprintf("header %q sets both value and raw_value", hv.GetKey())}
		}
		// value alone is not read: the header gets an empty value.
		value := string(hv.GetRawValue())
		if !validHeaderValue(value) || !validHeaderName(hv.GetKey()) {
			return rejected + 1, &mutationError{fmt.Sprintf("invalid character in set_headers %q", hv.GetKey())}
		}
		key := strings.ToLower(hv.GetKey())
		if !setAllowed(key, value, dir) {
			rejected++
			continue
		}
		// Envoy's ext_proc looks only at the deprecated append
		// BoolValue (PROTOBUF_GET_WRAPPED_OR_DEFAULT(sh, append, false)
		// in applyHeaderMutations): unset or false replaces every
		// value, true adds one. append_action and keep_empty_value are
		// never read.
		if o.GetAppend().GetValue() {
			m.add(key, value)
		} else {
			m.set(key, value)
		}
	}
	if lim.count > 0 && (len(*m) > lim.count || m.byteSize() > lim.bytes) {
		return rejected + 1, &mutationError{fmt.Sprintf("header count %d or size %d bytes exceeds the limit of %d headers or %d bytes",
			len(*m), m.byteSize(), lim.count, lim.bytes)}
	}
	return rejected, nil
}

// allowedChange reports whether the default mutation rules let a processor
// change key at all: x-envoy-* headers are Envoy's (allow_envoy false).
func allowedChange(key string) bool { return !strings.HasPrefix(key, "x-envoy-") }

// setAllowed applies the default mutation rules to a set: host, :authority,
// :method and :scheme are routing headers (allow_all_routing false) and are
// ignored; so are x-envoy-* headers and pseudo-headers other than :path on
// requests and a valid :status on responses.
func setAllowed(key, value string, dir direction) bool {
	switch {
	case key == "" || !allowedChange(key):
		return false
	case key == "host":
		return false
	case strings.HasPrefix(key, ":"):
		switch {
		case key == hdrPath && dir == dirRequest:
			return strings.HasPrefix(value, "/")
		case key == hdrStatus && dir == dirResponse:
			code, err := strconv.Atoi(value)
			// Envoy accepts a :status of 200 or more; Go cannot write
			// a status above 999.
			return err == nil && code >= 200 && code <= 999
		}
		return false // :authority, :method, :scheme and the rest
	}
	return validHeaderName(key)
}

// validHeaderName reports whether key is a header name Envoy accepts:
// Http::HeaderUtility::headerNameIsValid checks a pseudo-header (":path")
// with HTTP/2's rules, any other name as an HTTP/1 token, upper case
// allowed.
func validHeaderName(key string) bool {
	if rest, ok := strings.CutPrefix(key, ":"); ok {
		return rest != "" && rest == strings.ToLower(rest) && httpguts.ValidHeaderFieldName(rest)
	}
	return httpguts.ValidHeaderFieldName(key)
}

// validHeaderValue reports whether Envoy accepts v as a header value
// (Http::HeaderUtility::headerValueIsValid, the nghttp2/oghttp2 field value
// check): no control character but tab, no DEL.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// normalizePath applies the connection manager's normalize_path and
// merge_slashes to a :path before routing
// (ConnectionManagerUtility::maybeNormalizePath,
// source/common/http/conn_manager_utility.cc): the path part, not the query,
// has its "." and ".." segments resolved (RFC 3986 remove_dot_segments,
// PathUtil::canonicalPath; "%2e" counts as a dot) and, with merge, runs of
// slashes merged into one (PathUtil::mergeSlashes). Envoy's canonicalizer
// does more (it decodes some percent-encodings and rejects some paths with
// a 400); corsproc's tests do not rely on that.
func normalizePath(p string, normalize, merge bool) string {
	path, query, hasQuery := strings.Cut(p, "?")
	if normalize {
		path = removeDotSegments(path)
	}
	if merge {
		for strings.Contains(path, "//") {
			path = strings.ReplaceAll(path, "//", "/")
		}
	}
	if hasQuery {
		return path + "?" + query
	}
	return path
}

// removeDotSegments is RFC 3986's remove_dot_segments for an absolute path.
func removeDotSegments(path string) string {
	segs := strings.Split(path, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(s, "%2e", "."), "%2E", ".")) {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	if len(out) == 0 || out[0] != "" {
		out = append([]string{""}, out...)
	}
	if len(out) == 1 {
		return "/"
	}
	return strings.Join(out, "/")
}

// httpHeader returns the map's regular headers as an http.Header, one value
// per entry (an inline header's merged line is one value).
func (m headerMap) httpHeader() http.Header {
	h := make(http.Header, len(m))
	for _, e := range m {
		if !strings.HasPrefix(e.key, ":") {
			h.Add(e.key, e.value)
		}
	}
	return h
}
