// Package loadgen drives ext_proc servers the way Envoy does: one gRPC
// stream per HTTP request, the request headers, the response headers unless
// the processor skipped them or answered immediately, then a half-close and a
// reset. It also builds the servers it compares (corsproc and a no-op
// ext_proc server) with a chosen set of gRPC server options, and runs them
// as child processes whose CPU time it reads from their own accounting.
package loadgen

import (
	"fmt"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/corsproc/corsproc/processor"
)

// PolicyYAML is the policy set corsproc enforces in the load tests: one
// policy bound to the route "storefront"; the route "static" is governed by
// none (no match, no default_policy).
const PolicyYAML = `policies:
  - name: storefront
    match:
      routes: [storefront]
    allowed_origins:
      - https://app.example.com
      - https://*.example.net
    allow_credentials: true
    expose_headers: [x-request-id]
`

// LargePolicyYAML is PolicyYAML with n-1 more policies, each bound to a
// route of its own and allowing origins of its own; gen changes the extra
// policies' origins, so that two generations are different sets that
// answer the scenarios alike.
func LargePolicyYAML(n, gen int) string {
	var b strings.Builder
	b.WriteString(PolicyYAML)
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  - name: p%d\n    match:\n      routes: [route-%d]\n    allowed_origins: [https://app%d-%d.example.com]\n", i, i, i, gen)
	}
	return b.String()
}

// Scenario is one kind of HTTP request going through Envoy.
type Scenario struct {
	Name   string
	Route  string // xds.route_name
	Method string
	Path   string
	Origin string // "" for none
	ACRM   string
	ACRH   string
	// Status is the upstream's response status.
	Status int
}

// Scenarios are the request kinds the load generator measures.
var Scenarios = []Scenario{
	{Name: "non_cors", Route: "storefront", Method: "GET", Path: "/shop/items?page=2", Status: 200},
	{Name: "cors_allowed", Route: "storefront", Method: "GET", Path: "/shop/items?page=2", Origin: "https://app.example.com", Status: 200},
	{Name: "cors_refused", Route: "storefront", Method: "GET", Path: "/shop/items?page=2", Origin: "https://evil.example.org", Status: 200},
	{Name: "preflight", Route: "storefront", Method: "OPTIONS", Path: "/shop/items?page=2", Origin: "https://app.example.com", ACRM: "PUT", ACRH: "content-type,x-csrftoken", Status: 200},
	{Name: "ungoverned", Route: "static", Method: "GET", Path: "/static/app.js", Origin: "https://app.example.com", Status: 200},
}

// ScenarioByName returns the scenario called name.
func ScenarioByName(name string) (Scenario, bool) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// hv is one header entry as Envoy 1.27 and later sends it: lower-case key,
// value in raw_value only.
func hv(k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }

// RequestMessage is the request_headers message Envoy sends for s: the
// pseudo-headers, then what Chrome sends for a fetch() from a page, the
// headers Envoy's connection manager adds, and the route name attribute.
func (s Scenario) RequestMessage() *extprocv3.ProcessingRequest {
	hs := []*corev3.HeaderValue{
		hv(":authority", "api.example.com"),
		hv(":path", s.Path),
		hv(":method", s.Method),
		hv(":scheme", "https"),
		hv("accept", "*/*"),
		hv("accept-encoding", "gzip, deflate, br, zstd"),
		hv("accept-language", "en-GB,en;q=0.9"),
	}
	if s.ACRH != "" {
		hs = append(hs, hv("access-control-request-headers", s.ACRH))
	}
	if s.ACRM != "" {
		hs = append(hs, hv("access-control-request-method", s.ACRM))
	}
	if s.Origin != "" {
		hs = append(hs, hv("origin", s.Origin))
	}
	hs = append(hs,
		hv("referer", "https://app.example.com/"),
		hv("sec-ch-ua", `"Chromium";v="131", "Not_A Brand";v="24"`),
		hv("sec-ch-ua-mobile", "?0"),
		hv("sec-ch-ua-platform", `"Linux"`),
		hv("sec-fetch-dest", "empty"),
		hv("sec-fetch-mode", "cors"),
		hv("sec-fetch-site", "same-site"),
		hv("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
		hv("x-forwarded-proto", "https"),
		hv("x-request-id", "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"),
	)
	msg := &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers:     &corev3.HeaderMap{Headers: hs},
			EndOfStream: true,
		}},
	}
	if s.Route != "" {
		// request_attributes: [xds.route_name], on the first message of
		// the request direction only.
		msg.Attributes = map[string]*structpb.Struct{processor.AttributesKey: {
			Fields: map[string]*structpb.Value{processor.AttributeRoute: structpb.NewStringValue(s.Route)},
		}}
	}
	return msg
}

// ResponseMessage is the response_headers message Envoy sends for the
// upstream's answer to s.
func (s Scenario) ResponseMessage() *extprocv3.ProcessingRequest {
	status := "200"
	if s.Status != 0 {
		status = strconv.Itoa(s.Status)
	}
	hs := []*corev3.HeaderValue{
		hv(":status", status),
		hv("cache-control", "private, max-age=0"),
		hv("content-length", "1832"),
		hv("content-type", "application/json"),
		hv("date", "Sat, 21 Nov 2026 20:00:00 GMT"),
		hv("x-envoy-upstream-service-time", "3"),
	}
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: hs},
		}},
	}
}
