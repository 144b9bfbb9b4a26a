package processor

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
)

// CORSPROC_WRITE_FUZZ_CORPUS=1 go test -run 'TestSemantics' ./processor/
// writes every behaviour table row as a seed of FuzzStream into
// testdata/fuzz/FuzzStream, in Go's corpus format, encoded for gen.
var writeCorpus = os.Getenv("CORSPROC_WRITE_FUZZ_CORPUS") == "1"

// recordStreamSeed writes the stream (metadata, messages) as a FuzzStream
// seed named after the test, when writeCorpus is set.
func recordStreamSeed(t *testing.T, md []string, msgs ...*extprocv3.ProcessingRequest) {
	if !writeCorpus {
		return
	}
	t.Helper()
	data, ok := encodeStream(md, msgs)
	if !ok {
		t.Logf("%s: stream too large for a FuzzStream seed", t.Name())
		return
	}
	name := "table-" + regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	dir := filepath.Join("testdata", "fuzz", "FuzzStream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// encodeStream encodes a stream as the bytes gen reads back into it: each
// message as raw protobuf (message kind 8).
func encodeStream(md []string, msgs []*extprocv3.ProcessingRequest) ([]byte, bool) {
	if len(md) > 2 || len(msgs) == 0 || len(msgs) > 8 {
		return nil, false
	}
	out := []byte{byte(len(md))}
	for _, v := range md {
		if i := slices.Index(fuzzPolicies, v); i >= 0 {
			out = append(out, byte(i))
			continue
		}
		if len(v) > 64 {
			return nil, false
		}
		out = append(out, byte(len(fuzzPolicies)), byte(len(v)))
		out = append(out, v...)
	}
	out = append(out, byte(len(msgs)-1))
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil || len(b) > 255 {
			return nil, false
		}
		out = append(out, 8, byte(len(b)))
		out = append(out, b...)
	}
	return append(out, 1), true // 1: no TapHandle context
}

// The encoding round-trips through gen.
func TestEncodeStream(t *testing.T) {
	msgs := []*extprocv3.ProcessingRequest{get("api.example.com", "https://app.example.com").message(), defaultUpstream()}
	data, ok := encodeStream([]string{"web", "x"}, msgs)
	if !ok {
		t.Fatal("not encoded")
	}
	md, got := (&gen{b: data}).stream()
	if !slices.Equal(md, []string{"web", "x"}) || len(got) != 2 || !proto.Equal(got[0], msgs[0]) || !proto.Equal(got[1], msgs[1]) {
		t.Fatalf("decoded %q %v", md, got)
	}
}
