package policyfile

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"
)

// TestFieldSetFits: the decoder records which fields a mapping wrote in a
// 64-bit set indexed by field; every message of the schema must fit.
func TestFieldSetFits(t *testing.T) {
	seen := map[protoreflect.FullName]bool{}
	var check func(md protoreflect.MessageDescriptor)
	check = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		if n := md.Fields().Len(); n > 64 {
			t.Errorf("%s has %d fields, more than a fieldSet holds", md.FullName(), n)
		}
		for i := range md.Fields().Len() {
			if fd := md.Fields().Get(i); fd.Message() != nil {
				check(fd.Message())
			}
		}
	}
	check((&corsprocv1.PolicyFile{}).ProtoReflect().Descriptor())
	if len(seen) < 3 {
		t.Fatalf("walked %d messages only", len(seen))
	}
}
