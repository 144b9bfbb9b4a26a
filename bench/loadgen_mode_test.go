package bench

import (
	"context"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/corsproc/corsproc/bench/loadgen"
	"github.com/corsproc/corsproc/processor"
)

// TestLoadgenModes drives corsproc (with the Codec serve installs) and the
// no-op server through loadgen's Envoy-shaped client in both modes: in
// single-message mode every scenario that reaches corsproc costs it one
// message, and the Access-Control-Allow-Origin a browser gets, read from
// the dynamic metadata, is the one the response-phase mode writes; the
// no-op server costs two messages whatever the mode.
func TestLoadgenModes(t *testing.T) {
	corsproc := extprocv3.NewExternalProcessorClient(serveInMemory(t, newCorsproc(t, loadgen.PolicyYAML), processor.New(nil, processor.Options{}).GRPCServerOptions()...))
	noop := extprocv3.NewExternalProcessorClient(serveInMemory(t, loadgen.Noop{}))
	single, err := loadgen.ModeContext(context.Background(), loadgen.ModeSingleMessage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadgen.ModeContext(context.Background(), "single_message"); err == nil {
		t.Error("an unknown mode is accepted")
	}
	wantSingle := map[string]int{"non_cors": 1, "cors_allowed": 1, "cors_refused": 1, "preflight": 1, "ungoverned": 1}
	for _, sc := range loadgen.Scenarios {
		req := loadgen.Prepare(sc)
		two, err := loadgen.Do(context.Background(), corsproc, req)
		if err != nil {
			t.Fatalf("%s: %v", sc.Name, err)
		}
		one, err := loadgen.Do(single, corsproc, req)
		if err != nil {
			t.Fatalf("%s, single-message: %v", sc.Name, err)
		}
		if one.Messages != wantSingle[sc.Name] {
			t.Errorf("%s, single-message: %d messages, want %d", sc.Name, one.Messages, wantSingle[sc.Name])
		}
		if one.ACAO != two.ACAO {
			t.Errorf("%s: Access-Control-Allow-Origin %q in single-message mode, %q in the response phase", sc.Name, one.ACAO, two.ACAO)
		}
		floor, err := loadgen.Do(single, noop, req)
		if err != nil || floor.Messages != 2 {
			t.Errorf("%s: the no-op server in single-message mode: %d messages (%v), want 2", sc.Name, floor.Messages, err)
		}
	}
}
