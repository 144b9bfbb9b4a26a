package processor

import (
	"net/url"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// FuzzProcess feeds arbitrary request header values through a whole stream:
// whatever the bytes, every message gets exactly one well-formed response
// of the matching type (the fake stream checks it as Envoy would), and
// Process neither panics nor fails. A stream whose metadata names a policy
// (one of the set, enforced, or an unknown one) is governed: corsproc
// answers it or strips every CORS header from the upstream's response
// (checkGoverned). Seeded from the behaviour tables.
func FuzzProcess(f *testing.F) {
	set := mustParse(f, semanticsYAML)
	srv := New(set, Options{})
	seeds := []envoyRequest{
		get("api.example.com", "https://app.example.com"),
		get("public.example.com", ""),
		preflight("api.example.com", "https://app.example.com", "PUT", acrhH("content-type, x-requested-with")),
		preflight("star.example.com", "https://app.example.com", "purge", acrhH("X-A,,\tx-b "), acrpnH("true")),
		preflight("fwd.example.com", "https://evil.com", "PUT"),
		preflight("shadow.example.com", "https://app.example.com/", "PUT"),
	}
	for _, s := range seeds {
		m := s.message()
		v := map[string]string{}
		for _, h := range m.GetRequestHeaders().GetHeaders().GetHeaders() {
			v[h.Key] = string(h.RawValue)
		}
		f.Add(v[":method"], v["origin"], v["access-control-request-method"], v["access-control-request-headers"],
			v["access-control-request-private-network"], v[":authority"], v[":path"], "", false, false)
	}
	f.Add("OPTIONS", "https://app.example.com", "PUT", "\xff", "true", "api.example.com\x00", "/\xfe", "web", true, true)
	f.Add("OPTIONS", "https://evil.com", "PUT", "", "", "api.example.com", "/", "fwd", false, false)
	f.Add("OPTIONS", "https://app.example.com", "PUT", "", "", "api.example.com", "/", "nope", false, false)
	f.Add("GET", "https://app.example.com", "", "", "", "api.example.com", "/", "gone", false, false)
	f.Add("GET", "", "", "", "", "api.example.com", "/", "gone", false, false)
	f.Fuzz(func(t *testing.T, method, origin, acrm, acrh, acrpn, authority, path, policyName string, dup, legacy bool) {
		hv := func(k, v string) *corev3.HeaderValue {
			if legacy {
				// value is a proto string: only valid UTF-8 survives gRPC.
				return &corev3.HeaderValue{Key: k, Value: v}
			}
			return &corev3.HeaderValue{Key: k, RawValue: []byte(v)}
		}
		hs := []*corev3.HeaderValue{hv(":method", method), hv(":authority", authority), hv(":path", path),
			hv("origin", origin), hv("access-control-request-method", acrm), hv("access-control-request-headers", acrh),
			hv("access-control-request-private-network", acrpn)}
		if dup {
			hs = append(hs, hv("origin", origin), hv("access-control-request-method", acrm), hv("access-control-request-headers", acrh))
		}
		req := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: hs}, EndOfStream: true}}}
		var md []string
		if policyName != "" {
			md = []string{policyName}
		}
		fs := newFakeStream(t, md, req, defaultUpstream())
		if err := srv.Process(fs); err != nil {
			t.Fatalf("Process: %v", err)
		}
		resps := fs.responses()
		if n := len(resps); n == 0 || n > 2 {
			t.Fatalf("%d responses", n)
		}
		for _, r := range resps {
			checkCORSInvariants(t, r, origin, dup)
		}
		if policyName != "" && policyName != "shadow" {
			checkGoverned(t, fs)
		}
	})
}

// checkCORSInvariants asserts on one response what must hold whatever the
// request: ACAO is "*" or the request's own origin, and then a well-formed
// serialized origin sent once; never ACAO "*" with ACAC "true".
func checkCORSInvariants(t *testing.T, r *extprocv3.ProcessingResponse, origin string, dup bool) {
	t.Helper()
	var set []*corev3.HeaderValueOption
	if ir := r.GetImmediateResponse(); ir != nil {
		set = ir.GetHeaders().GetSetHeaders()
	} else if hr := r.GetResponseHeaders(); hr != nil {
		set = hr.GetResponse().GetHeaderMutation().GetSetHeaders()
	}
	var acao, acac string
	for _, o := range set {
		switch o.GetHeader().GetKey() {
		case "access-control-allow-origin":
			acao = string(o.GetHeader().GetRawValue())
		case "access-control-allow-credentials":
			acac = string(o.GetHeader().GetRawValue())
		}
	}
	if acao == "*" && acac == "true" {
		t.Fatal("ACAO * with ACAC true")
	}
	if acao == "" || acao == "*" {
		return
	}
	if acao != origin || dup {
		t.Fatalf("ACAO %q for request origin %q (sent twice: %v)", acao, origin, dup)
	}
	u, err := url.Parse(origin)
	if err != nil || u.Scheme+"://"+u.Host != origin || origin != strings.ToLower(origin) || u.Port() == "443" {
		t.Fatalf("ACAO for %q, which is not a serialized origin", origin)
	}
}
