package emulator

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/corsproc/corsproc/internal/extproc"
)

// phase is the header phase a message belongs to.
type phase int

const (
	phaseRequest phase = iota
	phaseResponse
)

func (ph phase) String() string {
	if ph == phaseRequest {
		return "request_headers"
	}
	return "response_headers"
}

// answerKind classifies what came back for one message.
type answerKind int

const (
	// answerHeaders: a headers response of the matching type.
	answerHeaders answerKind = iota
	// answerImmediate: an immediate response, which ends processing.
	answerImmediate
	// answerClosed: the processor closed the stream cleanly.
	answerClosed
	// answerFailed: a processor error, a timeout or a spurious response.
	answerFailed
)

// answer is the outcome of sending one message.
type answer struct {
	kind      answerKind
	common    *extprocv3.CommonResponse    // answerHeaders; may be nil
	immediate *extprocv3.ImmediateResponse // answerImmediate
	status    int                          // answerFailed: the local reply's status
	details   string                       // answerFailed: the local reply's details
}

// errorPrefix starts the details of the local replies Envoy's ext_proc
// filter sends when processing fails.
const errorPrefix = "ext_proc_error"

// headersMessage builds the ProcessingRequest of a header phase.
func (x *exchange) headersMessage(ph phase, m headerMap, endOfStream bool) *extprocv3.ProcessingRequest {
	h := &extprocv3.HttpHeaders{Headers: m.proto(), EndOfStream: endOfStream}
	// Filter::addDynamicMetadata sets metadata_context on every message,
	// empty when no forwarding namespace is configured.
	msg := &extprocv3.ProcessingRequest{MetadataContext: &corev3.Metadata{}}
	if ph == phaseRequest {
		msg.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: h}
		// Envoy sends request_attributes on the first message of the
		// request direction only (with bodies NONE and trailers SKIP,
		// request_headers is the only one), keyed by the filter name and
		// then by the expression text (Filter::addAttributes). The
		// Struct is there whenever attributes are configured; an
		// expression that has no value is left out of it
		// (ExpressionManager::evaluateAttributes skips an error value):
		// xds.route_name has none when no route matched (XDSLookup's
		// RouteName, source/extensions/filters/common/expr/context.cc),
		// and is "" for a route without a name.
		if x.p.sendRoute {
			attrs := &structpb.Struct{Fields: map[string]*structpb.Value{}}
			if x.route != nil {
				attrs.Fields[extproc.AttributeRoute] = structpb.NewStringValue(x.route.Name)
			}
			msg.Attributes = map[string]*structpb.Struct{attributesKey: attrs}
		}
	} else {
		msg.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: h}
	}
	if x.p.cfg.Release.SendsProtocolConfig && !x.protocolConfigSent {
		// Filter::encodeProtocolConfig: on the first message only; with
		// bodies NONE and no send_body_without_waiting_for_header_response
		// every field is at its zero value.
		msg.ProtocolConfig = &extprocv3.ProtocolConfiguration{}
		x.protocolConfigSent = true
	}
	return msg
}

// process sends one header message and interprets what comes back, with
// Envoy's rules: one response per message, of the matching type, within
// message_timeout.
func (x *exchange) process(ph phase, msg *extprocv3.ProcessingRequest) answer {
	resp, a := x.roundTrip(msg)
	if resp == nil {
		return a
	}
	// Filter::onReceiveMessage applies a mode_override before it looks at
	// the response case: whatever answers a headers message, a spurious
	// one included.
	x.modeOverride(resp)
	// Then, for every response case it knows, it writes the response's
	// dynamic_metadata before acting on the case: before the request
	// continues, before an immediate response is sent, and before a
	// response of the wrong type is found spurious.
	x.setDynamicMetadata(resp)

	switch r := resp.Response.(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		if ph == phaseRequest {
			x.p.c.responsesReceived.Add(1)
			return answer{kind: answerHeaders, common: r.RequestHeaders.GetResponse()}
		}
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		if ph == phaseResponse {
			x.p.c.responsesReceived.Add(1)
			return answer{kind: answerHeaders, common: r.ResponseHeaders.GetResponse()}
		}
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		// Envoy accepts an immediate response in answer to any message:
		// processing ends, the stream is closed, a local reply is sent.
		x.p.c.responsesReceived.Add(1)
		x.p.c.immediateResponses.Add(1)
		x.done = true
		x.closeStream()
		return answer{kind: answerImmediate, immediate: r.ImmediateResponse}
	}
	// Anything else (another message's type, a body or trailers response,
	// a response with no response case at all) is spurious: Envoy stops
	// talking to the processor for this request. Since 1.35 the request
	// fails unless failure_mode_allow; before, it went on untouched.
	x.p.c.spuriousResponses.Add(1)
	x.done = true
	x.closeStream()
	if !x.p.cfg.Release.SpuriousFailsClosed {
		return answer{kind: answerClosed}
	}
	return answer{kind: answerFailed, status: 500,
		details: fmt.Sprintf("%s_spurious_message{%s_answered_by_%s}", errorPrefix, ph, responseKind(resp))}
}

