package fromconfig

import (
	"os"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/envoy/emulator"
)

// SingleMessageSettings takes the shipped config's single-message settings
// as the file spells them, and refuses what the emulator does not model.
func TestSingleMessageSettings(t *testing.T) {
	data, err := os.ReadFile("../../envoy-single-message.yaml")
	if err != nil {
		t.Fatal(err)
	}
	change, err := SingleMessageSettings(data)
	if err != nil {
		t.Fatal(err)
	}
	var c emulator.Config
	change(&c)
	if len(c.GRPCServiceInitialMetadata) != 1 || c.GRPCServiceInitialMetadata[0].Key != "x-corsproc-response-headers" ||
		len(c.ReceivingNamespaces) != 1 || c.ReceivingNamespaces[0] != "corsproc" || !c.AllowModeOverride ||
		c.HeaderMutation == nil || len(c.HeaderMutation.ResponseMutations) < 8 {
		t.Errorf("settings %+v; want the declaration, the corsproc namespace, allow_mode_override and the mutations", c)
	}
	bad := strings.Replace(string(data), "- remove: access-control-max-age", "- remove_on_match: {key_matcher: {prefix: access-control-}}", 1)
	if bad == string(data) {
		t.Fatal("the shipped config has no remove of access-control-max-age: update this test")
	}
	if _, err := SingleMessageSettings([]byte(bad)); err == nil {
		t.Error("a remove_on_match was taken; the emulator does not model it")
	}
}

// The deprecated append BoolValue of a header_mutation append decides
// between adding and replacing, as in Envoy's Router::HeadersToAddEntry,
// and beside an append_action other than the default it is refused.
func TestSingleMessageSettingsAppendField(t *testing.T) {
	data, err := os.ReadFile("../../envoy-single-message.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const vary = `header: {key: vary, value: "%DYNAMIC_METADATA(corsproc:vary)%"}
                              append_action: APPEND_IF_EXISTS_OR_ADD`
	if !strings.Contains(string(data), vary) {
		t.Fatal("the shipped config does not append vary: update this test")
	}
	varyAction := func(yaml string) (emulator.AppendAction, error) {
		change, err := SingleMessageSettings([]byte(yaml))
		if err != nil {
			return 0, err
		}
		var c emulator.Config
		change(&c)
		for _, m := range c.HeaderMutation.ResponseMutations {
			if m.Append != nil && m.Append.Key == "vary" {
				return m.Append.Action, nil
			}
		}
		t.Fatal("no append of vary")
		return 0, nil
	}
	for _, c := range []struct {
		name, with string
		want       emulator.AppendAction
	}{
		{"append false", "append: false", emulator.OverwriteIfExistsOrAdd},
		{"append true", "append: true", emulator.AppendIfExistsOrAdd},
	} {
		got, err := varyAction(strings.Replace(string(data), vary, `header: {key: vary, value: "%DYNAMIC_METADATA(corsproc:vary)%"}
                              `+c.with, 1))
		if err != nil || got != c.want {
			t.Errorf("%s: action %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	both := strings.Replace(string(data), vary, `header: {key: vary, value: "%DYNAMIC_METADATA(corsproc:vary)%"}
                              append: true
                              append_action: OVERWRITE_IF_EXISTS_OR_ADD`, 1)
	if _, err := varyAction(both); err == nil {
		t.Error("append and append_action OVERWRITE_IF_EXISTS_OR_ADD together were taken; Envoy refuses them")
	}
}
