// Package emulator is a faithful emulator of Envoy's External Processing
// (ext_proc) HTTP filter, the client side of the protocol corsproc serves.
//
// No Envoy binary can run where corsproc is developed and tested, so this
// package plays Envoy: a Proxy is an HTTP/1.1 listener with a virtual host,
// a route table, one ext_proc filter, optionally a filter after it, and a
// single upstream cluster. For every HTTP request it opens one ext_proc
// stream, sends the request and response headers the way Envoy shapes them,
// applies the processor's answers with Envoy's rules, and fails the way
// Envoy fails. The protocol facts it follows are those of
// docs/extproc-protocol.md; each branch of the code names the Envoy source
// it follows.
//
// The emulator serves corsproc's end-to-end tests, the browser tests and
// `corsproc dev`. It emulates only what corsproc's deployments use: header
// processing (request and response header modes SEND or SKIP), bodies NONE,
// trailers SKIP, the request attribute xds.route_name, grpc_service and
// per-route gRPC initial metadata, ExtProcPerRoute.disabled,
// allow_mode_override and allowed_override_modes, message_timeout,
// failure_mode_allow, the default header mutation rules,
// metadata_options.receiving_namespaces.untyped; the
// envoy.filters.http.header_mutation filter placed directly after ext_proc
// (response_mutations, HeaderMutationPerRoute, the %DYNAMIC_METADATA%
// formatter); and of the connection manager and router: normalize_path,
// merge_slashes, prefix and path routes, route timeouts,
// response_headers_to_add/_remove and local_reply_config.
//
// # Envoy releases
//
// Envoy changed how ext_proc behaves several times; a Release profile says
// which behaviour a Proxy emulates, and Config.Release defaults to Newest.
// The profiles and what tells them apart (sources are in envoyproxy/envoy;
// paths without a directory are in source/extensions/filters/http/ext_proc/):
//
//	profile      local replies   DEFAULT in     spurious    protocol_  stream closed
//	             to ext_proc     mode_override  response    config     when done
//	Envoy1_31    yes             means SEND     continue    no         no
//	Envoy1_33_1  no              means SEND     continue    no         no
//	Envoy1_34    no              keeps config   continue    yes        no
//	Envoy1_35    no              keeps config   500         yes        no
//	Envoy1_37    yes             keeps config   500         yes        yes
//
// In detail:
//
//   - Local replies (Release.LocalRepliesToProcessor). A reply Envoy
//     generates after ext_proc's request phase (the router's 404 for no
//     route, 503 for an upstream it cannot connect to, 504 for the route's
//     timeout, 502 for a response its codec refuses; a later filter's 401
//     or 403) runs through the encoder filters
//     (DownstreamFilterManager::sendLocalReply, source/common/http/
//     filter_manager.cc), and Filter::encodeHeaders sends it to the
//     processor unless processing is complete (an immediate response, a
//     failure, a clean close) or the response phase is skipped. 1.33.1 and
//     1.34.0 stopped that (runtime guard
//     envoy.reloadable_features.skip_ext_proc_on_local_reply, changelogs
//     1.33.1.yaml and 1.34.0.yaml, the fix of CVE-2025-30157);
//     envoyproxy/envoy#41769 (merged October 2025, in 1.37.0) sends them
//     again. A reply ext_proc sent itself never comes back through ext_proc.
//   - mode_override (Release.ModeOverrideKeepsDefault). Honoured only with
//     allow_mode_override, only while a headers answer is awaited, and only
//     if the resulting mode is one of allowed_override_modes when those are
//     set (Filter::onReceiveMessage), applied before the response case is
//     looked at. Since 1.34 a header mode left DEFAULT keeps the configured
//     mode and allowed_override_modes ignores request_header_mode
//     (effectiveModeOverride; changelogs/1.34.0.yaml); before, the override
//     replaced the whole mode, DEFAULT meaning SEND.
//   - Spurious responses (Release.SpuriousFailsClosed). A response of the
//     wrong type, or with no response case, fails the request with 500
//     unless failure_mode_allow since 1.35 (runtime guard
//     envoy.reloadable_features.ext_proc_fail_close_spurious_resp); before,
//     Envoy ignored the processor for the rest of the request.
//   - protocol_config (Release.SendsProtocolConfig) on the first message of
//     a stream (Filter::encodeProtocolConfig, envoyproxy/envoy#38755, 1.34).
//   - Stream close (Release.ClosesStreamWhenDone). Since 1.37 the stream is
//     closed as soon as no further message is needed
//     (Filter::closeGrpcStreamIfLastRespReceived, runtime guard
//     envoy.reloadable_features.ext_proc_stream_close_optimization).
//
// Releases before 1.31 are not emulated: 1.30 answers an expired
// message_timeout with 500 rather than 504 (envoyproxy/envoy#34856).
//
// # Behaviours common to every profile
//
//   - The request phase runs whether or not a route matched: ext_proc is a
//     decoder filter before the router, which answers 404 afterwards. With
//     request_attributes [xds.route_name] the attributes Struct is always
//     sent; xds.route_name is "" for a route without a name and left out
//     when no route matched (XDSLookup's RouteName in
//     source/extensions/filters/common/expr/context.cc returns no value,
//     which ExpressionManager::evaluateAttributes in matching_utils.cc
//     skips).
//   - Messages carry an empty metadata_context (Filter::addDynamicMetadata).
//   - Header maps are shaped as Envoy's: pseudo-headers first, lower-case
//     keys, values in raw_value; repeated lines of a header Envoy keeps
//     inline (the CORS headers, registered by
//     source/extensions/filters/http/cors/cors_filter.cc, and Vary,
//     registered by source/extensions/filters/http/common/compressor/
//     compressor.cc) become one entry joined with "," by the codec
//     (HeaderMapImpl::insertByKey and appendToHeader,
//     source/common/http/header_map_impl.cc), and so does a value a
//     mutation appends to one. Other headers keep one entry per line.
//   - Route and virtual-host response_headers_to_add/_remove are applied
//     before the encoder filters see the response: the router's
//     Filter::onUpstreamHeaders calls finalizeResponseHeaders before
//     encodeHeaders (source/common/router/router.cc), and the filter
//     manager does the same for local replies
//     (prepareLocalReplyViaFilterChain). The processor's mutation therefore
//     wins over them. The route's are applied first, then the virtual
//     host's (most_specific_header_mutations_wins false), each removing
//     then adding.
//   - A local reply's headers are, in order: :status and for a body
//     content-length and content-type text/plain; the route's headers; the
//     reply's own (an immediate response's mutation, a later filter's
//     headers: the filter manager applies the route's before calling the
//     sender's modify_headers); local_reply_config's headers_to_add
//     (Utility::prepareLocalReply, source/common/http/utility.cc); the
//     encodeHeaders of the filters placed after ext_proc, in reverse
//     configuration order (Config.LaterEncoderHeaders, then
//     Config.HeaderMutation: a local reply goes through every encoder
//     filter, DownstreamFilterManager::sendLocalReplyViaFilterChain, and
//     FilterManager::addStreamEncoderFilterWorker prepends each encoder
//     filter, so they run in reverse order); then, for a reply Envoy
//     generates after the request phase, ext_proc's response phase where
//     the release sends it. An upstream response likewise gets the route's
//     headers, the later filter's and header_mutation's before ext_proc
//     sees it. The exception is a reply ext_proc sends while it processes
//     response headers (an immediate response or an error answering
//     response_headers): response headers already exist, so
//     DownstreamFilterManager::sendLocalReply sends it with
//     sendDirectLocalReply, which applies the route's headers, the reply's
//     mutation and local_reply_config but bypasses every encoder filter.
//   - Header mutations follow MutationUtils::applyHeaderMutations
//     (mutation_utils.cc): removals first; the deprecated append BoolValue
//     decides between replacing (unset or false) and adding (true), and
//     append_action is never read; values come from raw_value only. Envoy
//     refuses the mutation, and answers 500 whatever failure_mode_allow
//     says, for more set or remove entries than the map's count limit, an
//     invalid name, a value with a control character other than tab or
//     with DEL (Http::HeaderUtility::headerNameIsValid and
//     headerValueIsValid), a HeaderValue with both value and raw_value, or
//     a map past its count or size limit once mutated
//     (headerMutationResultCheck; Envoy's defaults are 100 headers and
//     60 KiB, Config.MaxHeadersCount and MaxHeadersKB). The default
//     mutation rules then silently ignore changes to host, :authority,
//     :method, :scheme, x-envoy-* and the removal of any pseudo-header
//     (source/extensions/filters/common/mutation_rules/mutation_rules.cc).
//     In an immediate response a refused mutation is only logged: the
//     reply goes out with the changes made before it (Filter::
//     sendImmediateResponse).
//   - An upstream response past the header map limits is refused by the
//     codec: the router answers 502.
//   - normalize_path and merge_slashes rewrite :path before routing and
//     before any filter sees it (ConnectionManagerUtility::
//     maybeNormalizePath): dot segments resolved, runs of slashes merged;
//     Envoy's canonicalizer does more (percent-decoding, rejecting some
//     paths), which corsproc's tests do not rely on.
//   - ExtProcPerRoute.disabled turns both header phases off on the route;
//     grpc_initial_metadata of the virtual host and the route are merged
//     per key, the route's winning (Filter::mergePerRouteConfig,
//     mergeGrpcInitialMetadata), and the result is merged the same way into
//     the filter's grpc_service.initial_metadata
//     (Config.GRPCServiceInitialMetadata), which every stream carries, with
//     or without a route (mergeHeaderValuesField).
//
// # Single-message mode
//
// What a deployment answering each CORS request with one message relies on
// (docs/envoy.md), common to every profile; the sources are in
// envoyproxy/envoy and were read in a 1.31-1.33-era and in the newest
// revision:
//
//   - Dynamic metadata (Config.ReceivingNamespaces; Envoy 1.30 and later,
//     changelogs/1.30.0.yaml). Filter::onReceiveMessage (ext_proc.cc)
//     calls setDecoderDynamicMetadata or setEncoderDynamicMetadata for
//     every response case it knows, before handling the case: before a
//     request_headers answer continues the request, before an immediate
//     response is sent, before a response of the wrong type is found
//     spurious. Filter::setDynamicMetadata writes only the top-level keys
//     of dynamic_metadata that are listed in
//     metadata_options.receiving_namespaces.untyped, each read with
//     struct_value() (not a Struct: an empty one) and merged into the
//     request's metadata with MergeFrom (StreamInfoImpl::setDynamicMetadata,
//     source/common/stream_info/stream_info_impl.h: a key replaces the
//     same key, others stay). Other namespaces are dropped with only a
//     debug log (Stats.DynamicMetadataDropped counts them). The metadata
//     belongs to the HTTP request: the router, later filters, local replies
//     and the response path all see it (LogEntry.DynamicMetadata). Typed
//     receiving namespaces and per-route metadata_options are not emulated.
//   - mode_override SKIP on the request_headers answer, with
//     allow_mode_override: no response_headers message, on upstream
//     responses and on local replies alike, on every release
//     (Filter::encodeHeaders sends only if encoding_state_.sendHeaders();
//     EncodingProcessorState::setProcessingModeInternal).
//   - The header_mutation filter (Config.HeaderMutation, placed directly
//     after ext_proc; in every release corsproc supports,
//     source/extensions/filters/http/header_mutation/header_mutation.cc).
//     HeaderMutation::encodeHeaders applies the filter-level
//     response_mutations, then the HeaderMutationPerRoute of the route
//     (Route.HeaderMutation), then of the virtual host
//     (VirtualHost.HeaderMutation): per-route lists add to the filter's,
//     they do not replace it (initializeRouteConfigs; a request without a
//     route gets the filter's only). HeaderMutations::evaluateHeaders
//     (source/common/http/header_mutation.cc) applies each mutation in list
//     order to the live header map: remove deletes every entry of the name
//     (RemoveMutation); append (AppendMutation) formats its value, does
//     nothing if it is empty unless keep_empty_value, and then
//     APPEND_IF_EXISTS_OR_ADD adds an entry (joined with "," to an inline
//     header such as Vary), ADD_IF_ABSENT adds only to an absent header,
//     OVERWRITE_IF_EXISTS replaces only a present one, and
//     OVERWRITE_IF_EXISTS_OR_ADD replaces every entry (setReferenceKey).
//     It runs on upstream responses and on every local reply that goes
//     through the filter chain (the router's 404, 502, 503 and 504, a later
//     filter's reply, ext_proc's immediate responses and error replies sent
//     in the request phase), but not on the replies ext_proc sends in the
//     response phase (sendDirectLocalReply). remove_on_match (Envoy 1.36
//     and later) and request mutations are not emulated.
//   - The substitution formatter of a header value
//     (Router::HeadersToAddEntry builds it with
//     Formatter::FormatterImpl::create(value, omit_empty_values=true),
//     source/common/router/header_parser.cc). SubstitutionFormatParser::parse
//     (source/common/formatter/substitution_formatter.cc) reads "%%" as "%"
//     and anything else after "%" as %COMMAND(ARG):LENGTH%, refusing the
//     configuration for text that is not a command and for a command it
//     does not know; the emulator supports %DYNAMIC_METADATA(ns:key...)%
//     and refuses every other command at New. MetadataFormatter::
//     formatMetadata gives no value for an absent namespace or key or a
//     null, which a header formatter renders as "" (never "-"), so the
//     header is then dropped unless keep_empty_value; a string value
//     unquoted, any other value as JSON, the whole namespace as JSON when
//     there is no key, truncated to LENGTH bytes.
//
// Where Envoy's behaviour is not spelled out there, the emulator does what
// Envoy's source does; those choices are in the comments of the code that
// makes them. Its own simplifications:
//
//   - The emulator reads a processor response only while one of its
//     messages awaits an answer; Envoy's client reads asynchronously. A
//     processor that closes its stream between the two phases is therefore
//     noticed when the response_headers message is sent, not before: the
//     outcome (continue untouched) is the same, the message count one higher.
//   - CONTINUE_AND_REPLACE is applied like CONTINUE (header mutation only):
//     body mutations, trailers and clear_route_cache are not emulated.
//   - A failure or immediate response while a generated local reply is in
//     ext_proc's response phase replaces the reply with ext_proc's own
//     local reply.
//
// The sections of docs/extproc-protocol.md map to files:
//
//   - "Streams", "One answer per message", "Processing mode", "Failures":
//     stream.go (one stream per request, message_timeout, spurious and
//     error answers, mode_override, closing the stream).
//   - "Headers Envoy sends", "Header mutations": headers.go (header maps as
//     Envoy shapes them, mutations, limits, the default mutation rules).
//   - "Immediate responses", "Replies Envoy generates itself": proxy.go
//     (the listener, local replies, route response headers, the upstream).
//   - "Identifying the route and the policy": emulator.go (routes, their
//     names and gRPC initial metadata) and stream.go (the route attribute).
//   - Dynamic metadata, the header_mutation filter and its formatter:
//     headermutation.go.
//   - Release profiles: release.go.
package emulator
