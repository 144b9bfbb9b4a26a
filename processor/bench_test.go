package processor

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/metadata"
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
		want int      // responses
		md   []string // stream metadata, key value pairs
	}{
		{"case=actual_allowed", []*extprocv3.ProcessingRequest{get("api.example.com", o).message(), defaultUpstream()}, 2, nil},
		{"case=preflight", []*extprocv3.ProcessingRequest{
			preflight("api.example.com", o, "PUT", acrhH("content-type, x-requested-with")).message()}, 1, nil},
		{"case=non_cors", []*extprocv3.ProcessingRequest{get("api.example.com", "").message(), defaultUpstream()}, 2, nil},
		{"case=ungoverned", []*extprocv3.ProcessingRequest{get("other.example.com", o).message(), defaultUpstream()}, 2, nil},

		// Single-message mode (docs/envoy.md): one answer, with metadata.
		{"case=actual_allowed/mode=single_message", []*extprocv3.ProcessingRequest{get("api.example.com", o).message()}, 1, singleMD},
		{"case=actual_refused/mode=single_message", []*extprocv3.ProcessingRequest{get("api.example.com", "https://evil.example.net").message()}, 1, singleMD},
		{"case=preflight/mode=single_message", []*extprocv3.ProcessingRequest{
			preflight("api.example.com", o, "PUT", acrhH("content-type, x-requested-with")).message()}, 1, singleMD},

		// Hostile requests, with the header bounds as shipped: their cost
		// must stay bounded whatever their size.
		{"case=adversarial_headers_5000", []*extprocv3.ProcessingRequest{get("api.example.com", o, junk(5000)...).message(), defaultUpstream()}, 2, nil},
		{"case=adversarial_header_1mib", []*extprocv3.ProcessingRequest{
			get("api.example.com", o, [2]string{"cookie", strings.Repeat("a", 1<<20)}).message(), defaultUpstream()}, 2, nil},
		{"case=adversarial_origin_1mib", []*extprocv3.ProcessingRequest{
			get("api.example.com", "https://"+strings.Repeat("a", 1<<20)+".example.com").message(), defaultUpstream()}, 2, nil},
		{"case=adversarial_acrh_lines_10000", []*extprocv3.ProcessingRequest{
			preflight("api.example.com", o, "PUT", slices.Repeat([][2]string{acrhH("content-type")}, 10000)...).message()}, 1, nil},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			srv := New(set, Options{Registerer: prometheus.NewRegistry()})
			ctx := b.Context()
			if c.md != nil {
				ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(c.md...))
			}
			fs := &fakeStream{t: b, ctx: ctx, in: c.msgs, Lax: true}
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

// junk is n request headers a hostile client adds.
func junk(n int) [][2]string {
	out := make([][2]string, n)
	for i := range out {
		out[i] = [2]string{fmt.Sprintf("x-junk-%d", i), "v"}
	}
	return out
}
