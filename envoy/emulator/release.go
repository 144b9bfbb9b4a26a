package emulator

// Release is the set of ext_proc behaviours that changed between the Envoy
// releases corsproc supports (docs/envoy.md, "Envoy releases"). A Config
// without one emulates Newest. Each field names the Envoy source and the
// release notes it follows; the package documentation lists them all.
type Release struct {
	// Name is the range of Envoy releases the profile stands for. A
	// Config.Release without a Name is taken as Newest.
	Name string

	// LocalRepliesToProcessor: a reply Envoy generates itself after
	// ext_proc's request phase (the router's 404, 503 and 504, a 401 or 403
	// of a filter placed after ext_proc) goes through ext_proc's response
	// phase like an upstream response, unless processing is complete (an
	// immediate response, a failure) or the response phase is skipped.
	// Filter::encodeHeaders in ext_proc.cc sends every response header map
	// it is given; DownstreamFilterManager::sendLocalReply
	// (source/common/http/filter_manager.cc) runs local replies through the
	// encoder filters. Envoy 1.33.1 and 1.34.0 stopped it (runtime guard
	// envoy.reloadable_features.skip_ext_proc_on_local_reply, changelogs
	// 1.33.1.yaml and 1.34.0.yaml, the fix of CVE-2025-30157);
	// envoyproxy/envoy#41769 (merged October 2025, first in 1.37.0) sends
	// them again.
	LocalRepliesToProcessor bool

	// ModeOverrideKeepsDefault: a header mode left DEFAULT in a
	// mode_override keeps the filter's configured mode, and
	// allowed_override_modes ignores request_header_mode
	// (effectiveModeOverride in ext_proc.cc; changelogs/1.34.0.yaml). Before
	// 1.34 the override replaced the whole processing mode, so DEFAULT meant
	// SEND.
	ModeOverrideKeepsDefault bool

	// SpuriousFailsClosed: a response of the wrong type fails the request
	// with 500 unless failure_mode_allow (runtime guard
	// envoy.reloadable_features.ext_proc_fail_close_spurious_resp, 1.35).
	// Before, Envoy ignored the processor for the rest of the request and
	// continued.
	SpuriousFailsClosed bool

	// SendsProtocolConfig: the first message of a stream carries
	// protocol_config (Filter::encodeProtocolConfig, envoyproxy/envoy#38755,
	// 1.34).
	SendsProtocolConfig bool

	// ClosesStreamWhenDone: Envoy closes the stream as soon as no further
	// message is needed, e.g. right after the request_headers answer when
	// the response phase is skipped (Filter::closeGrpcStreamIfLastRespReceived,
	// runtime guard envoy.reloadable_features.ext_proc_stream_close_optimization,
	// changelogs/1.37.0.yaml). Before, the stream stayed open until the
	// request ended.
	ClosesStreamWhenDone bool
}

// The release profiles, oldest first. Releases older than 1.31 are not
// supported (docs/envoy.md, "Envoy releases"): 1.30 answers an expired
// message_timeout with 500, not 504 (envoyproxy/envoy#34856, runtime guard
// envoy.reloadable_features.ext_proc_timeout_error; changelogs/1.31.0.yaml).
var (
	// Envoy1_31 is Envoy 1.31 to 1.33.0, before the patch releases of
	// CVE-2025-30157: local replies reach the processor.
	Envoy1_31 = Release{Name: "1.31-1.33.0", LocalRepliesToProcessor: true}
	// Envoy1_33_1 is the patch release 1.33.1 (and the other patch
	// releases of CVE-2025-30157): local replies no longer reach the
	// processor; mode_override still replaces the whole mode.
	Envoy1_33_1 = Release{Name: "1.33.1"}
	// Envoy1_34 is Envoy 1.34: DEFAULT in a mode_override keeps the
	// configured mode; protocol_config is sent.
	Envoy1_34 = Release{Name: "1.34", ModeOverrideKeepsDefault: true, SendsProtocolConfig: true}
	// Envoy1_35 is Envoy 1.35 and 1.36: a spurious response fails closed.
	Envoy1_35 = Release{Name: "1.35-1.36", ModeOverrideKeepsDefault: true, SendsProtocolConfig: true,
		SpuriousFailsClosed: true}
	// Envoy1_37 is Envoy 1.37 and later: local replies reach the processor
	// again, and the stream is closed as soon as it is no longer needed.
	Envoy1_37 = Release{Name: "1.37+", LocalRepliesToProcessor: true, ModeOverrideKeepsDefault: true,
		SendsProtocolConfig: true, SpuriousFailsClosed: true, ClosesStreamWhenDone: true}

	// Newest is the profile of the newest Envoy release, the default.
	Newest = Envoy1_37
)

// Releases returns every release profile, oldest first.
func Releases() []Release {
	return []Release{Envoy1_31, Envoy1_33_1, Envoy1_34, Envoy1_35, Envoy1_37}
}
