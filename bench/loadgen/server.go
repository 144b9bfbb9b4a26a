package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"
)

// Noop is the floor: an ext_proc server that answers every message with an
// empty CONTINUE of the matching type, and nothing else.
type Noop struct {
	extprocv3.UnimplementedExternalProcessorServer
}

// Process implements the ext_proc service.
func (Noop) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
		resp := &extprocv3.ProcessingResponse{}
		switch req.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			resp.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			resp.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_RequestBody:
			resp.Response = &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}
		case *extprocv3.ProcessingRequest_ResponseBody:
			resp.Response = &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}
		case *extprocv3.ProcessingRequest_RequestTrailers:
			resp.Response = &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			resp.Response = &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}
		default:
			return status.Error(codes.InvalidArgument, "unknown message")
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// The server options the load tests try, by name. A server's options are
// a '+'-joined list of these, e.g. "cmd+workers+window".
var serverOptionSets = map[string]func() []grpc.ServerOption{
	// stock: grpc.NewServer() with no option at all.
	"stock": func() []grpc.ServerOption { return nil },
	// cmd: the options corsproc serve had before the measured transport
	// settings (keepalive, MaxConcurrentStreams 1000, a 1 MiB receive limit).
	// What serve runs today is "shipped", below.
	"cmd": func() []grpc.ServerOption {
		return []grpc.ServerOption{
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
			grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
			grpc.MaxConcurrentStreams(1000),
			grpc.MaxRecvMsgSize(1 << 20),
		}
	},
	// workers: a fixed pool of GOMAXPROCS stream goroutines instead of one
	// new goroutine per stream (workersN: N of them). A stream that finds
	// every worker busy gets a new goroutine, as without the option.
	"workers": func() []grpc.ServerOption {
		return []grpc.ServerOption{grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0)))}
	},
	// window: static flow-control windows, which turns off grpc-go's BDP
	// estimator and the PING frames it sends to measure the bandwidth.
	"window": func() []grpc.ServerOption {
		return []grpc.ServerOption{grpc.StaticStreamWindowSize(1 << 20), grpc.StaticConnWindowSize(1 << 20)}
	},
	// sharedbuf: release the write buffer of idle connections.
	"sharedbuf": func() []grpc.ServerOption {
		return []grpc.ServerOption{grpc.SharedWriteBuffer(true)}
	},
	// smallbuf: 8 KiB read and write buffers instead of 32 KiB.
	"smallbuf": func() []grpc.ServerOption {
		return []grpc.ServerOption{grpc.ReadBufferSize(8 << 10), grpc.WriteBufferSize(8 << 10)}
	},
	// codec: processor.Codec, corsproc's hand-written decoder of Envoy's
	// header messages (and vtprotobuf marshalling with -tags vtprotobuf).
	"codec": func() []grpc.ServerOption { return []grpc.ServerOption{grpc.ForceServerCodecV2(processor.Codec{})} },
	// vt: marshal responses with go-control-plane's vtprotobuf code (build
	// with -tags vtprotobuf; without it this is the proto codec).
	"vt": func() []grpc.ServerOption { return []grpc.ServerOption{grpc.ForceServerCodecV2(VTCodec{})} },
}

// shipped names the options corsproc serve runs with,
// processor.Server.GRPCServerOptions, its TapHandle included, on a processor
// with serve's default idle timeout. It applies to the corsproc kind only.
const shipped = "shipped"

// OptionNames lists the known option set names.
func OptionNames() []string {
	out := []string{"workersN", "gogcN", shipped}
	for k := range serverOptionSets {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ServerOptions returns the options named by spec ("cmd+workers").
func ServerOptions(spec string) ([]grpc.ServerOption, error) {
	var opts []grpc.ServerOption
	for name := range strings.SplitSeq(spec, "+") {
		if n, ok := numberSuffix(name, "workers"); ok {
			// workersN: N stream workers.
			opts = append(opts, grpc.NumStreamWorkers(uint32(n)))
			continue
		}
		if _, ok := numberSuffix(name, "gogc"); ok {
			// gogcN: GOGC=N, applied by ApplyRuntime in the child.
			continue
		}
		if name == shipped {
			continue // NewServer adds them: they need the processor
		}
		f, ok := serverOptionSets[name]
		if !ok {
			return nil, fmt.Errorf("unknown server option set %q (known: %s)", name, strings.Join(OptionNames(), ", "))
		}
		opts = append(opts, f()...)
	}
	return opts, nil
}

// numberSuffix parses names like "workers64".
func numberSuffix(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0
}

// ApplyRuntime applies the runtime settings of spec (gogcN) to this
// process.
func ApplyRuntime(spec string) {
	for name := range strings.SplitSeq(spec, "+") {
		if n, ok := numberSuffix(name, "gogc"); ok {
			debug.SetGCPercent(n)
		}
	}
}

// NewServer returns a gRPC server of kind "corsproc" (enforcing
// PolicyYAML) or "noop", with the options named by spec.
func NewServer(kind, spec string) (*grpc.Server, error) {
	opts, err := ServerOptions(spec)
	if err != nil {
		return nil, err
	}
	isShipped := slices.Contains(strings.Split(spec, "+"), shipped)
	var svc extprocv3.ExternalProcessorServer
	switch kind {
	case "corsproc":
		set, err := policyfile.Parse("loadgen.yaml", []byte(PolicyYAML))
		if err != nil {
			return nil, err
		}
		// As serve does: metrics on a private registry, logs at info.
		popts := processor.Options{Registerer: prometheus.NewRegistry()}
		if isShipped {
			popts.IdleTimeout = processor.DefaultIdleTimeout
		}
		proc := processor.New(set, popts)
		if isShipped {
			opts = append(opts, proc.GRPCServerOptions()...)
		}
		svc = proc
	case "noop":
		if isShipped {
			return nil, fmt.Errorf("server option set %q applies to corsproc only", shipped)
		}
		svc = Noop{}
	default:
		return nil, fmt.Errorf("unknown server kind %q: want corsproc or noop", kind)
	}
	gs := grpc.NewServer(opts...)
	extprocv3.RegisterExternalProcessorServer(gs, svc)
	return gs, nil
}
