package kubecors

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/corsproc/corsproc/internal/importer"
	"github.com/corsproc/corsproc/internal/origins"
)

// Istio and Envoy Gateway both hand their CORS settings to Envoy's CORS
// filter, and browsers read its answers. What follows turns those settings
// into corsproc's keys by what browsers then allow, and warns where the two
// differ. Envoy's behaviour is read from CorsFilter::decodeHeaders,
// CorsFilter::encodeHeaders and CorsFilter::isOriginAllowed
// (source/extensions/filters/http/cors/cors_filter.cc, read at commit
// 001cbf1 of Envoy's main branch);
// docs/migrating-istio-gateway-api.md sums it up.

// ExactOrigin converts an origin Envoy compares byte for byte (a
// StringMatcher exact). ok is false, with a warning, for a string that is
// no Origin a browser sends, so that Envoy never matched it: it is left
// out, which changes nothing. "*" allows every origin: Envoy's
// isOriginAllowed asks each matcher about the string "*" too.
func ExactOrigin(v string, src importer.Source) (importer.Origin, *importer.Warning, bool) {
	var o origins.Origin
	switch {
	case v == "*":
		// Envoy answers with the request's Origin, never "*".
		return importer.Origin{Kind: importer.OriginReflect, Value: v, Src: src}, nil, true
	case v == origins.Null || origins.Parse(v, &o):
		return importer.Origin{Kind: importer.OriginExact, Value: v, Src: src}, nil, true
	}
	fix := "remove it"
	if c := canonicalOrigin(v); c != "" && c != v {
		fix = fmt.Sprintf("write %q if that is the origin you mean", c)
	}
	w := importer.At(src, importer.CodeDifference, fmt.Sprintf(
		"%q is not an Origin browsers send (scheme://host[:port] in lower case, without path or default port): Envoy compares it byte for byte, so it never matched; left out, which changes nothing", v), fix)
	return importer.Origin{}, &w, false
}

// canonicalOrigin is v as browsers would send it, or "" when it is not an
// origin at all.
func canonicalOrigin(v string) string {
	s := strings.ToLower(strings.TrimRight(v, "/"))
	for _, d := range []string{"http://:80", "https://:443", "ws://:80", "wss://:443"} {
		scheme, port, _ := strings.Cut(d, ":/")
		port = port[1:]
		if strings.HasPrefix(s, scheme+"://") && strings.HasSuffix(s, port) {
			s = strings.TrimSuffix(s, port)
		}
	}
	var o origins.Origin
	if !origins.Parse(s, &o) {
		return ""
	}
	return s
}

// MatchesStar reports whether the RE2 regex re matches the whole string
// "*", which makes Envoy allow every origin (isOriginAllowed).
func MatchesStar(re string) bool {
	r, err := regexp.Compile(`^(?:` + re + `)$`)
	return err == nil && r.MatchString("*")
}

// StarWarning is the warning for a matcher that Envoy took as "allow every
// origin" because it matches the string "*".
func StarWarning(src importer.Source, what string) importer.Warning {
	return importer.At(src, importer.CodeDifference, fmt.Sprintf(
		"%s matches the string \"*\", and Envoy's CORS filter allows every origin when a matcher does (it asks each matcher about \"*\" as well as the Origin), answering with the request's Origin: written as allow_all_origins", what),
		"list the origins you mean")
}

// Methods converts allowed methods as Envoy sends them in
// Access-Control-Allow-Methods. A list that is exactly "*" is echoed by
// Envoy as the requested method, so any method passes; corsproc's * does
// the same. A "*" among other methods is a literal in the header, which
// browsers read as a wildcard only for requests without credentials:
// under allow_credentials it is left out. (importer.Build leaves out
// CONNECT, TRACE and TRACK, which browsers never send.) src is the key's
// source, used when the list is empty.
func Methods(items []importer.Value, src importer.Source, creds bool) (importer.List, []importer.Warning) {
	l := importer.List{Src: src}
	var warns []importer.Warning
	seen := map[string]bool{}
	for _, it := range items {
		m := it.S
		switch {
		case seen[m]:
			continue
		case m == "*" && len(items) > 1 && creds:
			warns = append(warns, importer.At(it.Src, importer.CodeDifference,
				`"*" among other methods is sent as it is, and browsers read it as a method named "*" for requests with credentials, which this rule set allows: left out, which changes nothing for them`,
				"list the methods the API needs"))
			continue
		case !isToken(m):
			warns = append(warns, importer.LeftOutAt(it.Src,
				fmt.Sprintf("%q is not a method name, and makes browsers reject Access-Control-Allow-Methods: left out", m), "write method names such as PATCH"))
			continue
		}
		seen[m] = true
		l.Items = append(l.Items, it)
	}
	return l, warns
}

