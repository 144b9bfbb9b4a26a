package policy

// Request holds the few facts of an HTTP request that CORS needs. The
// processor fills it from Envoy's request headers; explain and tests fill it
// by hand. Strings are used as given: Decide never modifies or retains them
// beyond the Decision it fills.
type Request struct {
	// Method is the :method pseudo-header.
	Method string
	// Origin is the value of the Origin header; "" when absent.
	Origin string
	// DuplicateOrigin is set when the request carried more than one Origin
	// header. Such a request matches no origin.
	DuplicateOrigin bool
	// ACRM is the Access-Control-Request-Method value; "" when absent.
	ACRM string
	// DuplicateACRM is set when the request carried more than one
	// Access-Control-Request-Method header. Such a preflight fails.
	DuplicateACRM bool
	// Truncated is set when the request's headers were not all inspected
	// (they exceed the processor's bounds): its Origin and preflight
	// headers are unknown, so CORS is refused, never allowed for what was
	// not read. The request is taken as a CORS request whose origin is
	// malformed, and an OPTIONS request as a preflight that fails.
	Truncated bool
	// ACRH holds every Access-Control-Request-Headers line, in order.
	ACRH []string
	// ACRPN is the Access-Control-Request-Private-Network value.
	ACRPN string
	// Host is the :authority pseudo-header (a port is ignored).
	Host string
	// Path is the :path pseudo-header; a query is ignored.
	Path string
	// Route is the Envoy route name (attribute xds.route_name); "" if absent.
	Route string
	// PolicyName is the x-corsproc-policy stream metadata; "" if absent.
	PolicyName string
	// AmbiguousPolicyName is set when the metadata held several values.
	AmbiguousPolicyName bool
}

// requestKind is the classification of docs/semantics.md, §4.
type requestKind uint8

const (
	kindNonCORS requestKind = iota
	kindPreflight
	kindActual
)

// kind classifies r (docs/semantics.md, §4): no Origin, a preflight (OPTIONS with an
// Origin and an Access-Control-Request-Method), or an actual CORS request.
func (r *Request) kind() requestKind {
	switch {
	case r.Origin == "" && !r.DuplicateOrigin && !r.Truncated:
		return kindNonCORS
	case r.Method == "OPTIONS" && (r.ACRM != "" || r.DuplicateACRM || r.Truncated):
		return kindPreflight
	}
	return kindActual
}
