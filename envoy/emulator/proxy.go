package emulator

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// exchange is one HTTP request going through the emulated Envoy: its route,
// its ext_proc stream and the state Envoy's filter keeps for it.
type exchange struct {
	p     *Proxy
	r     *http.Request
	route *Route

	// ctx is the ext_proc stream's context; cancel resets the stream.
	ctx          context.Context
	cancel       context.CancelFunc
	stream       extprocv3.ExternalProcessor_ProcessClient
	streamClosed bool

	// done is Envoy's processing_complete_: after an immediate response, a
	// failure, a spurious message or a close by the processor, no more
	// ext_proc messages are sent for this request.
	done bool
	// sendResponse says whether the response headers are sent: the
	// filter's response_header_mode, possibly changed by a mode_override.
	sendResponse bool
	messages     int  // ext_proc messages sent
	upstream     bool // the request was sent upstream
}

// reply is what goes downstream.
type reply struct {
	status  int
	headers headerMap // without pseudo-headers
	body    []byte    // local replies
	resp    *http.Response
	details string
}

// ServeHTTP is the emulated Envoy listener: route the request, run the
// ext_proc filter on its headers, proxy it to the upstream over HTTP/1.1, run
// the filter on the response headers, and send the result downstream.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	p.c.requests.Add(1)
	x := &exchange{p: p, r: r}
	// The stream lives as long as the downstream request: a client that
	// goes away resets it, as Envoy does.
	x.ctx, x.cancel = context.WithCancel(r.Context())
	defer x.closeStream()

	rep := x.serve()
	// Processing is complete before the response goes downstream: Envoy
	// half-closes the stream and resets it.
	x.closeStream()
	if x.route != nil {
		rep.addRouteHeaders(x.route)
	}
	err := rep.write(w)

	if p.cfg.AccessLog != nil {
		e := LogEntry{
			Method:    r.Method,
			Path:      r.URL.RequestURI(),
			Authority: r.Host,
			Status:    rep.status,
			Details:   rep.details,
			Messages:  x.messages,
			Upstream:  x.upstream,
			Duration:  time.Since(start),
		}
		if r.RequestURI != "" {
			e.Path = r.RequestURI
		}
		if x.route != nil {
			e.Route = x.route.Name
		}
		p.cfg.AccessLog(e)
	}
	if err != nil {
		// The upstream or the client went away mid-body: Envoy resets the
		// downstream stream. Make the server drop the connection rather
		// than end the response as if it were complete.
		panic(http.ErrAbortHandler)
	}
}

// serve runs the request through routing, ext_proc and the upstream, and
// returns the reply to send downstream.
func (x *exchange) serve() *reply {
	p := x.p
	reqH := requestHeaders(x.r)
	path, _ := reqH.get(hdrPath)
	x.route = p.route(path)
	if x.route == nil {
		// Envoy's router answers a request no route matches with a 404
		// local reply (response flag NR). Since Envoy 1.34 the local
		// replies Envoy generates are not sent to ext_proc.
		p.c.noRoute.Add(1)
		return localReply(http.StatusNotFound, "route_not_found", nil)
	}
	x.sendResponse = p.cfg.ProcessingMode.ResponseHeaderMode.send()
	if p.cfg.SkipWithoutOrigin && len(x.r.Header.Values("Origin")) == 0 {
		// The shipped ExtensionWithMatcher skips the filter for requests
		// without an Origin header: no stream, no message.
		p.c.filterSkipped.Add(1)
		x.done = true
	}

	// The request headers phase.
	if !x.done && p.cfg.ProcessingMode.RequestHeaderMode.send() {
		msg := x.headersMessage(phaseRequest, reqH, x.r.ContentLength == 0)
		if rep := x.apply(x.process(phaseRequest, msg), &reqH, dirRequest, nil); rep != nil {
			return rep
		}
	}

	// The upstream.
	resp, err := x.forward(reqH)
	if err != nil {
		// Envoy's router answers 503 itself; as a local reply Envoy
		// generates, it is not sent to ext_proc (Envoy 1.34+).
		p.c.upstreamErrors.Add(1)
		x.done = true
		return localReply(http.StatusServiceUnavailable, "upstream_reset_before_response_started{connection_failure}",
			[]byte("upstream connect error or disconnect/reset before headers. reset reason: connection failure"))
	}

	// The response headers phase.
	respH := responseHeaders(resp)
	if !x.done && x.sendResponse {
		msg := x.headersMessage(phaseResponse, respH, responseEndOfStream(x.r, resp))
		if rep := x.apply(x.process(phaseResponse, msg), &respH, dirResponse, resp); rep != nil {
			return rep
		}
	}
	return upstreamReply(resp, respH)
}

