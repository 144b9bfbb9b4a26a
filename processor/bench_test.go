package processor

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkProcess measures the processor handling one Envoy stream, from
// the first Recv to the end, gRPC itself aside: the fake stream hands out
// pre-built Envoy-shaped messages and discards the responses.
func BenchmarkProcess(b *testing.B) {
	set := mustParse(b, semanticsYAML)
	const o = "https://app.example.com"
	cases := []struct {
		name string
		msgs []*extprocv3.ProcessingRequest
		want int // responses
	}{
		{"case=actual_allowed", []*extprocv3.ProcessingRequest{get("api.example.com", o).message(), defaultUpstream()}, 2},
		{"case=preflight", []*extprocv3.ProcessingRequest{
			preflight("api.example.com", o, "PUT", acrhH("content-type, x-requested-with")).message()}, 1},
		{"case=non_cors", []*extprocv3.ProcessingRequest{get("api.example.com", "").message(), defaultUpstream()}, 2},
		{"case=ungoverned", []*extprocv3.ProcessingRequest{get("other.example.com", o).message(), defaultUpstream()}, 2},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			srv := New(set, Options{Registerer: prometheus.NewRegistry()})
			fs := &fakeStream{t: b, ctx: b.Context(), in: c.msgs, Lax: true}
			if err := srv.Process(fs); err != nil || fs.sent != c.want {
				b.Fatalf("Process = %v after %d responses, want %d", err, fs.sent, c.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				fs.next, fs.closed = 0, false
				if err := srv.Process(fs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
