package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// exchange is one HTTP request going through the emulated Envoy: its route,
// its ext_proc stream and the state Envoy's filter keeps for it.
type exchange struct {
	p     *Proxy
	r     *http.Request
	route *Route // nil: no route matched

	// reqH is the request header map as the filters left it.
	reqH headerMap

	// ctx is the ext_proc stream's context; cancel resets the stream.
	ctx          context.Context
	cancel       context.CancelFunc
	stream       extprocv3.ExternalProcessor_ProcessClient
	streamClosed bool

	// done is Envoy's processing_complete_: after an immediate response, a
	// failure, a spurious message or a close by the processor, no more
	// ext_proc messages are sent for this request.
	done bool
	// sendRequest and sendResponse say whether the header phases are
	// sent: the filter's processing_mode, turned off for the route by
	// ExtProcPerRoute.disabled, the response one possibly changed by a
	// mode_override.
	sendRequest, sendResponse bool
	protocolConfigSent        bool
	messages                  int  // ext_proc messages sent
	upstream                  bool // the request was sent upstream
	// dynMeta is the request's dynamic metadata (StreamInfo's
	// filter_metadata), by namespace: one per HTTP request, shared by the
	// request and response paths, written by ext_proc from the
	// processor's dynamic_metadata, read by the header_mutation filter.
	dynMeta map[string]*structpb.Struct
}

