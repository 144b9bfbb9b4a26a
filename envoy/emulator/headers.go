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

// add is Envoy's HeaderMap::addCopy: one more entry at the end.
func (m *headerMap) add(key, value string) { *m = append(*m, header{key, value}) }

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
			m = append(m, header{lk, v})
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

// applyMutation applies an ext_proc HeaderMutation to m as Envoy's
// MutationUtils::applyHeaderMutations does with the default mutation rules
// (no mutation_rules configured). It returns how many changes the rules
// silently ignored, and a *mutationError for a HeaderValue with both value
// and raw_value set, after which nothing more is applied.
func applyMutation(m *headerMap, mu *extprocv3.HeaderMutation, dir direction) (rejected int, err error) {
	// remove_headers first. Envoy refuses to remove pseudo-headers and
	// host, and the default rules ignore changes to x-envoy-* headers.
	for _, name := range mu.GetRemoveHeaders() {
		key := strings.ToLower(name)
		if strings.HasPrefix(key, ":") || key == "host" || !allowedChange(key) || !validHeaderName(key) {
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
			return rejected, &mutationError{fmt.Sprintf("header %q sets both value and raw_value", hv.GetKey())}
		}
		key := strings.ToLower(hv.GetKey())
		// value alone is not read: the header gets an empty value.
		value := string(hv.GetRawValue())
		if !setAllowed(key, value, dir) {
			rejected++
			continue
		}
		// Envoy's ext_proc looks only at the deprecated append
		// BoolValue: unset or false replaces every value, true adds
		// one. append_action is ignored (envoyproxy/envoy#36982), and
		// so is keep_empty_value.
		if o.GetAppend().GetValue() {
			m.add(key, value)
		} else {
			m.set(key, value)
		}
	}
	return rejected, nil
}

// allowedChange reports whether the default mutation rules let a processor
// change key at all: x-envoy-* headers are Envoy's (allow_envoy false).
func allowedChange(key string) bool { return !strings.HasPrefix(key, "x-envoy-") }

// setAllowed applies the default mutation rules to a set: host, :authority,
// :method and :scheme are routing headers (allow_all_routing false) and are
// ignored; so are x-envoy-* headers, invalid names and values, and
// pseudo-headers other than :path on requests and a valid :status on
// responses.
func setAllowed(key, value string, dir direction) bool {
	switch {
	case key == "" || !allowedChange(key) || !validHeaderValue(value):
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

// validHeaderName reports whether key is a header name Envoy accepts.
func validHeaderName(key string) bool { return httpguts.ValidHeaderFieldName(key) }

// validHeaderValue reports whether v can be a header value: no CR, LF or NUL.
func validHeaderValue(v string) bool { return !strings.ContainsAny(v, "\r\n\x00") }
