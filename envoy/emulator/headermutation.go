package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// This file emulates what single-message mode relies on (docs/envoy.md and
// docs/extproc-protocol.md): ext_proc writing the processor's
// dynamic_metadata into the request's dynamic metadata, and the
// envoy.filters.http.header_mutation filter setting response headers from
// it through the substitution formatter.

// setDynamicMetadata writes a processor response's dynamic_metadata into the
// request's dynamic metadata as Filter::setDynamicMetadata (ext_proc.cc,
// Envoy 1.30 and later, the same in every release corsproc supports) does:
// nothing unless metadata_options.receiving_namespaces.untyped is set; then
// each top-level key of the Struct that is one of those namespaces, compared
// exactly, is merged into that namespace with
// StreamInfoImpl::setDynamicMetadata's MergeFrom (a key already there is
// replaced, others kept; source/common/stream_info/stream_info_impl.h), and
// every other key is dropped with only a debug log. A namespace's value is
// read with struct_value(): a value that is not a Struct reads as an empty
// one, which creates the namespace and adds nothing to it.
//
// Filter::onReceiveMessage calls it for every response case it knows (the
// headers, body and trailers responses, and an immediate response unless
// disable_immediate_response), before the case is handled: before a
// request_headers answer lets the request continue, before an immediate
// response is sent as a local reply, and even before a response of the
// wrong type is found spurious. A response with no response case gets to
// the default branch and writes nothing.
func (x *exchange) setDynamicMetadata(resp *extprocv3.ProcessingResponse) {
	md := resp.GetDynamicMetadata()
	if resp.Response == nil || md == nil || len(x.p.cfg.ReceivingNamespaces) == 0 {
		return
	}
	for ns, v := range md.GetFields() {
		if !slices.Contains(x.p.cfg.ReceivingNamespaces, ns) {
			x.p.c.metadataDropped.Add(1)
			continue
		}
		if x.dynMeta == nil {
			x.dynMeta = map[string]*structpb.Struct{}
		}
		cur := x.dynMeta[ns]
		if cur == nil {
			cur = &structpb.Struct{Fields: map[string]*structpb.Value{}}
			x.dynMeta[ns] = cur
		}
		if s := v.GetStructValue(); s != nil {
			// proto.Merge copies map entries, replacing existing ones,
			// as C++ MergeFrom does for the Struct's fields map.
			proto.Merge(cur, s)
		}
		x.p.c.metadataWritten.Add(1)
	}
}

// dynamicMetadata returns a copy of the request's dynamic metadata, or nil.
func (x *exchange) dynamicMetadata() map[string]*structpb.Struct {
	if len(x.dynMeta) == 0 {
		return nil
	}
	out := make(map[string]*structpb.Struct, len(x.dynMeta))
	for ns, s := range x.dynMeta {
		out[ns] = proto.Clone(s).(*structpb.Struct)
	}
	return out
}

// formatter is a parsed substitution format string as a header value
// uses it: Router::HeadersToAddEntry builds it with
// Formatter::FormatterImpl::create(value, omit_empty_values=true)
// (parseHttpHeaderFormatter, source/common/router/header_parser.cc).
type formatter []formatPart

// formatPart is literal text, or a %DYNAMIC_METADATA(...)% command when md
// is set.
type formatPart struct {
	literal string
	md      *metadataCommand
}

// metadataCommand is %DYNAMIC_METADATA(namespace:key:...)% with an optional
// :LENGTH.
type metadataCommand struct {
	namespace string
	path      []string
	maxLen    int // -1: no limit
}

// commandRE is Envoy's commandWithArgsRegex
// (source/common/formatter/substitution_formatter.cc): %COMMAND%,
// %COMMAND(SUBCOMMAND)%, either with :LENGTH.
var commandRE = regexp.MustCompile(`^%([A-Z0-9_]+)(?:\((.*?)\))?(?::([0-9]+))?%`)

