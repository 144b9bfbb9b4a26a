package processor

import (
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/corsproc/corsproc/policy"
)

// TestCodecMarshalMetadata checks that the hand-encoded dynamic metadata of
// single-message answers decodes to the message itself, that the message
// is left as it was, and that metadata it does not encode itself (other
// value kinds, strings that are not UTF-8) goes to the standard codec.
func TestCodecMarshalMetadata(t *testing.T) {
	hs := []policy.Header{
		{Name: policy.HeaderACAO, Value: "https://app.example.com"},
		{Name: policy.HeaderACAC, Value: "true"},
		{Name: policy.HeaderACEH, Value: "x-a, x-b"},
		{Name: policy.HeaderVary, Value: "Origin", Append: true},
	}
	nested, _ := structpb.NewStruct(map[string]any{"corsproc": map[string]any{"a": "b", "deep": map[string]any{"c": "d"}}, "other": map[string]any{}})
	withNumber, _ := structpb.NewStruct(map[string]any{"corsproc": map[string]any{"n": 1.5}})
	long := &extprocv3.ProcessingResponse{DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		"corsproc": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue(strings.Repeat("v", 300))}}),
	}}}
	cases := map[string]*extprocv3.ProcessingResponse{
		"metadata reply":      newMetadataReply(hs, ""),
		"with reason":         newMetadataReply(hs[3:], "origin https://evil.example is not allowed"),
		"immediate":           newImmediateReply(204, hs, DetailsPreflightAllowed, "", true),
		"nested":              {DynamicMetadata: nested},
		"number (fallback)":   {DynamicMetadata: withNumber},
		"long value":          long,
		"empty struct":        {DynamicMetadata: &structpb.Struct{}},
		"empty string values": {DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"corsproc": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"": structpb.NewStringValue("")}})}}},
	}
	for name, r := range cases {
		before := proto.Clone(r)
		bs, err := Codec{}.Marshal(r)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var back extprocv3.ProcessingResponse
		if err := proto.Unmarshal(bs.Materialize(), &back); err != nil {
			t.Errorf("%s: unmarshal: %v", name, err)
			continue
		}
		if !proto.Equal(&back, r) || !proto.Equal(r, before) {
			t.Errorf("%s: decodes to\n%v\nwant\n%v", name, &back, before)
		}
		if want, _ := proto.Marshal(r); len(want) != bs.Len() {
			t.Errorf("%s: %d bytes, proto.Marshal gives %d", name, bs.Len(), len(want))
		}
	}
	bad := &extprocv3.ProcessingResponse{DynamicMetadata: &structpb.Struct{Fields: map[string]*structpb.Value{"corsproc": structpb.NewStringValue("\xff")}}}
	if _, err := (Codec{}).Marshal(bad); err == nil {
		t.Error("a string that is not UTF-8 marshalled: proto.Marshal refuses it")
	}
	if r := newMetadataReply(hs, ""); !marshalledByHand(r) {
		t.Error("a single-message answer is not encoded by hand")
	}
}

func marshalledByHand(r *extprocv3.ProcessingResponse) bool {
	_, ok := marshalWithMetadata(r)
	return ok
}
