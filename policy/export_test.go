package policy

// ManagedHeaders returns the CORS response headers corsproc removes from
// the upstream's response on a governed route, for the tests of package
// policy_test.
func ManagedHeaders() []string { return append([]string(nil), managedHeaders...) }
