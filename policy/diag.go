package policy

// Severity tells an error from a warning.
type Severity uint8

const (
	SeverityError Severity = iota
	SeverityWarning
)

// Diagnostic is one problem found in a policy file.
type Diagnostic struct {
	Severity Severity
	File     string
	Line     int    // 1-based; 0 when unknown
	Column   int    // 1-based; 0 when unknown
	Path     string // field path, e.g. policies[1].allowed_origins[0]
	Message  string
	Fix      string
}
