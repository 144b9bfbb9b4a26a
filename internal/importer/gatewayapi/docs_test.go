package gatewayapi

import (
	"testing"

	"github.com/corsproc/corsproc/internal/importer/importertest"
)

// TestGuide runs the Gateway API example of docs/migrating-istio-gateway-api.md:
// the guide shows exactly the policy file, the warnings and the audit
// report the importer gives for its HTTPRoutes and SecurityPolicy (-update rewrites
// them).
func TestGuide(t *testing.T) {
	importertest.Guide(t, imp, "gateway-api", "routes.yaml", false, *update)
}
