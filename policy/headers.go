package policy

// Header names, lower case as Envoy carries them. Every package of corsproc
// uses these constants rather than spelling the names again.
const (
	HeaderOrigin = "origin"
	HeaderVary   = "vary"

	HeaderACAO  = "access-control-allow-origin"
	HeaderACAC  = "access-control-allow-credentials"
	HeaderACAM  = "access-control-allow-methods"
	HeaderACAH  = "access-control-allow-headers"
	HeaderACEH  = "access-control-expose-headers"
	HeaderACMA  = "access-control-max-age"
	HeaderACAPN = "access-control-allow-private-network"

	HeaderACRM  = "access-control-request-method"
	HeaderACRH  = "access-control-request-headers"
	HeaderACRPN = "access-control-request-private-network"
)

// Vary values corsproc sends.
const (
	VaryOrigin    = "Origin"
	VaryPreflight = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
)

// managedHeaders are the CORS response headers corsproc owns on governed
// routes, every one the Fetch standard and Private Network Access define: it
// removes any the upstream set before adding its own, so a browser never
// sees two Access-Control-Allow-Origin values, nor an upstream's answer to
// what corsproc refused (docs/semantics.md, §7).
var managedHeaders = []string{HeaderACAO, HeaderACAC, HeaderACEH, HeaderACAM, HeaderACAH, HeaderACMA, HeaderACAPN}