// reply is what goes downstream.
type reply struct {
	status  int
	headers headerMap // pseudo-headers are not written
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

			DynamicMetadata: x.dynamicMetadata(),
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

// limits returns the bounds of the request and upstream response header
// maps.
func (p *Proxy) limits() limits {
	return limits{count: p.cfg.MaxHeadersCount, bytes: p.cfg.MaxHeadersKB * 1024}
}

// serve runs the request through routing, ext_proc and the upstream, and
// returns the reply to send downstream.
func (x *exchange) serve() *reply {
	p := x.p
	x.reqH = requestHeaders(x.r)
	if p.cfg.NormalizePath || p.cfg.MergeSlashes {
		// The connection manager normalizes :path before routing and
		// before the filters run.
		path, _ := x.reqH.get(hdrPath)
		x.reqH.set(hdrPath, normalizePath(path, p.cfg.NormalizePath, p.cfg.MergeSlashes))
	}
	path, _ := x.reqH.get(hdrPath)
	x.route = p.route(path)
	x.sendRequest = p.cfg.ProcessingMode.RequestHeaderMode.send()
	x.sendResponse = p.cfg.ProcessingMode.ResponseHeaderMode.send()
	if x.route != nil && x.route.ExtProcDisabled {
		// ExtProcPerRoute.disabled: both header phases SKIP.
		x.sendRequest, x.sendResponse = false, false
	}
	if p.cfg.SkipWithoutOrigin && len(x.r.Header.Values("Origin")) == 0 {
		// The shipped ExtensionWithMatcher skips the filter for requests
		// without an Origin header, in both directions: no stream, no
		// message.
		p.c.filterSkipped.Add(1)
		x.sendRequest, x.sendResponse = false, false
	}

	// The request headers phase. It runs whether or not a route matched:
	// ext_proc sits before the router, which answers a request without a
	// route.
	if x.sendRequest {
		msg := x.headersMessage(phaseRequest, x.reqH, x.r.ContentLength == 0)
		if rep := x.apply(x.process(phaseRequest, msg), &x.reqH, dirRequest, nil); rep != nil {
			return rep
		}
		if !x.done && !x.sendResponse && p.cfg.Release.ClosesStreamWhenDone {
			// Nothing more to send on this stream: since 1.37 Envoy
			// closes it now rather than when the request ends.
			x.done = true
			x.closeStream()
		}
	}

	if x.route == nil {
		// The router's 404 (response flag NR).
		p.c.noRoute.Add(1)
		return x.generatedReply(http.StatusNotFound, "route_not_found", nil, nil)
	}
	if f := p.cfg.LaterFilter; f != nil {
		method, _ := x.reqH.get(hdrMethod)
		path, _ := x.reqH.get(hdrPath)
		if lr := f(method, path, x.reqH.httpHeader()); lr != nil {
			return x.generatedReply(lr.Status, lr.Details, []byte(lr.Body), lr.Headers)
		}
	}

	// The upstream.
	resp, err := x.forward(x.reqH)
	switch {
	case errors.Is(err, errUpstreamTimeout):
		// Router::Filter::onResponseTimeout: 504, "upstream request
		// timeout".
		p.c.upstreamTimeouts.Add(1)
		return x.generatedReply(http.StatusGatewayTimeout, "upstream_response_timeout",
			[]byte("upstream request timeout"), nil)
	case err != nil:
		// The router's 503 when the upstream cannot be reached
		// (Router::Filter::onUpstreamReset).
		p.c.upstreamErrors.Add(1)
		return x.generatedReply(http.StatusServiceUnavailable, "upstream_reset_before_response_started{connection_failure}",
			[]byte("upstream connect error or disconnect/reset before headers. reset reason: connection failure"), nil)
	}

	respH := responseHeaders(resp)
	lim := p.limits()
	if len(respH)-1 > lim.count || respH.byteSize() > lim.bytes {
		// Envoy's HTTP/1 codec refuses a response past the cluster's
		// limits; the router answers 502.
		resp.Body.Close()
		p.c.upstreamErrors.Add(1)
		return x.generatedReply(http.StatusBadGateway, "upstream_reset_before_response_started{protocol_error}",
			[]byte("upstream connect error or disconnect/reset before headers. reset reason: protocol error"), nil)
	}
	// The route's response headers, before the encoder filters; then the
	// encodeHeaders of the filters after ext_proc, which run before
	// ext_proc's in reverse configuration order: the later filter's, then
	// header_mutation's (placed directly after ext_proc).
	x.finalizeRoute(&respH)
	applyOptions(&respH, p.cfg.LaterEncoderHeaders)
	x.headerMutation(&respH)

	// The response headers phase.
	if !x.done && x.sendResponse {
		msg := x.headersMessage(phaseResponse, respH, responseEndOfStream(x.r, resp))
		if rep := x.apply(x.process(phaseResponse, msg), &respH, dirResponse, resp); rep != nil {
			return rep
		}
	}
	return upstreamReply(resp, respH)
}

// generatedReply is a local reply Envoy generates after ext_proc's request
// phase: the router's 404, 502, 503 and 504, or a later filter's reply. Its
// header map gets the route's response headers, then the reply's own
// (extra: the filter manager's wrapper calls finalizeResponseHeaders before
// the sender's modify_headers, DownstreamFilterManager::
// sendLocalReplyViaFilterChain), then local_reply_config, and goes through
// the encoder filters, ext_proc among them: its response phase sees the
// reply when the Release sends local replies to the processor and
// processing is not complete (Filter::encodeHeaders).
func (x *exchange) generatedReply(status int, details string, body []byte, extra []HeaderValueOption) *reply {
	p := x.p
	p.c.localReplies.Add(1)
	m := localReplyHeaders(status, body)
	x.finalizeRoute(&m)
	applyOptions(&m, extra)
	x.mapLocalReply(&m, status)
	applyOptions(&m, p.cfg.LaterEncoderHeaders)
	x.headerMutation(&m)
	if p.cfg.Release.LocalRepliesToProcessor && !x.done && x.sendResponse {
		p.c.localRepliesProcessed.Add(1)
		msg := x.headersMessage(phaseResponse, m, len(body) == 0)
		if rep := x.apply(x.process(phaseResponse, msg), &m, dirResponse, nil); rep != nil {
			return rep
		}
	}
	return &reply{status: statusOf(m, status), headers: m, body: body, details: cleanDetails(details)}
}

// extprocReply is a local reply ext_proc itself sends: an immediate
// response, or the error reply of a failed exchange. It never comes back
// through ext_proc (processing is complete), but it does get the route's
// response headers, then mut (an immediate response's header mutation),
// then local_reply_config, in that order (the modify_headers wrapper of
// DownstreamFilterManager::sendLocalReplyViaFilterChain and
// sendDirectLocalReply, then Utility::prepareLocalReply).
//
// Which encoder filters it then goes through depends on the phase
// (DownstreamFilterManager::sendLocalReply,
// source/common/http/filter_manager.cc). Sent in the request phase, no
// response headers exist yet: the reply goes through the whole encoder
// chain (sendLocalReplyViaFilterChain; encodeHeaders(nullptr, ...) starts
// at the first encoder filter), so the filters after ext_proc (the later
// filter, header_mutation) run on it. Sent in the response phase
// (inResponse), response headers are already in the chain: the reply
// bypasses every encoder filter and goes straight to the codec
// (sendDirectLocalReply).
func (x *exchange) extprocReply(status int, details string, body []byte, mut *extprocv3.HeaderMutation, inResponse bool) *reply {
	m := localReplyHeaders(status, body)
	x.finalizeRoute(&m)
	if mut != nil {
		// Filter::sendImmediateResponse applies the mutation in the
		// local reply's header callback, to a header map without the
		// codec's limits; a mutation it refuses is only logged, and the
		// reply goes out with the changes made before it.
		rejected, err := applyMutation(&m, mut, dirImmediate, limits{})
		x.p.c.rejectedMutations.Add(int64(rejected))
		if err != nil {
			x.p.c.invalidMutations.Add(1)
		}
	}
	x.mapLocalReply(&m, status)
	if !inResponse {
		applyOptions(&m, x.p.cfg.LaterEncoderHeaders)
		x.headerMutation(&m)
	}
	return &reply{status: status, headers: m, body: body, details: cleanDetails(details)}
}

// localReplyHeaders is the header map of a local reply: :status, and for a
// body its length and type text/plain (Utility::prepareLocalReply).
func localReplyHeaders(status int, body []byte) headerMap {
	m := headerMap{{hdrStatus, strconv.Itoa(status)}}
	if len(body) > 0 {
		m.add("content-length", strconv.Itoa(len(body)))
		m.add("content-type", "text/plain")
	}
	return m
}

// finalizeRoute applies the response_headers_to_remove and
// response_headers_to_add of the request's route, then of its virtual host
// (RouteEntryImplBase::finalizeResponseHeaders, most specific first by
// default; each level removes, then adds: HeaderParser::evaluateHeaders). A
// request without a route gets neither.
func (x *exchange) finalizeRoute(m *headerMap) {
	if x.route == nil {
		return
	}
	for _, lvl := range []struct {
		add    []HeaderValueOption
		remove []string
	}{
		{x.route.ResponseHeadersToAdd, x.route.ResponseHeadersToRemove},
		{x.p.cfg.VirtualHost.ResponseHeadersToAdd, x.p.cfg.VirtualHost.ResponseHeadersToRemove},
	} {
		for _, k := range lvl.remove {
			m.remove(strings.ToLower(k))
		}
		applyOptions(m, lvl.add)
	}
}

// mapLocalReply applies the first local_reply_config mapper whose filter
// matches.
func (x *exchange) mapLocalReply(m *headerMap, status int) {
	if len(x.p.cfg.LocalReplyMappers) == 0 {
		return
	}
	req := x.reqH.httpHeader()
	for _, mp := range x.p.cfg.LocalReplyMappers {
		if mp.Filter(status, req) {
			applyOptions(m, mp.HeadersToAdd)
			return
		}
	}
}

// applyOptions adds or replaces headers as HeaderValueOptions say.
func applyOptions(m *headerMap, opts []HeaderValueOption) {
	for _, h := range opts {
		key := strings.ToLower(h.Key)
		if h.Append {
			m.add(key, h.Value)
		} else {
			m.set(key, h.Value)
		}
	}
}

// statusOf returns the :status of m, or def.
func statusOf(m headerMap, def int) int {
	if s, ok := m.get(hdrStatus); ok {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
	}
	return def
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
		if a.common.GetHeaderMutation() == nil {
			return nil
		}
		rejected, err := applyMutation(m, a.common.GetHeaderMutation(), dir, p.limits())
		p.c.rejectedMutations.Add(int64(rejected))
		if err != nil {
			// A mutation Envoy refuses is a processing error, not an
			// unavailable processor: Filter::onReceiveMessage answers
			// 500 (status_on_error) without consulting
			// failure_mode_allow.
			p.c.invalidMutations.Add(1)
			x.done = true
			x.closeStream()
			discard(resp)
			return x.extprocReply(http.StatusInternalServerError, errorPrefix+"_invalid_header_mutation{"+err.Error()+"}", nil, nil, dir != dirRequest)
		}
		return nil
	case answerClosed:
		// Continue without applying anything.
		return nil
	case answerImmediate:
		discard(resp)
		return x.immediateReply(a.immediate, dir != dirRequest)
	default: // answerFailed
		if p.cfg.FailureModeAllow {
			// failure_mode_allow: continue as if the filter were not
			// there, for the rest of the request.
			p.c.failOpen.Add(1)
			return nil
		}
		discard(resp)
		return x.extprocReply(a.status, a.details, nil, nil, dir != dirRequest)
	}
}

