package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/corsproc/corsproc/internal/extproc"
)

// HeaderMode is the filter's processing_mode for a header phase.
type HeaderMode int

const (
	// HeaderModeDefault is Envoy's default for header phases: SEND.
	HeaderModeDefault HeaderMode = iota
	// HeaderModeSend sends the headers to the processor.
	HeaderModeSend
	// HeaderModeSkip does not send them.
	HeaderModeSkip
)

// String returns the mode as the filter config spells it.
func (m HeaderMode) String() string {
	switch m {
	case HeaderModeDefault:
		return "DEFAULT"
	case HeaderModeSend:
		return "SEND"
	case HeaderModeSkip:
		return "SKIP"
	}
	return fmt.Sprintf("HeaderMode(%d)", int(m))
}

// send reports whether the phase is sent: DEFAULT means SEND for headers.
func (m HeaderMode) send() bool { return m != HeaderModeSkip }

// ProcessingMode is the filter's processing_mode. Bodies are always NONE and
// trailers SKIP: that is all corsproc uses.
type ProcessingMode struct {
	RequestHeaderMode  HeaderMode
	ResponseHeaderMode HeaderMode
}

// Metadata is one gRPC initial metadata entry.
type Metadata struct{ Key, Value string }

// HeaderValueOption is one of a route's response_headers_to_add. Append
// true adds a value; false replaces every value of the header (Envoy's
// OVERWRITE_IF_EXISTS_OR_ADD).
type HeaderValueOption struct {
	Key, Value string
	Append     bool
}

// Route is one route of the emulated virtual host.
type Route struct {
	// Name is the route name, sent as the attribute xds.route_name when
	// Config.RequestAttributes asks for it.
	Name string
	// PathPrefix is the route's prefix match against :path (query
	// included, as Envoy matches); "" matches every path. The first
	// matching route wins.
	PathPrefix string
	// GRPCInitialMetadata is ExtProcPerRoute.overrides.grpc_initial_metadata:
	// added to the ext_proc stream of the route's requests.
	GRPCInitialMetadata []Metadata
	// ResponseHeadersToAdd is the route's response_headers_to_add, applied by
	// Envoy to every response of the route (upstream responses and local
	// replies alike) after ext_proc.
	ResponseHeadersToAdd []HeaderValueOption
}

// AttributeRouteName is the only request attribute the emulator supports:
// the route name corsproc selects policies by, defined once as
// extproc.AttributeRoute (this name is kept for the tests and benchmarks
// that configure the emulator with it).
const AttributeRouteName = extproc.AttributeRoute

// attributesKey is the key of the attributes Struct: the filter's name.
const attributesKey = "envoy.filters.http.ext_proc"

// DefaultMessageTimeout is Envoy's default message_timeout.
const DefaultMessageTimeout = 200 * time.Millisecond

// Config is an emulated Envoy: one listener, one virtual host with Routes,
// one ext_proc filter, one upstream cluster.
type Config struct {
	// Upstream is the base URL of the single upstream cluster, e.g.
	// http://127.0.0.1:8000: scheme http or https, a host, no path.
	Upstream string
	// Routes is the route table. A request no route matches gets Envoy's
	// 404 local reply (response flag NR) and no ext_proc message.
	Routes []Route
	// ProcessingMode is the filter's processing_mode.
	ProcessingMode ProcessingMode
	// AllowModeOverride is the filter's allow_mode_override.
	AllowModeOverride bool
	// RequestAttributes is the filter's request_attributes; only
	// "xds.route_name" is supported, anything else is an error from New.
	RequestAttributes []string
	// MessageTimeout is the filter's message_timeout; 0 means Envoy's
	// default, 200ms.
	MessageTimeout time.Duration
	// FailureModeAllow is the filter's failure_mode_allow.
	FailureModeAllow bool
	// SkipWithoutOrigin emulates the ExtensionWithMatcher wrapping corsproc
	// ships: a request without an Origin header skips the filter entirely,
	// costing no ext_proc message.
	SkipWithoutOrigin bool
	// Transport, if set, carries the requests to the upstream. nil uses a
	// dedicated HTTP/1.1 transport that connects directly (no proxy from
	// the environment) and leaves Accept-Encoding alone.
	Transport http.RoundTripper
	// AccessLog, if set, is called once per request after its response is
	// written, like an Envoy access log.
	AccessLog func(LogEntry)
}

