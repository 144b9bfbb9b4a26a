package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/corsproc/corsproc/internal/extproc"
)

// Modes of the Envoy config the client plays (docs/envoy.md): the
// response-phase mode of envoy/envoy.yaml, and the single-message mode of
// envoy/envoy-single-message.yaml, whose ext_proc filter declares
// x-corsproc-response-headers: dynamic-metadata in its gRPC initial
// metadata and whose header_mutation filter writes the response headers
// from the dynamic metadata the processor returns.
const (
	ModeResponsePhase = "response-phase"
	ModeSingleMessage = "single-message"
)

// ModeContext returns ctx with the gRPC initial metadata the Envoy config
// of mode sends on every stream; an unknown mode is an error.
func ModeContext(ctx context.Context, mode string) (context.Context, error) {
	switch mode {
	case "", ModeResponsePhase:
		return ctx, nil
	case ModeSingleMessage:
		return metadata.AppendToOutgoingContext(ctx, extproc.MetadataResponseHeaders, extproc.ResponseHeadersDynamicMetadata), nil
	}
	return nil, fmt.Errorf("unknown mode %q: want %s or %s", mode, ModeResponsePhase, ModeSingleMessage)
}

// Request is a scenario prepared for one worker: its messages are built
// once and sent again and again, as gRPC only reads them.
type Request struct {
	Scenario Scenario
	req      *extprocv3.ProcessingRequest
	resp     *extprocv3.ProcessingRequest
}

// Prepare builds s's messages.
func Prepare(s Scenario) *Request {
	return &Request{Scenario: s, req: s.RequestMessage(), resp: s.ResponseMessage()}
}

// Clone returns a copy with its own messages.
func (r *Request) Clone() *Request {
	c := *r
	c.req = proto.Clone(r.req).(*extprocv3.ProcessingRequest)
	c.resp = proto.Clone(r.resp).(*extprocv3.ProcessingRequest)
	return &c
}

// Outcome is what Envoy did with one HTTP request.
type Outcome struct {
	Messages  int  // ext_proc messages sent
	Immediate bool // answered by an immediate response
	Skipped   bool // response phase skipped by mode_override
	// ACAO is the Access-Control-Allow-Origin the processor set, in the
	// immediate response or the response headers mutation, or, in
	// single-message mode, in the dynamic metadata Envoy's header_mutation
	// filter writes it from.
	ACAO string
}

// metadataACAO returns the acao key of the corsproc dynamic metadata
// namespace of resp.
func metadataACAO(resp *extprocv3.ProcessingResponse) string {
	return resp.GetDynamicMetadata().GetFields()[extproc.DynamicMetadataNamespace].GetStructValue().GetFields()[extproc.KeyACAO].GetStringValue()
}

// acao returns the Access-Control-Allow-Origin set by hs.
func acao(hs []*corev3.HeaderValueOption) string {
	for _, h := range hs {
		if h.GetHeader().GetKey() == "access-control-allow-origin" {
			return string(h.GetHeader().GetRawValue())
		}
	}
	return ""
}

// errSpurious is a response of a type Envoy did not ask for.
var errSpurious = errors.New("loadgen: spurious ext_proc response")