// immediateReply renders an ImmediateResponse as the local reply Envoy
// sends: its status (one below 200, or none, becomes 200), a text/plain
// body when it has one, its header mutation applied to those default
// headers, and its details.
func (x *exchange) immediateReply(ir *extprocv3.ImmediateResponse, inResponse bool) *reply {
	code := int(ir.GetStatus().GetCode())
	switch {
	case code < 200:
		code = http.StatusOK
	case code > 999:
		// Envoy would write it; HTTP/1.1 has three-digit statuses and Go
		// cannot. Not something a processor does.
		code = http.StatusInternalServerError
	}
	return x.extprocReply(code, ir.GetDetails(), ir.GetBody(), ir.GetHeaders(), inResponse)
}

func upstreamReply(resp *http.Response, m headerMap) *reply {
	// A response_headers mutation may have changed :status.
	return &reply{status: statusOf(m, resp.StatusCode), headers: m, resp: resp, details: "via_upstream"}
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

// errUpstreamTimeout is the route's timeout expiring before the upstream's
// response headers.
var errUpstreamTimeout = errors.New("upstream request timeout")

// forward sends the request to the upstream: the method, :path and
// :authority as ext_proc left them, the other headers, and the body. The
// route's timeout runs from the request until the whole response: Envoy
// answers 504 if it expires before the response headers, and resets the
// stream if it expires after.
func (x *exchange) forward(m headerMap) (*http.Response, error) {
	method, _ := m.get(hdrMethod)
	path, _ := m.get(hdrPath)
	authority, _ := m.get(hdrAuthority)
	ctx := x.r.Context()
	timeout := x.route.Timeout
	if timeout == 0 {
		timeout = DefaultRouteTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errUpstreamTimeout)
	// The timer is released when the request ends: the response body is
	// read under it.
	context.AfterFunc(x.r.Context(), cancel)
	req, err := http.NewRequestWithContext(ctx, method, x.p.upstreamBase+path, nil)
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
	resp, err := x.p.transport.RoundTrip(req)
	if err != nil && errors.Is(context.Cause(ctx), errUpstreamTimeout) {
		return nil, errUpstreamTimeout
	}
	return resp, err
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
