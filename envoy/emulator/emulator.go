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
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/corsproc/corsproc/internal/extproc"
)

// HeaderMode is the filter's processing_mode for a header phase.
type HeaderMode int

const (
	// HeaderModeDefault is Envoy's default for header phases: SEND in the
	// filter's configuration; in a mode_override, "no change" since 1.34
	// (Release.ModeOverrideKeepsDefault).
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

// HeaderValueOption is one header of a response_headers_to_add, of a
// local_reply_config mapper's headers_to_add, or of a LocalReply. Append
// true adds a value (Envoy's APPEND_IF_EXISTS_OR_ADD; a header Envoy keeps
// inline, such as Vary, gets it joined to its one line with ","); false
// replaces every value of the header (OVERWRITE_IF_EXISTS_OR_ADD).
type HeaderValueOption struct {
	Key, Value string
	Append     bool
}

// VirtualHost holds the settings of the emulated virtual host that apply to
// every route.
type VirtualHost struct {
	// GRPCInitialMetadata is the virtual host's ExtProcPerRoute
	// overrides.grpc_initial_metadata. A route's entry with the same key
	// replaces it (mergeGrpcInitialMetadata, ext_proc.cc).
	GRPCInitialMetadata []Metadata
	// ResponseHeadersToAdd and ResponseHeadersToRemove are the virtual
	// host's response_headers_to_add/_remove, applied after the route's
	// (most_specific_header_mutations_wins false, Envoy's default).
	ResponseHeadersToAdd    []HeaderValueOption
	ResponseHeadersToRemove []string
	// HeaderMutation is the virtual host's HeaderMutationPerRoute for the
	// header_mutation filter (Config.HeaderMutation): applied after the
	// filter-level list and after the route's (see Route.HeaderMutation).
	// Ignored when Config.HeaderMutation is nil: a per-route config of a
	// filter that is not in the chain does nothing.
	HeaderMutation *HeaderMutation
}

// Route is one route of the emulated virtual host.
type Route struct {
	// Name is the route name, sent as the attribute xds.route_name when
	// Config.RequestAttributes asks for it.
	Name string
	// Path is an exact match against the path (query excluded); if set,
	// PathPrefix is not used.
	Path string
	// PathPrefix is the route's prefix match against :path (query
	// included, as Envoy matches); "" matches every path. The first
	// matching route wins.
	PathPrefix string
	// GRPCInitialMetadata is ExtProcPerRoute.overrides.grpc_initial_metadata:
	// added to the ext_proc stream of the route's requests, merged with the
	// virtual host's.
	GRPCInitialMetadata []Metadata
	// ExtProcDisabled is ExtProcPerRoute.disabled: both header phases are
	// skipped on the route (Filter::mergePerRouteConfig, allDisabledMode).
	ExtProcDisabled bool
	// ResponseHeadersToAdd and ResponseHeadersToRemove are the route's
	// response_headers_to_add/_remove. Envoy applies them to every response
	// of the route (upstream responses and local replies alike) before the
	// encoder filters, ext_proc included, see it: the router's
	// Filter::onUpstreamHeaders calls finalizeResponseHeaders before
	// encodeHeaders, and DownstreamFilterManager::prepareLocalReplyViaFilterChain
	// does the same for local replies.
	ResponseHeadersToAdd    []HeaderValueOption
	ResponseHeadersToRemove []string
	// Timeout is the route's timeout: an upstream that has not answered
	// with headers by then gets the router's 504 local reply
	// (upstream_response_timeout). 0 is Envoy's default, 15s.
	Timeout time.Duration
	// HeaderMutation is the route's HeaderMutationPerRoute for the
	// header_mutation filter (typed_per_filter_config
	// envoy.filters.http.header_mutation). It does not replace the
	// filter-level Config.HeaderMutation: Envoy applies the filter-level
	// mutations first, then every per-route config found for the request
	// (route, then virtual host, with most_specific_header_mutations_wins
	// false), all on the same header map (HeaderMutation::encodeHeaders and
	// initializeRouteConfigs,
	// source/extensions/filters/http/header_mutation/header_mutation.cc).
	// To scope mutations to some routes, leave the filter-level list empty.
	// Ignored when Config.HeaderMutation is nil.
	HeaderMutation *HeaderMutation
}

// HeaderMutation is the configuration of the
// envoy.filters.http.header_mutation filter, or of a HeaderMutationPerRoute:
// its mutations.response_mutations. Request mutations are not emulated.
type HeaderMutation struct {
	// ResponseMutations are applied one after the other, in list order, to
	// the live response header map (HeaderMutations::evaluateHeaders,
	// source/common/http/header_mutation.cc): a later entry sees what an
	// earlier one did.
	ResponseMutations []ResponseMutation
}

// ResponseMutation is one envoy.config.common.mutation_rules.v3.HeaderMutation:
// exactly one of Remove and Append is set. remove_on_match (Envoy 1.36 and
// later only) is not emulated.
type ResponseMutation struct {
	// Remove removes every entry of the header (RemoveMutation).
	Remove string
	// Append adds or sets a header whose value is a substitution format
	// string (AppendMutation, a Router::HeadersToAddEntry).
	Append *HeaderAppend
}

// HeaderAppend is the HeaderValueOption of a ResponseMutation's append.
type HeaderAppend struct {
	// Key is the header name.
	Key string
	// Value is a substitution format string: literal text,
	// %DYNAMIC_METADATA(namespace:key)% or %DYNAMIC_METADATA(namespace:key):Z%,
	// and %% for a literal %. Any other %COMMAND% is an error from New.
	Value string
	// Action is the append_action.
	Action AppendAction
	// KeepEmptyValue is keep_empty_value: without it a value that formats
	// to "" (an absent metadata key, for instance) adds nothing.
	KeepEmptyValue bool
}

// AppendAction is a HeaderValueOption's append_action.
type AppendAction int

const (
	// AppendIfExistsOrAdd adds an entry (for a header Envoy keeps inline,
	// such as Vary, the value is joined to its one line with ",").
	AppendIfExistsOrAdd AppendAction = iota
	// AddIfAbsent adds the header only if it is absent.
	AddIfAbsent
	// OverwriteIfExistsOrAdd replaces every value of the header, or adds it.
	OverwriteIfExistsOrAdd
	// OverwriteIfExists replaces every value of the header if present.
	OverwriteIfExists
)

// DefaultRouteTimeout is Envoy's default route timeout.
const DefaultRouteTimeout = 15 * time.Second

// LocalReply is the reply a filter placed after ext_proc sends instead of
// passing the request on: jwt_authn's 401, ext_authz's or rbac's 403.
type LocalReply struct {
	Status  int
	Body    string
	Headers []HeaderValueOption
	// Details is the reply's %RESPONSE_CODE_DETAILS%.
	Details string
}

// LocalReplyMapper is one mapper of the connection manager's
// local_reply_config. The first mapper whose Filter matches a local reply
// applies its HeadersToAdd to it. Envoy applies them in
// Utility::prepareLocalReply (source/common/http/utility.cc), after the
// reply's own headers (an immediate response's mutation included) and
// before the reply goes through the encoder filters.
type LocalReplyMapper struct {
	// Filter reports whether the mapper applies to a local reply of status
	// to a request with the given headers (as ext_proc left them).
	Filter       func(status int, request http.Header) bool
	HeadersToAdd []HeaderValueOption
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

// DefaultMaxHeadersCount and DefaultMaxHeadersKB are Envoy's default limits
// of a header map (DEFAULT_MAX_HEADERS_COUNT and
// DEFAULT_MAX_REQUEST_HEADERS_KB in envoy/http/codec.h): the listener's and
// the cluster's common_http_protocol_options.max_headers_count, the
// connection manager's max_request_headers_kb and the cluster's
// max_response_headers_kb.
const (
	DefaultMaxHeadersCount = 100
	DefaultMaxHeadersKB    = 60
)

// Config is an emulated Envoy: one listener, one virtual host with Routes,
// one ext_proc filter, one upstream cluster.
type Config struct {
	// Release is the Envoy release whose behaviour is emulated; the zero
	// value means Newest.
	Release Release
	// Upstream is the base URL of the single upstream cluster, e.g.
	// http://127.0.0.1:8000: scheme http or https, a host, no path.
	Upstream string
	// VirtualHost holds the settings shared by every route.
	VirtualHost VirtualHost
	// Routes is the route table. A request no route matches still goes
	// through ext_proc's request phase (the filter runs before the
	// router), then gets the router's 404 local reply (route_not_found).
	Routes []Route
	// NormalizePath and MergeSlashes are the connection manager's
	// normalize_path and merge_slashes: :path is normalized before route
	// matching and before any filter sees it.
	NormalizePath, MergeSlashes bool
	// ProcessingMode is the filter's processing_mode.
	ProcessingMode ProcessingMode
	// AllowModeOverride is the filter's allow_mode_override.
	AllowModeOverride bool
	// AllowedOverrideModes is the filter's allowed_override_modes: when
	// set, a mode_override is honoured only if the resulting mode equals
	// one of them.
	AllowedOverrideModes []ProcessingMode
	// RequestAttributes is the filter's request_attributes; only
	// "xds.route_name" is supported, anything else is an error from New.
	RequestAttributes []string
	// MessageTimeout is the filter's message_timeout; 0 means Envoy's
	// default, 200ms.
	MessageTimeout time.Duration
	// FailureModeAllow is the filter's failure_mode_allow.
	FailureModeAllow bool
	// GRPCServiceInitialMetadata is the filter's grpc_service.initial_metadata:
	// sent on every ext_proc stream, whether or not a route matched. A
	// per-route grpc_initial_metadata entry (VirtualHost and Route
	// GRPCInitialMetadata) with the same key replaces it, other per-route
	// entries are added after it (Filter::mergePerRouteConfig,
	// mergeHeaderValuesField, ext_proc.cc).
	GRPCServiceInitialMetadata []Metadata
	// ReceivingNamespaces is the filter's
	// metadata_options.receiving_namespaces.untyped: the namespaces of a
	// ProcessingResponse's dynamic_metadata that Envoy writes into the
	// request's dynamic metadata (Filter::setDynamicMetadata, ext_proc.cc;
	// Envoy 1.30 and later). Others are dropped silently. Empty: all of it
	// is dropped.
	ReceivingNamespaces []string
	// HeaderMutation, if set, is an envoy.filters.http.header_mutation
	// filter placed directly after ext_proc (before LaterFilter). As an
	// encoder filter it runs on every response before ext_proc does, and
	// after LaterEncoderHeaders: upstream responses, the local replies
	// Envoy generates, and ext_proc's own immediate responses.
	HeaderMutation *HeaderMutation
	// SkipWithoutOrigin emulates the ExtensionWithMatcher wrapping corsproc
	// ships: a request without an Origin header skips the filter entirely,
	// costing no ext_proc message.
	SkipWithoutOrigin bool
	// LaterFilter, if set, is a filter placed between ext_proc and the
	// router (an authentication filter): called with the request headers
	// as ext_proc left them, it returns the local reply that refuses the
	// request, or nil to pass it on.
	LaterFilter func(method, path string, header http.Header) *LocalReply
	// LaterEncoderHeaders are the response headers a filter placed after
	// ext_proc adds in its encodeHeaders. Encoder filters run in reverse
	// order, so it sees every response before ext_proc does (upstream
	// responses and the local replies Envoy generates), and it also runs on
	// ext_proc's own immediate responses sent in the request phase, after
	// their mutation: Envoy sends such a local reply through every encoder
	// filter (DownstreamFilterManager::sendLocalReplyViaFilterChain). A
	// reply ext_proc sends in the response phase bypasses it
	// (sendDirectLocalReply).
	LaterEncoderHeaders []HeaderValueOption
	// LocalReplyMappers is the connection manager's local_reply_config.
	LocalReplyMappers []LocalReplyMapper
	// MaxHeadersCount and MaxHeadersKB bound the request header map and the
	// upstream's response header map; 0 means Envoy's defaults. The codec
	// refuses a message past them, and a header mutation that takes a map
	// past them fails the request with 500.
	MaxHeadersCount, MaxHeadersKB int
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
	// DynamicMetadata is the request's dynamic metadata (filter_metadata)
	// at the end of the request: what ext_proc wrote from the processor's
	// dynamic_metadata, by namespace. nil when there is none.
	DynamicMetadata map[string]*structpb.Struct
	Duration        time.Duration
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
	UpstreamTimeouts  int // upstream requests past the route's timeout (504)
	// LocalReplies counts the replies Envoy generated itself after
	// ext_proc's request phase: the router's 404, 502, 503 and 504, and
	// LaterFilter's replies.
	LocalReplies int
	// LocalRepliesProcessed counts those that went through ext_proc's
	// response phase (Release.LocalRepliesToProcessor).
	LocalRepliesProcessed int
	// DynamicMetadataWritten counts the namespaces of processor
	// responses' dynamic_metadata written into a request's dynamic
	// metadata; DynamicMetadataDropped those dropped because they are not
	// in Config.ReceivingNamespaces (Envoy only logs them at debug level).
	DynamicMetadataWritten, DynamicMetadataDropped int
}

// counters backs Stats.
type counters struct {
	requests, noRoute, filterSkipped, streams, messagesSent, responsesReceived,
	immediateResponses, modeOverrides, closedByProcessor, processorErrors,
	spuriousResponses, timeouts, failOpen, invalidMutations, rejectedMutations,
	upstreamRequests, upstreamErrors, upstreamTimeouts, localReplies,
	localRepliesProcessed, metadataWritten, metadataDropped atomic.Int64
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

	// The header_mutation filter's lists, parsed: the filter's, and the
	// HeaderMutationPerRoute of each route (keyed by its address in
	// cfg.Routes) and of the virtual host.
	hmFilter, hmVirtualHost []compiledMutation
	hmRoute                 map[*Route][]compiledMutation
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
	errs = append(errs, checkMetadata("VirtualHost.GRPCInitialMetadata", cfg.VirtualHost.GRPCInitialMetadata)...)
	errs = append(errs, checkHeaders("VirtualHost", cfg.VirtualHost.ResponseHeadersToAdd, cfg.VirtualHost.ResponseHeadersToRemove)...)
	errs = append(errs, checkMode("ProcessingMode", cfg.ProcessingMode)...)
	for i, m := range cfg.AllowedOverrideModes {
		errs = append(errs, checkMode(fmt.Sprintf("AllowedOverrideModes[%d]", i), m)...)
	}
	errs = append(errs, checkHeaders("LaterEncoderHeaders", cfg.LaterEncoderHeaders, nil)...)
	errs = append(errs, checkMetadata("GRPCServiceInitialMetadata", cfg.GRPCServiceInitialMetadata)...)
	for i, ns := range cfg.ReceivingNamespaces {
		if ns == "" {
			errs = append(errs, fmt.Errorf("emulator: ReceivingNamespaces[%d] is empty: want a metadata namespace such as corsproc", i))
		}
	}
	hmFilter, hmErrs := compileHeaderMutation("HeaderMutation", cfg.HeaderMutation)
	errs = append(errs, hmErrs...)
	hmVirtualHost, hmErrs := compileHeaderMutation("VirtualHost.HeaderMutation", cfg.VirtualHost.HeaderMutation)
	errs = append(errs, hmErrs...)
	hmRoutes := make([][]compiledMutation, len(cfg.Routes))
	for i, r := range cfg.Routes {
		hmRoutes[i], hmErrs = compileHeaderMutation(fmt.Sprintf("Routes[%d].HeaderMutation", i), r.HeaderMutation)
		errs = append(errs, hmErrs...)
	}
	for i, m := range cfg.LocalReplyMappers {
		if m.Filter == nil {
			errs = append(errs, fmt.Errorf("emulator: LocalReplyMappers[%d]: no Filter", i))
		}
		errs = append(errs, checkHeaders(fmt.Sprintf("LocalReplyMappers[%d]", i), m.HeadersToAdd, nil)...)
	}
	if cfg.MaxHeadersCount < 0 || cfg.MaxHeadersKB < 0 {
		errs = append(errs, fmt.Errorf("emulator: MaxHeadersCount %d, MaxHeadersKB %d: want positive limits, or 0 for Envoy's defaults", cfg.MaxHeadersCount, cfg.MaxHeadersKB))
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
	p.cfg.ReceivingNamespaces = append([]string(nil), cfg.ReceivingNamespaces...)
	p.cfg.GRPCServiceInitialMetadata = append([]Metadata(nil), cfg.GRPCServiceInitialMetadata...)
	p.hmFilter, p.hmVirtualHost = hmFilter, hmVirtualHost
	p.hmRoute = make(map[*Route][]compiledMutation, len(p.cfg.Routes))
	for i := range p.cfg.Routes {
		p.hmRoute[&p.cfg.Routes[i]] = hmRoutes[i]
	}
	if p.timeout == 0 {
		p.timeout = DefaultMessageTimeout
	}
	if p.cfg.Release.Name == "" {
		p.cfg.Release = Newest
	}
	if p.cfg.MaxHeadersCount == 0 {
		p.cfg.MaxHeadersCount = DefaultMaxHeadersCount
	}
	if p.cfg.MaxHeadersKB == 0 {
		p.cfg.MaxHeadersKB = DefaultMaxHeadersKB
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
	if r.Path != "" && !strings.HasPrefix(r.Path, "/") {
		errs = append(errs, fmt.Errorf("emulator: Routes[%d].Path %q: want a path starting with /", i, r.Path))
	}
	if r.Timeout < 0 {
		errs = append(errs, fmt.Errorf("emulator: Routes[%d].Timeout %v: want a positive duration, or 0 for Envoy's default", i, r.Timeout))
	}
	errs = append(errs, checkMetadata(fmt.Sprintf("Routes[%d].GRPCInitialMetadata", i), r.GRPCInitialMetadata)...)
	errs = append(errs, checkHeaders(fmt.Sprintf("Routes[%d]", i), r.ResponseHeadersToAdd, r.ResponseHeadersToRemove)...)
	return errs
}

func checkMetadata(where string, md []Metadata) []error {
	var errs []error
	for j, m := range md {
		if m.Key == "" || strings.HasPrefix(m.Key, ":") || !validHeaderName(strings.ToLower(m.Key)) {
			errs = append(errs, fmt.Errorf("emulator: %s[%d] key %q: want a metadata key such as x-corsproc-policy", where, j, m.Key))
		}
	}
	return errs
}

func checkHeaders(where string, add []HeaderValueOption, remove []string) []error {
	var errs []error
	for j, h := range add {
		if h.Key == "" || strings.HasPrefix(h.Key, ":") || !validHeaderName(strings.ToLower(h.Key)) {
			errs = append(errs, fmt.Errorf("emulator: %s.ResponseHeadersToAdd[%d] key %q: want a header name", where, j, h.Key))
		}
		if !validHeaderValue(h.Value) {
			errs = append(errs, fmt.Errorf("emulator: %s.ResponseHeadersToAdd[%d] value %q: control characters other than tab are not allowed", where, j, h.Value))
		}
	}
	for j, k := range remove {
		if k == "" || strings.HasPrefix(k, ":") || !validHeaderName(strings.ToLower(k)) {
			errs = append(errs, fmt.Errorf("emulator: %s.ResponseHeadersToRemove[%d] %q: want a header name", where, j, k))
		}
	}
	return errs
}

func checkMode(where string, m ProcessingMode) []error {
	var errs []error
	for name, hm := range map[string]HeaderMode{
		"RequestHeaderMode":  m.RequestHeaderMode,
		"ResponseHeaderMode": m.ResponseHeaderMode,
	} {
		if hm < HeaderModeDefault || hm > HeaderModeSkip {
			errs = append(errs, fmt.Errorf("emulator: %s.%s %v: want HeaderModeDefault, HeaderModeSend or HeaderModeSkip", where, name, hm))
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
		out[i].ResponseHeadersToRemove = append([]string(nil), r.ResponseHeadersToRemove...)
	}
	return out
}

// route returns the first route that matches path, or nil. Envoy matches a
// prefix route against :path including the query string, a path route
// against the path without it, and selects the route before ext_proc runs:
// a :path mutation does not change it (that needs clear_route_cache, which
// is not emulated).
func (p *Proxy) route(path string) *Route {
	for i := range p.cfg.Routes {
		r := &p.cfg.Routes[i]
		if r.Path != "" {
			if pathOnly, _, _ := strings.Cut(path, "?"); pathOnly == r.Path {
				return r
			}
			continue
		}
		if strings.HasPrefix(path, r.PathPrefix) {
			return r
		}
	}
	return nil
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	c := &p.c
	return Stats{
		Requests:               int(c.requests.Load()),
		NoRoute:                int(c.noRoute.Load()),
		FilterSkipped:          int(c.filterSkipped.Load()),
		Streams:                int(c.streams.Load()),
		MessagesSent:           int(c.messagesSent.Load()),
		ResponsesReceived:      int(c.responsesReceived.Load()),
		ImmediateResponses:     int(c.immediateResponses.Load()),
		ModeOverrides:          int(c.modeOverrides.Load()),
		ClosedByProcessor:      int(c.closedByProcessor.Load()),
		ProcessorErrors:        int(c.processorErrors.Load()),
		SpuriousResponses:      int(c.spuriousResponses.Load()),
		Timeouts:               int(c.timeouts.Load()),
		FailOpen:               int(c.failOpen.Load()),
		InvalidMutations:       int(c.invalidMutations.Load()),
		RejectedMutations:      int(c.rejectedMutations.Load()),
		UpstreamRequests:       int(c.upstreamRequests.Load()),
		UpstreamErrors:         int(c.upstreamErrors.Load()),
		UpstreamTimeouts:       int(c.upstreamTimeouts.Load()),
		LocalReplies:           int(c.localReplies.Load()),
		LocalRepliesProcessed:  int(c.localRepliesProcessed.Load()),
		DynamicMetadataWritten: int(c.metadataWritten.Load()),
		DynamicMetadataDropped: int(c.metadataDropped.Load()),
	}
}

// CloseIdleConnections closes the idle connections to the upstream of the
// Proxy's own transport (not of a Config.Transport).
func (p *Proxy) CloseIdleConnections() {
	if p.ownTransport != nil {
		p.ownTransport.CloseIdleConnections()
	}
}