// modeOverride applies a headers response's mode_override as
// Filter::onReceiveMessage does: only with allow_mode_override, only on the
// answer to a headers message (inHeaderProcessState; bodies are NONE here,
// so neither send_body_without_waiting_for_header_response nor
// FULL_DUPLEX_STREAMED applies), and only if the resulting mode is one of
// allowed_override_modes when those are set. Since 1.34 a header mode left
// DEFAULT keeps the filter's configured mode (effectiveModeOverride) and the
// allowed_override_modes comparison ignores request_header_mode; before,
// the override replaced the whole mode, DEFAULT meaning SEND. Body and
// trailer modes are not emulated (always NONE and SKIP). On a
// response_headers answer there is no later header phase left to change.
func (x *exchange) modeOverride(resp *extprocv3.ProcessingResponse) {
	mo := resp.GetModeOverride()
	if mo == nil || !x.p.cfg.AllowModeOverride {
		return
	}
	rel := x.p.cfg.Release
	cfg := x.p.cfg.ProcessingMode
	eff := ProcessingMode{
		RequestHeaderMode:  headerMode(mo.GetRequestHeaderMode()),
		ResponseHeaderMode: headerMode(mo.GetResponseHeaderMode()),
	}
	if rel.ModeOverrideKeepsDefault {
		if eff.RequestHeaderMode == HeaderModeDefault {
			eff.RequestHeaderMode = cfg.RequestHeaderMode
		}
		if eff.ResponseHeaderMode == HeaderModeDefault {
			eff.ResponseHeaderMode = cfg.ResponseHeaderMode
		}
	}
	if allowed := x.p.cfg.AllowedOverrideModes; len(allowed) > 0 {
		ok := false
		for _, a := range allowed {
			// The comparison is of the enum values as configured:
			// DEFAULT and SEND differ.
			if a.ResponseHeaderMode == eff.ResponseHeaderMode &&
				(rel.ModeOverrideKeepsDefault || a.RequestHeaderMode == eff.RequestHeaderMode) {
				ok = true
				break
			}
		}
		if !ok {
			return
		}
	}
	x.p.c.modeOverrides.Add(1)
	x.sendResponse = eff.ResponseHeaderMode.send()
}

// headerMode converts the API's header send mode.
func headerMode(m extprocfilterv3.ProcessingMode_HeaderSendMode) HeaderMode {
	switch m {
	case extprocfilterv3.ProcessingMode_SEND:
		return HeaderModeSend
	case extprocfilterv3.ProcessingMode_SKIP:
		return HeaderModeSkip
	}
	return HeaderModeDefault
}

// roundTrip opens the stream if needed, sends msg and waits for one
// response, all within message_timeout. It returns the response, or nil and
// the answer that replaces it (closed or failed).
func (x *exchange) roundTrip(msg *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, answer) {
	// Envoy arms the message timer when it sends the message; opening the
	// stream is part of sending. On expiry it resets the stream, which here
	// is cancelling the stream's context: whatever the stream was doing
	// returns.
	timer := time.AfterFunc(x.p.timeout, x.cancel)
	resp, err := x.sendAndRecv(msg)
	// Stop reports false only if the timer fired (nothing else stops it),
	// and then the timeout wins even over a response that arrived at the
	// same moment: Envoy has already given up.
	if !timer.Stop() {
		x.done = true
		x.closeStream()
		x.p.c.timeouts.Add(1)
		return nil, answer{kind: answerFailed, status: 504, details: errorPrefix + "_per-message_timeout_exceeded"}
	}
	switch {
	case err == nil:
		return resp, answer{}
	case errors.Is(err, io.EOF):
		// The processor closed the stream cleanly (OK status) instead of
		// answering: Envoy continues without applying anything, and sends
		// nothing more on this request.
		x.p.c.closedByProcessor.Add(1)
		x.done = true
		x.closeStream()
		return nil, answer{kind: answerClosed}
	default:
		// A gRPC error status, or a processor Envoy cannot reach (the
		// stream fails with UNAVAILABLE): 500 unless failure_mode_allow.
		x.p.c.processorErrors.Add(1)
		x.done = true
		x.closeStream()
		st := status.Convert(err)
		return nil, answer{kind: answerFailed, status: 500,
			details: fmt.Sprintf("%s_gRPC_error_%d{%s}", errorPrefix, int(st.Code()), st.Message())}
	}
}

