package istio

import (
	"testing"

	"github.com/corsproc/corsproc/internal/importer/importertest"
)

// TestGuide runs the Istio example of docs/migrating-istio-gateway-api.md:
// the guide shows exactly the policy file, the warnings and the audit
// report the importer gives for its VirtualService (-update rewrites
// them).
func TestGuide(t *testing.T) {
	importertest.Guide(t, imp, "istio", "storefront.yaml", true, *update)
}
