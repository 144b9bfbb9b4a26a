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