// sendAndRecv opens the stream on first use, sends msg and reads one
// response. io.EOF means the processor ended the stream with an OK status.
func (x *exchange) sendAndRecv(msg *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	if x.stream == nil {
		// One stream per HTTP request, opened on the first message Envoy
		// needs to send, carrying the route's grpc_initial_metadata.
		ctx := x.ctx
		if md := x.p.initialMetadata(x.route); len(md) > 0 {
			kv := make([]string, 0, 2*len(md))
			for _, m := range md {
				kv = append(kv, strings.ToLower(m.Key), m.Value)
			}
			ctx = metadata.AppendToOutgoingContext(ctx, kv...)
		}
		x.p.c.streams.Add(1)
		s, err := x.p.client.Process(ctx)
		if err != nil {
			return nil, err
		}
		x.stream = s
	}
	if err := x.stream.Send(msg); err != nil {
		if !errors.Is(err, io.EOF) {
			return nil, err
		}
		// io.EOF from Send: the stream is over; Recv tells how it ended.
	} else {
		x.p.c.messagesSent.Add(1)
		x.messages++
	}
	resp, err := x.stream.Recv()
	if err != nil && !errors.Is(err, io.EOF) && status.Code(err) == codes.OK {
		err = status.Error(codes.Unknown, err.Error())
	}
	return resp, err
}

// initialMetadata is the gRPC initial metadata of the stream of a request on
// rt (nil: no route). It starts from the filter's grpc_service
// initial_metadata, sent on every stream. When the request has a route, the
// per-route grpc_initial_metadata are merged first, the virtual host's
// entries each replaced by the route's entry of the same key and the
// route's other entries added (mergeGrpcInitialMetadata and
// mergeHeaderValues); then each merged entry replaces every grpc_service
// entry with the same key, or is added after them
// (Filter::mergePerRouteConfig and mergeHeaderValuesField, ext_proc.cc; the
// same in the 1.31-era and the newest revisions). Keys are compared
// exactly, as Envoy compares them.
func (p *Proxy) initialMetadata(rt *Route) []Metadata {
	md := append([]Metadata(nil), p.cfg.GRPCServiceInitialMetadata...)
	if rt == nil {
		// No route, no per-route config at all: Envoy's
		// traversePerFilterConfig finds nothing.
		return md
	}
	perRoute := append([]Metadata(nil), p.cfg.VirtualHost.GRPCInitialMetadata...)
	perRoute = mergeMetadata(perRoute, rt.GRPCInitialMetadata)
	return mergeMetadata(md, perRoute)
}

// mergeMetadata is mergeHeaderValues applied for each entry of more: it
// replaces every entry of md with the same key, or is appended.
func mergeMetadata(md, more []Metadata) []Metadata {
	for _, m := range more {
		replaced := false
		for i := range md {
			if md[i].Key == m.Key {
				md[i] = m
				replaced = true
			}
		}
		if !replaced {
			md = append(md, m)
		}
	}
	return md
}

// closeStream ends the stream as Envoy does once processing is complete: a
// half-close, then a reset (cancelling the stream's context). It is
// idempotent.
func (x *exchange) closeStream() {
	if x.streamClosed {
		return
	}
	x.streamClosed = true
	if x.stream != nil {
		x.stream.CloseSend()
	}
	x.cancel()
}

// responseKind names the response case of a ProcessingResponse, for
// details: its field name, "nothing" when none is set.
func responseKind(r *extprocv3.ProcessingResponse) string {
	m := r.ProtoReflect()
	if fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("response")); fd != nil {
		return string(fd.Name())
	}
	return "nothing"
}