// parseFormat parses a header value as SubstitutionFormatParser::parse
// (substitution_formatter.cc) does: "%%" is a literal "%"; any other "%"
// must start a command, or the configuration is refused ("Couldn't find
// valid command"); a command no parser knows is refused ("Not supported
// field in StreamInfo"). Of Envoy's commands only DYNAMIC_METADATA is
// emulated; the emulator refuses the others rather than render them wrong.
func parseFormat(s string) (formatter, error) {
	var f formatter
	var lit strings.Builder
	for pos := 0; pos < len(s); {
		if s[pos] != '%' {
			lit.WriteByte(s[pos])
			pos++
			continue
		}
		if pos+1 < len(s) && s[pos+1] == '%' {
			lit.WriteByte('%')
			pos += 2
			continue
		}
		if lit.Len() > 0 {
			f = append(f, formatPart{literal: lit.String()})
			lit.Reset()
		}
		m := commandRE.FindStringSubmatchIndex(s[pos:])
		if m == nil {
			return nil, fmt.Errorf("Incorrect configuration: %s. Couldn't find valid command at position %d", s, pos)
		}
		command := s[pos+m[2] : pos+m[3]]
		hasArg := m[4] >= 0
		arg := ""
		if hasArg {
			arg = s[pos+m[4] : pos+m[5]]
		}
		maxLen := -1
		if m[6] >= 0 {
			n, err := strconv.Atoi(s[pos+m[6] : pos+m[7]])
			if err != nil {
				return nil, fmt.Errorf("%%%s%%: length %q: %v", command, s[pos+m[6]:pos+m[7]], err)
			}
			maxLen = n
		}
		if command != "DYNAMIC_METADATA" {
			return nil, fmt.Errorf("%%%s%%: only %%DYNAMIC_METADATA(namespace:key)%% and literal text are emulated "+
				"(Envoy refuses a command it does not know: \"Not supported field in StreamInfo: %s\")", command, command)
		}
		// CommandSyntaxChecker: DYNAMIC_METADATA requires parameters,
		// split on ':' into the namespace and the path
		// (SubstitutionFormatUtils::parseSubcommand).
		if arg == "" {
			return nil, errors.New("DYNAMIC_METADATA requires parameters: %DYNAMIC_METADATA(namespace:key)%")
		}
		parts := strings.Split(arg, ":")
		f = append(f, formatPart{md: &metadataCommand{namespace: parts[0], path: parts[1:], maxLen: maxLen}})
		pos += m[1]
	}
	if lit.Len() > 0 {
		f = append(f, formatPart{literal: lit.String()})
	}
	return f, nil
}

// format renders the value. FormatterImpl::formatWithContext appends each
// part; a command without a value adds nothing, because header formatters
// omit empty values (an access log would write "-").
func (f formatter) format(md map[string]*structpb.Struct) string {
	var b strings.Builder
	for _, p := range f {
		if p.md == nil {
			b.WriteString(p.literal)
			continue
		}
		if v, ok := p.md.value(md); ok {
			b.WriteString(v)
		}
	}
	return b.String()
}

// value is MetadataFormatter::formatMetadata
// (source/common/formatter/stream_info_formatter.cc): no value when the
// namespace is absent, or the path leads nowhere (a missing key, a step
// through something that is not a Struct), or to a null; a string as it
// is (unquoted); anything else as JSON; the whole namespace as JSON when
// there is no path; then truncated to :LENGTH bytes. The JSON is
// encoding/json's (keys sorted, no HTML escaping); Envoy's may order keys
// or write numbers differently, which corsproc, sending strings only, does
// not meet.
func (c *metadataCommand) value(md map[string]*structpb.Struct) (string, bool) {
	ns, ok := md[c.namespace]
	if !ok {
		return "", false
	}
	v := structpb.NewStructValue(ns)
	for _, k := range c.path {
		s := v.GetStructValue()
		if s == nil {
			return "", false
		}
		if v, ok = s.GetFields()[k]; !ok {
			return "", false
		}
	}
	var out string
	switch k := v.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return "", false
	case *structpb.Value_StringValue:
		out = k.StringValue
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v.AsInterface()); err != nil {
			out = err.Error()
		} else {
			out = strings.TrimSuffix(buf.String(), "\n")
		}
	}
	if c.maxLen >= 0 && len(out) > c.maxLen {
		out = out[:c.maxLen]
	}
	return out, true
}

// compiledMutation is one ResponseMutation ready to apply.
type compiledMutation struct {
	remove    string // lower case; "" for an append
	key       string // lower case
	value     formatter
	action    AppendAction
	keepEmpty bool
}

