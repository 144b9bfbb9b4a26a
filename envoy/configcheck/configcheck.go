// Package configcheck validates Envoy configurations strictly against
// Envoy's own API (go-control-plane), for corsproc's shipped configs, its
// Kubernetes manifests and users' CI: YAML is read as Envoy reads it but
// unknown fields are errors, the protoc-gen-validate rules run on every
// message including the content of each typed_config, deprecated fields are
// refused, and the ext_proc filter is checked for the settings corsproc
// relies on.
//
// The message types a config names in "@type" must be linked into the
// binary that runs the check (blank imports of their go-control-plane
// packages), or they cannot be resolved.
package configcheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	commonmutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/corsproc/corsproc/internal/extproc"
)

// AttributeRoute is the request attribute corsproc selects policies by,
// defined once as extproc.AttributeRoute (this name is kept for the
// config tests of envoy/ and k8s/ that check for it).
const AttributeRoute = extproc.AttributeRoute

// UnmarshalYAML reads an Envoy YAML config into m the way Envoy does (YAML
// to JSON, then the proto3 JSON mapping), but strictly: an unknown field or
// an "@type" naming no message linked into the binary is an error.
func UnmarshalYAML(data []byte, m proto.Message) error {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	doc, err := jsonable(doc, "")
	if err != nil {
		return err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(js, m)
}

// jsonable turns a decoded YAML document into values encoding/json accepts:
// mappings with non-string keys are refused (the proto JSON mapping only has
// string keys).
func jsonable(v any, path string) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			c, err := jsonable(e, path+"."+k)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
		return v, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: mapping key %v is a %T, want a string", path, k, k)
			}
			c, err := jsonable(e, path+"."+ks)
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		for i, e := range v {
			c, err := jsonable(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
		return v, nil
	default:
		return v, nil
	}
}

// Node is a message found in a config, with its path for error messages.
type Node struct {
	Path string
	Msg  proto.Message
	// InAny is true for the content of a google.protobuf.Any: the root of a
	// subtree that the enclosing message's ValidateAll does not reach.
	InAny bool
}

// ValidateTree validates root and every message nested in it: the
// protoc-gen-validate rules of root and of the content of every Any (which
// the rules of the enclosing message do not reach), and the absence of
// deprecated fields and enum values, which Envoy warns about or rejects. It
// returns every message of the tree.
func ValidateTree(root proto.Message) ([]Node, error) { return validate(root, true) }

// ValidateNested is ValidateTree with the protoc-gen-validate rules of the
// content of every Any only: neither root's rules nor those of the messages
// nested in it outside an Any run (root's rules are what reach them), while
// deprecated fields and enum values are still refused everywhere. It is for
// a fragment of a config (a snippet in the docs), which leaves required
// fields, at any depth, to its context.
func ValidateNested(root proto.Message) ([]Node, error) { return validate(root, false) }

func validate(root proto.Message, rootRules bool) ([]Node, error) {
	nodes, err := Walk(root)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range nodes {
		if n.Path == "" && rootRules || n.InAny {
			if v, ok := n.Msg.(interface{ ValidateAll() error }); ok {
				if err := v.ValidateAll(); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", displayPath(n.Path), err))
				}
			}
		}
		errs = append(errs, deprecatedUses(n)...)
	}
	return nodes, errors.Join(errs...)
}

func displayPath(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}

// Walk returns root and every message nested in it, unpacking every Any.
func Walk(root proto.Message) ([]Node, error) {
	var nodes []Node
	var errs []error
	var visit func(path string, m protoreflect.Message, inAny bool)
	visit = func(path string, m protoreflect.Message, inAny bool) {
		if a, ok := m.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q: %w", displayPath(path), a.GetTypeUrl(), err))
				return
			}
			nodes = append(nodes, Node{Path: path, Msg: a})
			visit(path+"<"+string(inner.ProtoReflect().Descriptor().FullName())+">", inner.ProtoReflect(), true)
			return
		}
		nodes = append(nodes, Node{Path: path, Msg: m.Interface(), InAny: inAny})
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
				return true
			}
			fp := path + "." + fd.TextName()
			switch {
			case fd.IsList():
				l := v.List()
				for i := range l.Len() {
					visit(fmt.Sprintf("%s[%d]", fp, i), l.Get(i).Message(), false)
				}
			case fd.IsMap():
				if fd.MapValue().Kind() != protoreflect.MessageKind {
					return true
				}
				v.Map().Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
					visit(fmt.Sprintf("%s[%q]", fp, k.String()), e.Message(), false)
					return true
				})
			default:
				visit(fp, v.Message(), false)
			}
			return true
		})
	}
	visit("", root.ProtoReflect(), false)
	return nodes, errors.Join(errs...)
}

