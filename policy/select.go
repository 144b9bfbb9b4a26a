package policy

import "strings"

// selectPolicy applies docs/semantics.md, §2: metadata, route, host and
// path, default.
func (s *Set) selectPolicy(r *Request, d *Decision) *compiledPolicy {
	if r.PolicyName != "" || r.AmbiguousPolicyName {
		if p, ok := s.byName[r.PolicyName]; ok && !r.AmbiguousPolicyName {
			d.Selection = SelectedByMetadata
			return p
		}
		d.Selection = SelectedUnknown
		return nil
	}
	var routed *compiledPolicy
	if r.Route != "" {
		routed = s.byRoute[r.Route]
	}
	if routed != nil || len(s.matchers) > 0 {
		// Read once for both: they may be lower-cased copies.
		host, path := requestHost(r.Host), requestPath(r.Path)
		if routed != nil && routed.match.holds(host, path) {
			d.Selection = SelectedByRoute
			return routed
		}
		for _, p := range s.matchers {
			if p.match.holds(host, path) {
				d.Selection = SelectedByMatch
				return p
			}
		}
	}
	if s.def != nil {
		d.Selection = SelectedByDefault
		return s.def
	}
	return nil
}

// requestHost returns :authority without its port or a trailing dot, lower
// case. Browsers and Envoy send lower-case hosts, so only an unusual request
// pays for lower-casing.
func requestHost(authority string) string {
	h := authority
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 {
			h = h[:end+1]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// requestPath returns :path without the query.
func requestPath(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// holds reports whether every host and path condition of the match holds.
func (m *matcher) holds(host, path string) bool {
	if len(m.hosts) > 0 || len(m.wildHosts) > 0 {
		if !m.hostMatches(host) {
			return false
		}
	}
	if len(m.prefixes) > 0 {
		ok := false
		for _, p := range m.prefixes {
			if strings.HasPrefix(path, p) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return m.urls == nil || m.urls.MatchString(path)
}

func (m *matcher) hostMatches(host string) bool {
	if _, ok := m.hosts[host]; ok {
		return true
	}
	for i := 1; i < len(host)-1; i++ {
		if host[i] == '.' {
			if _, ok := m.wildHosts[host[i+1:]]; ok {
				return true
			}
		}
	}
	return false
}