// compileHeaderMutation checks hm and parses its values; where names the
// configuration field in errors.
func compileHeaderMutation(where string, hm *HeaderMutation) ([]compiledMutation, []error) {
	if hm == nil {
		return nil, nil
	}
	var out []compiledMutation
	var errs []error
	for i, rm := range hm.ResponseMutations {
		at := fmt.Sprintf("emulator: %s.ResponseMutations[%d]", where, i)
		switch {
		case rm.Remove != "" && rm.Append != nil:
			errs = append(errs, fmt.Errorf("%s: both Remove and Append are set: want one (a mutation_rules HeaderMutation's action is a oneof)", at))
		case rm.Remove != "":
			k := strings.ToLower(rm.Remove)
			if !validHeaderName(k) || strings.HasPrefix(k, ":") || k == "host" {
				// A pseudo-header or host removal is refused here: Envoy
				// would then answer 502 for a response without :status
				// (FilterManager::encodeHeaders,
				// checkRequiredResponseHeaders), which is not emulated.
				errs = append(errs, fmt.Errorf("%s: Remove %q: want a header name other than a pseudo-header or host", at, rm.Remove))
				continue
			}
			out = append(out, compiledMutation{remove: k})
		case rm.Append != nil:
			a := rm.Append
			k := strings.ToLower(a.Key)
			switch {
			case a.Key == "" || !validHeaderName(k):
				errs = append(errs, fmt.Errorf("%s: Append.Key %q: want a header name", at, a.Key))
				continue
			case strings.HasPrefix(k, ":") || k == "host":
				// parseHttpHeaderFormatter (header_parser.cc):
				// Http::HeaderUtility::isModifiableHeader.
				errs = append(errs, fmt.Errorf("%s: Append.Key %q: :-prefixed or host headers may not be modified", at, a.Key))
				continue
			case !validHeaderValue(a.Value):
				errs = append(errs, fmt.Errorf("%s: Append.Value %q: control characters other than tab are not allowed", at, a.Value))
				continue
			case a.Action < AppendIfExistsOrAdd || a.Action > OverwriteIfExists:
				errs = append(errs, fmt.Errorf("%s: Append.Action %d: want one of AppendIfExistsOrAdd, AddIfAbsent, OverwriteIfExistsOrAdd, OverwriteIfExists", at, a.Action))
				continue
			}
			f, err := parseFormat(a.Value)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: Append.Value %q: %v", at, a.Value, err))
				continue
			}
			out = append(out, compiledMutation{key: k, value: f, action: a.Action, keepEmpty: a.KeepEmptyValue})
		default:
			errs = append(errs, fmt.Errorf("%s: neither Remove nor Append is set (Envoy panics on an unset action: PANIC_DUE_TO_PROTO_UNSET in HeaderMutations)", at))
		}
	}
	return out, errs
}

// headerMutation runs the header_mutation filter's encodeHeaders on a
// response header map (HeaderMutation::encodeHeaders,
// source/extensions/filters/http/header_mutation/header_mutation.cc, the
// same in every release corsproc supports): the filter-level
// response_mutations first, then the HeaderMutationPerRoute configs found
// for the request's route, the route's before the virtual host's
// (getAllPerFilterConfig returns them least specific first and
// initializeRouteConfigs reverses them unless
// most_specific_header_mutations_wins). Per-route configs add to the
// filter-level list; they do not replace it. A request without a route
// gets the filter-level list only. Nothing happens when the filter is not
// configured.
func (x *exchange) headerMutation(m *headerMap) {
	p := x.p
	if p.cfg.HeaderMutation == nil {
		return
	}
	x.applyMutations(m, p.hmFilter)
	if x.route != nil {
		x.applyMutations(m, p.hmRoute[x.route])
		x.applyMutations(m, p.hmVirtualHost)
	}
}

// applyMutations is HeaderMutations::evaluateHeaders
// (source/common/http/header_mutation.cc): each mutation in list order on
// the live map, so a later one sees what an earlier one did.
//
//   - RemoveMutation: headers.remove(name), every entry.
//   - AppendMutation: the value is formatted; if it is empty and
//     keep_empty_value is not set, nothing happens. Otherwise
//     APPEND_IF_EXISTS_OR_ADD is addReferenceKey (one more entry, or for a
//     header Envoy keeps inline such as Vary the value joined to its line
//     with ","), ADD_IF_ABSENT adds only if the header is absent,
//     OVERWRITE_IF_EXISTS only if present, and OVERWRITE_IF_EXISTS_OR_ADD
//     is setReferenceKey (remove every entry, then add one;
//     HeaderMapImpl::setReferenceKey, source/common/http/header_map_impl.cc).
//
// The formatted values are not checked: Envoy writes them as they are, and
// metadata values bypass ext_proc's header mutation checks.
func (x *exchange) applyMutations(m *headerMap, ms []compiledMutation) {
	for _, mu := range ms {
		if mu.remove != "" {
			m.remove(mu.remove)
			continue
		}
		v := mu.value.format(x.dynMeta)
		if v == "" && !mu.keepEmpty {
			continue
		}
		_, present := m.get(mu.key)
		switch mu.action {
		case AppendIfExistsOrAdd:
			m.add(mu.key, v)
		case AddIfAbsent:
			if !present {
				m.add(mu.key, v)
			}
		case OverwriteIfExists:
			if present {
				m.remove(mu.key)
				m.add(mu.key, v)
			}
		case OverwriteIfExistsOrAdd:
			m.remove(mu.key)
			m.add(mu.key, v)
		}
	}
}