// LogEntry describes one request served by the Proxy.
type LogEntry struct {
	Method    string
	Path      string // :path as received, query included
	Authority string
	Route     string // the route's name; "" when no route matched
	Status    int    // status sent downstream
	// Details is what Envoy logs as %RESPONSE_CODE_DETAILS%: via_upstream,
	// route_not_found, an immediate response's details (whitespace
	// replaced by '_'), or the ext_proc_error_… details of a failure.
	Details string
	// Messages is the number of ext_proc messages sent for the request.
	Messages int
	// Upstream reports whether the request reached the upstream.
	Upstream bool
	Duration time.Duration
}

// Stats are the Proxy's counters since New, named after Envoy's ext_proc
// statistics where one exists.
type Stats struct {
	Requests      int // HTTP requests received by the listener
	NoRoute       int // requests answered 404 because no route matched
	FilterSkipped int // requests without Origin that SkipWithoutOrigin kept away from ext_proc
	Streams       int // ext_proc streams opened (streams_started), including attempts that failed
	MessagesSent  int // ext_proc messages sent (stream_msgs_sent)
	// ResponsesReceived counts processor responses accepted
	// (stream_msgs_received).
	ResponsesReceived  int
	ImmediateResponses int // immediate responses sent as local replies
	ModeOverrides      int // mode_override honoured
	// ClosedByProcessor counts streams the processor closed cleanly while
	// a message awaited its answer (streams_closed before completion).
	ClosedByProcessor int
	// ProcessorErrors counts streams that failed with a gRPC error or could
	// not reach the processor (streams_failed).
	ProcessorErrors   int
	SpuriousResponses int // responses of the wrong type (spurious_msgs_received)
	Timeouts          int // message_timeout expiries (message_timeouts)
	// FailOpen counts requests continued untouched because of
	// failure_mode_allow (failure_mode_allowed).
	FailOpen int
	// InvalidMutations counts header mutations Envoy refuses as a processing
	// error: a HeaderValue with both value and raw_value set.
	InvalidMutations int
	// RejectedMutations counts header changes the default mutation rules
	// silently ignore (rejected_header_mutations).
	RejectedMutations int
	UpstreamRequests  int // requests sent to the upstream
	UpstreamErrors    int // upstream requests that failed before a response (503)
}

// counters backs Stats.
type counters struct {
	requests, noRoute, filterSkipped, streams, messagesSent, responsesReceived,
	immediateResponses, modeOverrides, closedByProcessor, processorErrors,
	spuriousResponses, timeouts, failOpen, invalidMutations, rejectedMutations,
	upstreamRequests, upstreamErrors atomic.Int64
}

// Proxy is an emulated Envoy listener. It is safe for concurrent use.
type Proxy struct {
	cfg          Config
	client       extprocv3.ExternalProcessorClient
	upstreamBase string // scheme://host of the upstream
	transport    http.RoundTripper
	ownTransport *http.Transport // nil when Config.Transport was given
	timeout      time.Duration
	sendRoute    bool // request_attributes holds xds.route_name
	c            counters
}

