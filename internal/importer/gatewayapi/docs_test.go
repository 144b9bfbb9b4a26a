package gatewayapi

import (
	"os"
	"testing"

	"github.com/corsproc/corsproc/internal/importer/kubecors"
)

// TestGuide runs the Gateway API example of docs/migrating-istio-gateway-api.md:
// the guide shows exactly the policy file, the warnings and the audit
// report the importer gives for its HTTPRoutes and SecurityPolicy (-update rewrites
// them).
func TestGuide(t *testing.T) {
	guide(t, "gateway-api", "routes.yaml", false)
}

func guide(t *testing.T, source, file string, incomplete bool) {
	t.Helper()
	const path = "../../../docs/migrating-istio-gateway-api.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	input, _, _, ok := kubecors.GuideBlock(doc, source+" "+file)
	if !ok {
		t.Fatalf("the guide lost its %s example", source)
	}
	res := importText(t, file, input)
	if res.Incomplete() != incomplete {
		t.Errorf("import exits 1: %t; the guide says %t", res.Incomplete(), incomplete)
	}
	for _, b := range []struct{ name, got string }{
		{source + " import", string(res.YAML)},
		{source + " warnings", kubecors.ImportReport(res)},
		{source + " audit", kubecors.AuditReport(res)},
	} {
		want, start, end, ok := kubecors.GuideBlock(doc, b.name)
		if !ok {
			t.Fatalf("the guide has no block <!-- %s -->", b.name)
		}
		if *update {
			doc = doc[:start] + b.got + doc[end:]
			continue
		}
		if want != b.got {
			t.Errorf("the guide's %q differs from the importer's:\n--- guide\n%s--- importer\n%s", b.name, want, b.got)
		}
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