// Headers converts allowed request headers as Envoy sends them in
// Access-Control-Allow-Headers. "*" alone is echoed by Envoy as the
// requested headers, Authorization included, as corsproc's * does. A "*"
// among other names is a literal, which browsers read as a wildcard only
// without credentials and never for Authorization. (importer.Build
// leaves out the forbidden request headers, which scripts cannot set.)
func Headers(items []importer.Value, src importer.Source, creds bool) (importer.List, []importer.Warning) {
	l := importer.List{Src: src}
	var warns []importer.Warning
	seen := map[string]bool{}
	for _, it := range items {
		h := it.S
		lower := strings.ToLower(h)
		switch {
		case seen[lower]:
			continue
		case h == "*" && len(items) > 1 && creds:
			warns = append(warns, importer.At(it.Src, importer.CodeDifference,
				`"*" among other headers is sent as it is, and browsers read it as a header named "*" for requests with credentials, which this rule set allows: left out, which changes nothing for them`,
				"list the request headers the API needs"))
			continue
		case h == "*" && len(items) > 1:
			warns = append(warns, importer.At(it.Src, importer.CodeDifference,
				`"*" among other headers is sent as it is, and browsers never let it cover Authorization; corsproc's * allows every header a browser may send, Authorization included`,
				"list the request headers the API needs instead of *"))
		case h == "*":
		case !isToken(h):
			warns = append(warns, importer.LeftOutAt(it.Src,
				fmt.Sprintf("%q is not a header name, and makes browsers reject Access-Control-Allow-Headers: left out", h), "write header names such as x-request-id"))
			continue
		case strings.HasPrefix(lower, "access-control-allow-") || lower == "access-control-expose-headers" || lower == "access-control-max-age":
			warns = append(warns, importer.LeftOutAt(it.Src,
				fmt.Sprintf("%s is a CORS response header, which corsproc never allows as a request header: left out", lower), "remove it from the requests the frontend sends"))
			continue
		}
		seen[lower] = true
		l.Items = append(l.Items, it)
	}
	return l, warns
}

// Expose converts exposed response headers, which Envoy sends as written.
// "*" is a wildcard for browsers only without credentials; under
// allow_credentials it is left out. Set-Cookie is never exposed by
// browsers.
func Expose(items []importer.Value, src importer.Source, creds bool) (importer.List, []importer.Warning) {
	l := importer.List{Src: src}
	var warns []importer.Warning
	seen := map[string]bool{}
	for _, it := range items {
		h := it.S
		lower := strings.ToLower(h)
		switch {
		case seen[lower]:
			continue
		case h == "*" && creds:
			warns = append(warns, importer.At(it.Src, importer.CodeDifference,
				`"*" exposes every header only to requests without credentials; browsers read it as a header named "*" for credentialed ones, which this rule set allows: left out, which changes nothing for them`,
				"list the response headers scripts need"))
			continue
		case h == "*":
		case !isToken(h):
			warns = append(warns, importer.LeftOutAt(it.Src,
				fmt.Sprintf("%q is not a header name: left out", h), "write header names such as x-request-id"))
			continue
		case lower == "set-cookie" || lower == "set-cookie2":
			warns = append(warns, importer.At(it.Src, importer.CodeDifference,
				fmt.Sprintf("browsers never expose %s to scripts: left out, which changes nothing", lower), ""))
			continue
		}
		seen[lower] = true
		l.Items = append(l.Items, it)
	}
	return l, warns
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// Path is one path condition of a route match.
type Path struct {
	Kind       PathKind
	Value      string
	IgnoreCase bool
	Src        importer.Source
}

// PathKind is how a route compares the path.
type PathKind uint8

const (
	PathPrefix PathKind = iota
	PathExact
	PathRegex // RE2, matched against the whole path without the query
)

// SetPaths sets m's path selection from the path conditions of a route's
// matches, any one of which selects the route. every is set when some
// match of the route has no path condition (it matches every path). Plain
// prefixes become path_prefixes; anything else one urls_regex that
// matches the same paths (prefix p: QuoteMeta(p).*, exact e: QuoteMeta(e),
// regex r: (?:r)), which corsproc matches against the whole path without
// the query, as Envoy matches a route's safe_regex (RouteMatch.safe_regex
// in api/envoy/config/route/v3/route_components.proto).
func SetPaths(m *importer.Match, paths []Path, every bool) {
	if every || len(paths) == 0 {
		return
	}
	plain := true
	for _, p := range paths {
		if p.Kind == PathPrefix && strings.TrimRight(p.Value, "/") == "" {
			return // the prefix / matches every path
		}
		if p.Kind != PathPrefix || p.IgnoreCase {
			plain = false
		}
	}
	if plain {
		seen := map[string]bool{}
		for _, p := range paths {
			if !seen[p.Value] {
				seen[p.Value] = true
				m.PathPrefixes.Add(importer.Value{S: p.Value, Src: p.Src})
			}
		}
		return
	}
	alts := make([]string, 0, len(paths))
	for _, p := range paths {
		var a string
		switch p.Kind {
		case PathPrefix:
			a = regexp.QuoteMeta(p.Value) + ".*"
		case PathExact:
			a = regexp.QuoteMeta(p.Value)
		default:
			a = "(?:" + p.Value + ")"
		}
		if p.IgnoreCase {
			a = "(?i:" + a + ")"
		}
		if !slices.Contains(alts, a) {
			alts = append(alts, a)
		}
	}
	m.URLsRegex = importer.String{S: strings.Join(alts, "|"), Src: paths[0].Src}
}