// apply acts on the answer to a header message: it mutates m and returns
// nil to continue, or returns the local reply that ends the request. resp is
// the upstream response in the response phase, discarded if a local reply
// replaces it.
func (x *exchange) apply(a answer, m *headerMap, dir direction, resp *http.Response) *reply {
	p := x.p
	switch a.kind {
	case answerHeaders:
		// CONTINUE applies the header mutation and continues.
		// CONTINUE_AND_REPLACE is applied the same way: its body part is
		// not emulated.
		rejected, err := applyMutation(m, a.common.GetHeaderMutation(), dir)
		p.c.rejectedMutations.Add(int64(rejected))
		if err != nil {
			// A mutation Envoy refuses is a processing error, not an
			// unavailable processor: Envoy's filter answers 500 without
			// consulting failure_mode_allow.
			p.c.invalidMutations.Add(1)
			x.done = true
			x.closeStream()
			discard(resp)
			return localReply(http.StatusInternalServerError, errorPrefix+"_invalid_header_mutation{"+err.Error()+"}", nil)
		}
		return nil
	case answerClosed:
		// Continue without applying anything.
		return nil
	case answerImmediate:
		discard(resp)
		return x.immediateReply(a.immediate)
	default: // answerFailed
		if p.cfg.FailureModeAllow {
			// failure_mode_allow: continue as if the filter were not
			// there, for the rest of the request.
			p.c.failOpen.Add(1)
			return nil
		}
		discard(resp)
		return localReply(a.status, a.details, nil)
	}
}

// immediateReply renders an ImmediateResponse as the local reply Envoy
// sends: its status (one below 200, or none, becomes 200), a text/plain
// body when it has one, its header mutation applied to those default
// headers, and its details.
func (x *exchange) immediateReply(ir *extprocv3.ImmediateResponse) *reply {
	code := int(ir.GetStatus().GetCode())
	switch {
	case code < 200:
		code = http.StatusOK
	case code > 999:
		// Envoy would write it; HTTP/1.1 has three-digit statuses and Go
		// cannot. Not something a processor does.
		code = http.StatusInternalServerError
	}
	rep := localReply(code, ir.GetDetails(), ir.GetBody())
	// For an immediate response Envoy applies the mutation in the local
	// reply's header callback, where a refused mutation is only logged:
	// the reply goes out with the changes made before it.
	rejected, err := applyMutation(&rep.headers, ir.GetHeaders(), dirImmediate)
	x.p.c.rejectedMutations.Add(int64(rejected))
	if err != nil {
		x.p.c.invalidMutations.Add(1)
	}
	return rep
}

// localReply is a reply Envoy generates itself: the status, a body sent as
// text/plain, and details for the access log (whitespace replaced by '_', as
// Envoy does).
func localReply(status int, details string, body []byte) *reply {
	rep := &reply{status: status, body: body, details: cleanDetails(details)}
	if len(body) > 0 {
		rep.headers.add("content-type", "text/plain")
	}
	return rep
}

func upstreamReply(resp *http.Response, m headerMap) *reply {
	status := resp.StatusCode
	// A response_headers mutation may have changed :status.
	if s, ok := m.get(hdrStatus); ok {
		if n, err := strconv.Atoi(s); err == nil {
			status = n
		}
	}
	return &reply{status: status, headers: m, resp: resp, details: "via_upstream"}
}

// cleanDetails replaces whitespace in response code details, as Envoy does.
func cleanDetails(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return '_'
		}
		return r
	}, s)
}