// New returns a Proxy for cfg whose ext_proc filter reaches the processor
// over conn. It checks cfg and reports every problem at once.
func New(cfg Config, conn grpc.ClientConnInterface) (*Proxy, error) {
	var errs []error
	if conn == nil {
		errs = append(errs, errors.New("emulator: no gRPC connection to the processor"))
	}
	base, err := parseUpstream(cfg.Upstream)
	if err != nil {
		errs = append(errs, err)
	}
	for i, r := range cfg.Routes {
		errs = append(errs, checkRoute(i, r)...)
	}
	for name, m := range map[string]HeaderMode{
		"RequestHeaderMode":  cfg.ProcessingMode.RequestHeaderMode,
		"ResponseHeaderMode": cfg.ProcessingMode.ResponseHeaderMode,
	} {
		if m < HeaderModeDefault || m > HeaderModeSkip {
			errs = append(errs, fmt.Errorf("emulator: ProcessingMode.%s %v: want HeaderModeDefault, HeaderModeSend or HeaderModeSkip", name, m))
		}
	}
	sendRoute := false
	for i, a := range cfg.RequestAttributes {
		if a != extproc.AttributeRoute {
			errs = append(errs, fmt.Errorf("emulator: RequestAttributes[%d] %q: only %q is supported", i, a, extproc.AttributeRoute))
			continue
		}
		sendRoute = true
	}
	if cfg.MessageTimeout < 0 {
		errs = append(errs, fmt.Errorf("emulator: MessageTimeout %v: want a positive duration, or 0 for Envoy's default %v", cfg.MessageTimeout, DefaultMessageTimeout))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	p := &Proxy{
		cfg:          cfg,
		client:       extprocv3.NewExternalProcessorClient(conn),
		upstreamBase: base,
		timeout:      cfg.MessageTimeout,
		sendRoute:    sendRoute,
	}
	// The Proxy keeps its own copy of the route table: the caller may
	// reuse its slices.
	p.cfg.Routes = cloneRoutes(cfg.Routes)
	if p.timeout == 0 {
		p.timeout = DefaultMessageTimeout
	}
	p.transport = cfg.Transport
	if p.transport == nil {
		p.ownTransport = newTransport()
		p.transport = p.ownTransport
	}
	return p, nil
}

// parseUpstream checks the upstream URL and returns its scheme://host.
func parseUpstream(s string) (string, error) {
	if s == "" {
		return "", errors.New("emulator: Upstream is empty: want the upstream's base URL, e.g. http://127.0.0.1:8000")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("emulator: Upstream %q: %v", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("emulator: Upstream %q: want an http:// or https:// URL", s)
	case u.Host == "":
		return "", fmt.Errorf("emulator: Upstream %q: no host", s)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf("emulator: Upstream %q: want scheme://host[:port] only; an Envoy cluster has no path, query or userinfo", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

func checkRoute(i int, r Route) []error {
	var errs []error
	if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
		errs = append(errs, fmt.Errorf("emulator: Routes[%d].PathPrefix %q: want \"\" or a prefix starting with /", i, r.PathPrefix))
	}
	for j, m := range r.GRPCInitialMetadata {
		if m.Key == "" || strings.HasPrefix(m.Key, ":") || !validHeaderName(strings.ToLower(m.Key)) {
			errs = append(errs, fmt.Errorf("emulator: Routes[%d].GRPCInitialMetadata[%d] key %q: want a metadata key such as x-corsproc-policy", i, j, m.Key))
		}
	}
	for j, h := range r.ResponseHeadersToAdd {
		if h.Key == "" || strings.HasPrefix(h.Key, ":") || !validHeaderName(strings.ToLower(h.Key)) {
			errs = append(errs, fmt.Errorf("emulator: Routes[%d].ResponseHeadersToAdd[%d] key %q: want a header name", i, j, h.Key))
		}
		if !validHeaderValue(h.Value) {
			errs = append(errs, fmt.Errorf("emulator: Routes[%d].ResponseHeadersToAdd[%d] value %q: CR, LF and NUL are not allowed", i, j, h.Value))
		}
	}
	return errs
}

func cloneRoutes(rs []Route) []Route {
	out := make([]Route, len(rs))
	for i, r := range rs {
		out[i] = r
		out[i].GRPCInitialMetadata = append([]Metadata(nil), r.GRPCInitialMetadata...)
		out[i].ResponseHeadersToAdd = append([]HeaderValueOption(nil), r.ResponseHeadersToAdd...)
	}
	return out
}

// route returns the first route whose prefix matches path, or nil. Envoy
// matches a prefix route against :path including the query string, and
// selects the route before ext_proc runs: a :path mutation does not change
// it (that needs clear_route_cache, which is not emulated).
func (p *Proxy) route(path string) *Route {
	for i := range p.cfg.Routes {
		if strings.HasPrefix(path, p.cfg.Routes[i].PathPrefix) {
			return &p.cfg.Routes[i]
		}
	}
	return nil
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	c := &p.c
	return Stats{
		Requests:           int(c.requests.Load()),
		NoRoute:            int(c.noRoute.Load()),
		FilterSkipped:      int(c.filterSkipped.Load()),
		Streams:            int(c.streams.Load()),
		MessagesSent:       int(c.messagesSent.Load()),
		ResponsesReceived:  int(c.responsesReceived.Load()),
		ImmediateResponses: int(c.immediateResponses.Load()),
		ModeOverrides:      int(c.modeOverrides.Load()),
		ClosedByProcessor:  int(c.closedByProcessor.Load()),
		ProcessorErrors:    int(c.processorErrors.Load()),
		SpuriousResponses:  int(c.spuriousResponses.Load()),
		Timeouts:           int(c.timeouts.Load()),
		FailOpen:           int(c.failOpen.Load()),
		InvalidMutations:   int(c.invalidMutations.Load()),
		RejectedMutations:  int(c.rejectedMutations.Load()),
		UpstreamRequests:   int(c.upstreamRequests.Load()),
		UpstreamErrors:     int(c.upstreamErrors.Load()),
	}
}

// CloseIdleConnections closes the idle connections to the upstream of the
// Proxy's own transport (not of a Config.Transport).
func (p *Proxy) CloseIdleConnections() {
	if p.ownTransport != nil {
		p.ownTransport.CloseIdleConnections()
	}
}
