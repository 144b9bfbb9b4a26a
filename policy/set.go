package policy

import (
	_ "embed"
	"fmt"
	"os"
)

// Set is a compiled, immutable policy set. It is safe for concurrent use;
// a reload builds a new Set and swaps it in whole.
type Set struct {
	source   string
	warnings []Diagnostic
	policies []*policy
	names    []string
	byName   map[string]*policy
	byRoute  map[string]*policy
	matchers []*policy // policies selected by host and path, in file order
	def      *policy
}

// Load reads, decodes, validates and compiles the policy file at path.
func Load(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a policy file", path)
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s: file is %d bytes, more than the %d corsproc reads", path, fi.Size(), MaxFileSize)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil && fi.Size() > 0 {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes, validates and compiles a policy file's contents; file names
// the source in diagnostics. Every problem is reported at once in a
// *ValidationError.
func Parse(file string, data []byte) (*Set, error) {
	pf, ds := decode(file, data)
	if pf == nil {
		return nil, ds.err()
	}
	// Validate even after decoding errors, so that one run reports every
	// problem of the file; but a key that failed to decode can make
	// validation warn about its absence, so keep only its errors then.
	if ds.hasErrors() {
		vs := &diagnostics{file: ds.file, pos: ds.pos, written: ds.written}
		compile(pf, vs)
		ds.list = append(ds.list, filter(vs.list, SeverityError)...)
		return nil, ds.err()
	}
	return compile(pf, ds)
}

//go:embed development.yaml
var developmentYAML []byte

// DevelopmentSource is the Source of the embedded development policy set.
const DevelopmentSource = "embedded development policy"

// Development returns the embedded development policy set: every route,
// origins http://localhost:*, http://127.0.0.1:* and http://[::1]:* only.
func Development() *Set {
	s, err := Parse(DevelopmentSource, developmentYAML)
	if err != nil {
		panic("corsproc: the embedded development policy is invalid: " + err.Error())
	}
	return s
}

// DevelopmentYAML returns the embedded development policy file.
func DevelopmentYAML() []byte { return append([]byte(nil), developmentYAML...) }

// Source names where the set came from (a file name, or the development
// default).
func (s *Set) Source() string { return s.source }

// Warnings returns what validation found questionable but not wrong.
func (s *Set) Warnings() []Diagnostic { return s.warnings }

// Names returns the policy names in file order.
func (s *Set) Names() []string { return s.names }

// Has reports whether the set holds a policy named name.
func (s *Set) Has(name string) bool {
	_, ok := s.byName[name]
	return ok
}