// deprecatedUses reports the deprecated fields and enum values set in n's
// own fields.
func deprecatedUses(n Node) []error {
	var errs []error
	n.Msg.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDeprecated() {
			errs = append(errs, fmt.Errorf("%s.%s: deprecated field", displayPath(n.Path), fd.TextName()))
		}
		if fd.Kind() == protoreflect.EnumKind {
			check := func(num protoreflect.EnumNumber) {
				ev := fd.Enum().Values().ByNumber(num)
				if ev == nil {
					return
				}
				if opts, ok := ev.Options().(*descriptorpb.EnumValueOptions); ok && opts.GetDeprecated() {
					errs = append(errs, fmt.Errorf("%s.%s: deprecated value %s", displayPath(n.Path), fd.TextName(), ev.Name()))
				}
			}
			if fd.IsList() {
				for i := range v.List().Len() {
					check(v.List().Get(i).Enum())
				}
			} else if !fd.IsMap() {
				check(v.Enum())
			}
		}
		return true
	})
	return errs
}

// ExternalProcessorErrors checks the ext_proc filter settings corsproc relies
// on, as docs/envoy.md explains them: envoy_grpc to a cluster,
// allow_mode_override, the xds.route_name attribute, a message_timeout of
// at most 1s, failure_mode_allow, no observability mode, and headers SEND,
// bodies NONE, trailers SKIP.
func ExternalProcessorErrors(ep *extprocfilterv3.ExternalProcessor) []error {
	var errs []error
	if ep.GetGrpcService().GetEnvoyGrpc().GetClusterName() == "" {
		errs = append(errs, errors.New("ext_proc grpc_service must use envoy_grpc with a cluster_name"))
	}
	if !ep.GetAllowModeOverride() {
		errs = append(errs, errors.New("allow_mode_override must be true: corsproc skips the response phase of requests that need nothing"))
	}
	if !slices.Contains(ep.GetRequestAttributes(), extproc.AttributeRoute) {
		errs = append(errs, fmt.Errorf("request_attributes = %q, want it to hold %q: match.routes selects policies by it", ep.GetRequestAttributes(), extproc.AttributeRoute))
	}
	if ep.GetMessageTimeout() == nil {
		errs = append(errs, errors.New("message_timeout must be set, and its choice explained"))
	} else if d := ep.GetMessageTimeout().AsDuration(); d <= 0 || d > time.Second {
		errs = append(errs, fmt.Errorf("message_timeout = %v, want a positive duration of at most 1s: corsproc decides in microseconds, and every request may wait this long twice", d))
	}
	if !ep.GetFailureModeAllow() {
		errs = append(errs, errors.New("failure_mode_allow must be true: failing open is safe for CORS, failing closed turns a corsproc outage into a site outage"))
	}
	if ep.GetObservabilityMode() {
		errs = append(errs, errors.New("observability_mode must be off: Envoy would ignore corsproc's answers"))
	}
	pm := ep.GetProcessingMode()
	want := &extprocfilterv3.ProcessingMode{
		RequestHeaderMode:   extprocfilterv3.ProcessingMode_SEND,
		ResponseHeaderMode:  extprocfilterv3.ProcessingMode_SEND,
		RequestBodyMode:     extprocfilterv3.ProcessingMode_NONE,
		ResponseBodyMode:    extprocfilterv3.ProcessingMode_NONE,
		RequestTrailerMode:  extprocfilterv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocfilterv3.ProcessingMode_SKIP,
	}
	if !proto.Equal(pm, want) {
		errs = append(errs, fmt.Errorf("processing_mode = {%v}, want {%v}: headers SEND, bodies NONE, trailers SKIP", pm, want))
	}
	return errs
}