// addRouteHeaders applies the route's response_headers_to_add. Envoy does
// this after the encoder filters ran, ext_proc included, on every response
// of the route, local replies included.
func (rep *reply) addRouteHeaders(rt *Route) {
	for _, h := range rt.ResponseHeadersToAdd {
		key := strings.ToLower(h.Key)
		if h.Append {
			rep.headers.add(key, h.Value)
		} else {
			rep.headers.set(key, h.Value)
		}
	}
}

// write sends the reply downstream. Envoy's HTTP/1.1 codec writes one line
// per header entry. It returns an error when the body could not be copied
// whole.
func (rep *reply) write(w http.ResponseWriter) error {
	h := w.Header()
	for _, e := range rep.headers {
		if strings.HasPrefix(e.key, ":") {
			continue
		}
		h.Add(e.key, e.value)
	}
	// Envoy's default server_header_transformation is OVERWRITE.
	h.Set("Server", "envoy")
	// Go would sniff a Content-Type the response does not have; Envoy
	// adds none.
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil
	}
	if rep.resp == nil {
		if !bodyAllowed(rep.status) {
			// A 204 or 304 local reply has no body, nor a length.
			w.WriteHeader(rep.status)
			return nil
		}
		h.Set("Content-Length", strconv.Itoa(len(rep.body)))
		w.WriteHeader(rep.status)
		w.Write(rep.body)
		return nil
	}

	defer rep.resp.Body.Close()
	w.WriteHeader(rep.status)
	if !bodyAllowed(rep.status) {
		// A :status mutation to 204 or 304: no body goes downstream.
		return nil
	}
	var dst io.Writer = w
	if rep.resp.ContentLength < 0 {
		// A streamed response (unknown length) is passed on as it comes.
		dst = flushWriter{w, http.NewResponseController(w)}
	}
	if _, err := io.Copy(dst, rep.resp.Body); err != nil {
		return err
	}
	// Trailers pass through untouched (trailer mode SKIP).
	for k, vs := range rep.resp.Trailer {
		for _, v := range vs {
			h.Add(http.TrailerPrefix+k, v)
		}
	}
	return nil
}

type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		f.rc.Flush()
	}
	return n, err
}

// forward sends the request to the upstream: the method, :path and
// :authority as ext_proc left them, the other headers, and the body.
func (x *exchange) forward(m headerMap) (*http.Response, error) {
	method, _ := m.get(hdrMethod)
	path, _ := m.get(hdrPath)
	authority, _ := m.get(hdrAuthority)
	req, err := http.NewRequestWithContext(x.r.Context(), method, x.p.upstreamBase+path, nil)
	if err != nil {
		return nil, err
	}
	// Envoy forwards :authority as the upstream Host (no host_rewrite).
	req.Host = authority
	if x.r.ContentLength != 0 && x.r.Body != nil {
		req.Body = x.r.Body
		req.ContentLength = x.r.ContentLength // -1: chunked
	}
	for _, e := range m {
		switch {
		case strings.HasPrefix(e.key, ":"), e.key == "content-length", e.key == "host":
			// Pseudo-headers become the request line and Host;
			// Content-Length comes from the body's framing.
			continue
		}
		req.Header.Add(e.key, e.value)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		// Stop Go's transport from adding its own User-Agent.
		req.Header["User-Agent"] = []string{""}
	}
	x.p.c.upstreamRequests.Add(1)
	x.upstream = true
	return x.p.transport.RoundTrip(req)
}

// responseEndOfStream reports whether an upstream response has no body.
func responseEndOfStream(r *http.Request, resp *http.Response) bool {
	return r.Method == http.MethodHead || resp.ContentLength == 0 ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
}

// bodyAllowed reports whether a response with status may have a body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// discard closes an upstream response a local reply replaces.
func discard(resp *http.Response) {
	if resp != nil {
		resp.Body.Close()
	}
}

// newTransport returns the upstream transport: HTTP/1.1 only, direct
// connections, Accept-Encoding passed through untouched.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DisableCompression = true
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	t.MaxIdleConnsPerHost = 256
	return t
}