// Do runs one HTTP request through the ext_proc filter as Envoy does: it
// opens a stream on the first message it needs to send, sends the request
// headers and reads the answer; unless the answer was an immediate response
// or a mode_override skipping the response phase, it sends the response
// headers and reads that answer; then it half-closes and resets the stream.
func Do(ctx context.Context, c extprocv3.ExternalProcessorClient, r *Request) (Outcome, error) {
	var o Outcome
	ctx, cancel := context.WithCancel(ctx)
	// The reset that follows Envoy's half-close.
	defer cancel()
	st, err := c.Process(ctx, grpc.WaitForReady(true))
	if err != nil {
		return o, err
	}
	if err := st.Send(r.req); err != nil {
		return o, err
	}
	o.Messages++
	resp, err := st.Recv()
	if err != nil {
		return o, err
	}
	switch resp.Response.(type) {
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		o.Immediate = true
		o.ACAO = acao(resp.GetImmediateResponse().GetHeaders().GetSetHeaders())
		if o.ACAO == "" {
			o.ACAO = metadataACAO(resp)
		}
		return o, st.CloseSend()
	case *extprocv3.ProcessingResponse_RequestHeaders:
	default:
		return o, errSpurious
	}
	// Both shipped filter configurations set allow_mode_override.
	if mo := resp.GetModeOverride(); mo != nil &&
		mo.GetResponseHeaderMode() == extprocfilterv3.ProcessingMode_SKIP {
		o.Skipped = true
		o.ACAO = metadataACAO(resp)
		return o, st.CloseSend()
	}
	// The upstream answers; its response headers go to the processor.
	if err := st.Send(r.resp); err != nil {
		return o, err
	}
	o.Messages++
	resp, err = st.Recv()
	if err != nil {
		return o, err
	}
	rh, ok := resp.Response.(*extprocv3.ProcessingResponse_ResponseHeaders)
	if !ok {
		return o, errSpurious
	}
	o.ACAO = acao(rh.ResponseHeaders.GetResponse().GetHeaderMutation().GetSetHeaders())
	return o, st.CloseSend()
}

// Load is how a Run drives the servers.
type Load struct {
	// Concurrency is the number of HTTP requests in flight.
	Concurrency int
	// Rate, if positive, paces the requests at this many per second in
	// all; otherwise each worker sends its next request as soon as the
	// previous one is done.
	Rate     float64
	Duration time.Duration
}

// Result sums up a Run.
type Result struct {
	Requests  int
	Errors    int
	FirstErr  error
	Messages  int
	Elapsed   time.Duration
	Latencies []time.Duration // sorted
}

// RPS is the requests per second.
func (r Result) RPS() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// Percentile returns the p-th percentile latency (0 < p <= 100).
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies))*p/100+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// Run sends req through the clients (one per connection, used round-robin
// by the workers) under load, and reports what happened. The streams carry
// ctx's outgoing metadata (ModeContext).
func Run(ctx context.Context, clients []extprocv3.ExternalProcessorClient, req *Request, load Load) Result {
	type part struct {
		n, errs, msgs int
		err           error
		lat           []time.Duration
	}
	parts := make([]part, load.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(load.Duration)
	var interval time.Duration
	if load.Rate > 0 {
		interval = time.Duration(float64(load.Concurrency) / load.Rate * float64(time.Second))
	}
	for w := range load.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &parts[w]
			c := clients[w%len(clients)]
			r := req.Clone()
			p.lat = make([]time.Duration, 0, 1024)
			// Workers start spread over one interval.
			next := start.Add(time.Duration(w) * interval / time.Duration(load.Concurrency))
			for {
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(interval)
				}
				t0 := time.Now()
				if !t0.Before(deadline) || ctx.Err() != nil {
					return
				}
				o, err := Do(ctx, c, r)
				p.lat = append(p.lat, time.Since(t0))
				p.n++
				p.msgs += o.Messages
				if err != nil {
					p.errs++
					if p.err == nil {
						p.err = err
					}
				}
			}
		}()
	}
	wg.Wait()
	res := Result{Elapsed: time.Since(start)}
	for _, p := range parts {
		res.Requests += p.n
		res.Errors += p.errs
		res.Messages += p.msgs
		if res.FirstErr == nil && p.err != nil && !errors.Is(p.err, io.EOF) {
			res.FirstErr = p.err
		}
		res.Latencies = append(res.Latencies, p.lat...)
	}
	slices.Sort(res.Latencies)
	return res
}

// String sums up r in one line.
func (r Result) String() string {
	return fmt.Sprintf("%d requests (%d errors) in %v: %.0f req/s, p50 %v, p99 %v, %.2f msgs/req",
		r.Requests, r.Errors, r.Elapsed.Round(time.Millisecond), r.RPS(), r.Percentile(50), r.Percentile(99),
		float64(r.Messages)/float64(max(r.Requests, 1)))
}