// MetadataPolicy is the gRPC initial metadata key through which a route
// names the corsproc policy that governs it (defined in internal/extproc).
const MetadataPolicy = extproc.MetadataPolicy

// PolicyBinding is what one ExtProcPerRoute in a config says in
// overrides.grpc_initial_metadata under MetadataPolicy.
type PolicyBinding struct {
	Path  string   // the ExtProcPerRoute's path in the config
	Names []string // every value given; corsproc wants exactly one
}

// PolicyBindings returns the policy bindings of nodes (from Walk or
// ValidateTree), in config order.
func PolicyBindings(nodes []Node) []PolicyBinding {
	var out []PolicyBinding
	for _, n := range nodes {
		pr, ok := n.Msg.(*extprocfilterv3.ExtProcPerRoute)
		if !ok {
			continue
		}
		var names []string
		for _, hv := range pr.GetOverrides().GetGrpcInitialMetadata() {
			if hv.GetKey() == MetadataPolicy {
				v := hv.GetValue()
				if v == "" {
					v = string(hv.GetRawValue())
				}
				names = append(names, v)
			}
		}
		if len(names) > 0 {
			out = append(out, PolicyBinding{Path: displayPath(n.Path), Names: names})
		}
	}
	return out
}

// UnknownPolicyErrors returns an error for each binding that names a policy
// not in policies, or gives several values: corsproc governs the requests
// of such a route and allows no CORS on them (preflights get 403, the
// upstream's CORS headers are removed; docs/policy.md, "Which policy
// governs a request").
func UnknownPolicyErrors(bindings []PolicyBinding, policies []string) []error {
	var errs []error
	for _, b := range bindings {
		switch {
		case len(b.Names) > 1:
			errs = append(errs, fmt.Errorf("%s: %s given %d times (%q): corsproc treats several values as an unknown policy and allows no CORS on the route", b.Path, MetadataPolicy, len(b.Names), b.Names))
		case !slices.Contains(policies, b.Names[0]):
			errs = append(errs, fmt.Errorf("%s: %s %q names no policy of the set (%s): corsproc would allow no CORS on the route (preflights 403, the upstream's CORS headers removed)", b.Path, MetadataPolicy, b.Names[0], strings.Join(policies, ", ")))
		}
	}
	return errs
}

// singleMessageHeaders are the response headers the header_mutation filter
// of single-message mode writes, each from its key of the corsproc dynamic
// metadata namespace (docs/envoy.md, "Single-message mode"), Vary last and
// appended.
var singleMessageHeaders = []struct{ header, key string }{
	{"access-control-allow-origin", extproc.KeyACAO},
	{"access-control-allow-credentials", extproc.KeyACAC},
	{"access-control-expose-headers", extproc.KeyACEH},
	{"access-control-allow-methods", extproc.KeyACAM},
	{"access-control-allow-headers", extproc.KeyACAH},
	{"access-control-max-age", extproc.KeyACMA},
	{"access-control-allow-private-network", extproc.KeyACAPN},
	{"vary", extproc.KeyVary},
}

// SingleMessageFilters returns the ext_proc filter and the header_mutation
// filter among nodes (as Walk returns them), the last of each, nil for one
// there is none of: the arguments of SingleMessageErrors, and what the
// emulator's fromconfig reads.
func SingleMessageFilters(nodes []Node) (*extprocfilterv3.ExternalProcessor, *headermutationv3.HeaderMutation) {
	var ep *extprocfilterv3.ExternalProcessor
	var hm *headermutationv3.HeaderMutation
	for _, n := range nodes {
		switch m := n.Msg.(type) {
		case *extprocfilterv3.ExternalProcessor:
			ep = m
		case *headermutationv3.HeaderMutation:
			hm = m
		}
	}
	return ep, hm
}

// DeclaredResponseMode returns the values the ext_proc filter's
// grpc_service.initial_metadata gives extproc.MetadataResponseHeaders: the
// mode every stream of the filter declares, unless a route overrides it.
func DeclaredResponseMode(ep *extprocfilterv3.ExternalProcessor) []string {
	var out []string
	for _, hv := range ep.GetGrpcService().GetInitialMetadata() {
		if hv.GetKey() == extproc.MetadataResponseHeaders {
			v := hv.GetValue()
			if v == "" {
				v = string(hv.GetRawValue())
			}
			out = append(out, v)
		}
	}
	return out
}

