// Package fromconfig configures the Envoy emulator from Envoy's own config
// files, so that the tests run what a shipped config says rather than a
// copy of it. It is apart from package emulator, which corsproc dev and the
// bench module build, so that they need not build envoy/configcheck.
package fromconfig

import (
	"fmt"
	"os"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/common/matching/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/matcher/action/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/corsproc/corsproc/envoy/configcheck"
	"github.com/corsproc/corsproc/envoy/emulator"
)

// SingleMessageSettings reads an Envoy bootstrap in YAML, such as
// envoy/envoy-single-message.yaml, and returns the emulator.Config change that gives
// the emulator the single-message settings of its ext_proc and
// header_mutation filters as the file spells them (docs/envoy.md,
// "Single-message mode"): the gRPC initial metadata that declares the mode,
// the receiving namespaces, allow_mode_override, and the header_mutation
// filter's response mutations. Routes, matchers and the rest are left to
// the caller. A mutation the emulator does not model is an error.
func SingleMessageSettings(bootstrapYAML []byte) (func(*emulator.Config), error) {
	var bs bootstrapv3.Bootstrap
	if err := configcheck.UnmarshalYAML(bootstrapYAML, &bs); err != nil {
		return nil, err
	}
	nodes, err := configcheck.Walk(&bs)
	if err != nil {
		return nil, err
	}
	ep, hm := configcheck.SingleMessageFilters(nodes)
	if ep == nil || hm == nil {
		return nil, fmt.Errorf("no ext_proc or no header_mutation filter")
	}
	var md []emulator.Metadata
	for _, hv := range ep.GetGrpcService().GetInitialMetadata() {
		md = append(md, emulator.Metadata{Key: hv.GetKey(), Value: hv.GetValue()})
	}
	mut := &emulator.HeaderMutation{}
	for _, m := range hm.GetMutations().GetResponseMutations() {
		switch {
		case m.GetRemove() != "":
			mut.ResponseMutations = append(mut.ResponseMutations, emulator.ResponseMutation{Remove: m.GetRemove()})
		case m.GetAppend() != nil:
			a := m.GetAppend()
			appendAction := a.GetAppendAction()
			if a.GetAppend() != nil {
				// The deprecated append BoolValue decides, and with
				// append_action also set the config is refused
				// (Router::HeadersToAddEntry's constructor,
				// source/common/router/header_parser.cc, every
				// release corsproc supports).
				if appendAction != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
					return nil, fmt.Errorf("header_mutation: %s: both append and append_action are set, which Envoy refuses", a.GetHeader().GetKey())
				}
				if !a.GetAppend().GetValue() {
					appendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
				}
			}
			var action emulator.AppendAction
			switch appendAction {
			case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
				action = emulator.AppendIfExistsOrAdd
			case corev3.HeaderValueOption_ADD_IF_ABSENT:
				action = emulator.AddIfAbsent
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
				action = emulator.OverwriteIfExistsOrAdd
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
				action = emulator.OverwriteIfExists
			}
			mut.ResponseMutations = append(mut.ResponseMutations, emulator.ResponseMutation{Append: &emulator.HeaderAppend{
				Key: a.GetHeader().GetKey(), Value: a.GetHeader().GetValue(), Action: action, KeepEmptyValue: a.GetKeepEmptyValue(),
			}})
		default:
			return nil, fmt.Errorf("header_mutation holds a mutation the emulator does not model: %v", m)
		}
	}
	namespaces := ep.GetMetadataOptions().GetReceivingNamespaces().GetUntyped()
	allow := ep.GetAllowModeOverride()
	return func(c *emulator.Config) {
		c.GRPCServiceInitialMetadata = md
		c.ReceivingNamespaces = namespaces
		c.HeaderMutation = mut
		c.AllowModeOverride = allow
	}, nil
}

// SingleMessageFile is SingleMessageSettings of the bootstrap file at path.
func SingleMessageFile(path string) (func(*emulator.Config), error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	change, err := SingleMessageSettings(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return change, nil
}
