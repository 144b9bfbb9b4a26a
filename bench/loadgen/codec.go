package loadgen

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/corsproc/corsproc/processor"
)

// vtMarshaler is what go-control-plane's *_vtproto.pb.go files add to its
// messages when built with -tags vtprotobuf. They hold marshalling code
// only (MarshalVTStrict, SizeVT): there is no UnmarshalVT.
type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVTStrict(dAtA []byte) (int, error)
}

// HasVT reports whether this binary was built with -tags vtprotobuf, so that
// VTCodec actually uses the vtprotobuf code.
func HasVT() bool {
	_, ok := any(&extprocv3.ProcessingResponse{}).(vtMarshaler)
	return ok
}

// VTCodec is the "proto" gRPC codec with marshalling done by vtprotobuf's
// generated code where the message has it, and by the standard codec
// otherwise (and for every unmarshal).
type VTCodec struct{}

var protoCodec = encoding.GetCodecV2(proto.Name)

// Marshal implements encoding.CodecV2, as processor.Codec marshals.
func (VTCodec) Marshal(v any) (mem.BufferSlice, error) { return processor.Codec{}.Marshal(v) }

// Unmarshal implements encoding.CodecV2.
func (VTCodec) Unmarshal(data mem.BufferSlice, v any) error { return protoCodec.Unmarshal(data, v) }

// Name implements encoding.CodecV2.
func (VTCodec) Name() string { return proto.Name }