// SingleMessageErrors checks the single-message wiring of an ext_proc
// filter and the header_mutation filter that follows it (nil when there is
// none): the mode declared once in grpc_service.initial_metadata, the
// corsproc namespace in metadata_options.receiving_namespaces.untyped, and
// response mutations that remove every CORS header corsproc manages before
// writing each one from its metadata key, replacing (Vary appended), with
// no keep_empty_value, and nothing Envoy before 1.36 refuses
// (remove_on_match).
func SingleMessageErrors(ep *extprocfilterv3.ExternalProcessor, hm *headermutationv3.HeaderMutation) []error {
	var errs []error
	if got := DeclaredResponseMode(ep); len(got) != 1 || got[0] != extproc.ResponseHeadersDynamicMetadata {
		errs = append(errs, fmt.Errorf("grpc_service.initial_metadata gives %s %q, want it once, %q: corsproc answers in single-message mode only on streams that declare it", extproc.MetadataResponseHeaders, got, extproc.ResponseHeadersDynamicMetadata))
	}
	if !slices.Contains(ep.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(), extproc.DynamicMetadataNamespace) {
		errs = append(errs, fmt.Errorf("metadata_options.receiving_namespaces.untyped = %q, want it to hold %q: Envoy drops the metadata of any other namespace silently, and every response would lose its CORS headers", ep.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(), extproc.DynamicMetadataNamespace))
	}
	if !ep.GetAllowModeOverride() {
		errs = append(errs, errors.New("allow_mode_override must be true: corsproc skips the response phase with mode_override"))
	}
	if hm == nil {
		return append(errs, errors.New("no envoy.filters.http.header_mutation filter directly after ext_proc: nothing writes corsproc's headers from the metadata"))
	}
	removed := map[string]bool{}
	written := map[string]bool{}
	for i, m := range hm.GetMutations().GetResponseMutations() {
		where := fmt.Sprintf("header_mutation response_mutations[%d]", i)
		switch a := m.GetAction().(type) {
		case *commonmutationv3.HeaderMutation_Remove:
			name := strings.ToLower(a.Remove)
			if written[name] {
				errs = append(errs, fmt.Errorf("%s removes %s after writing it: mutations run in order", where, name))
			}
			removed[name] = true
		case *commonmutationv3.HeaderMutation_Append:
			h := a.Append.GetHeader()
			name := strings.ToLower(h.GetKey())
			idx := slices.IndexFunc(singleMessageHeaders, func(s struct{ header, key string }) bool { return s.header == name })
			key := extproc.KeyReason
			switch {
			case idx >= 0:
				key = singleMessageHeaders[idx].key
			case name != "x-corsproc-reason":
				continue
			}
			want := "%DYNAMIC_METADATA(" + extproc.DynamicMetadataNamespace + ":" + key + ")%"
			action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			if name == "vary" {
				action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
			switch {
			case h.GetValue() != want:
				errs = append(errs, fmt.Errorf("%s writes %s = %q, want %q", where, name, h.GetValue(), want))
			case a.Append.GetAppendAction() != action:
				errs = append(errs, fmt.Errorf("%s writes %s with append_action %v, want %v", where, name, a.Append.GetAppendAction(), action))
			case a.Append.GetKeepEmptyValue():
				errs = append(errs, fmt.Errorf("%s writes %s with keep_empty_value: an absent key must leave the header out", where, name))
			case written[name]:
				errs = append(errs, fmt.Errorf("%s writes %s a second time", where, name))
			}
			written[name] = true
		default:
			errs = append(errs, fmt.Errorf("%s: %T is not supported before Envoy 1.36 (remove_on_match) or not a removal or an append", where, a))
		}
	}
	for _, h := range singleMessageHeaders {
		if h.header != "vary" && !removed[h.header] {
			errs = append(errs, fmt.Errorf("header_mutation does not remove %s: the upstream's would reach the browser beside or instead of corsproc's", h.header))
		}
		if !written[h.header] {
			errs = append(errs, fmt.Errorf("header_mutation does not write %s from %%DYNAMIC_METADATA(%s:%s)%%", h.header, extproc.DynamicMetadataNamespace, h.key))
		}
	}
	return errs
}
