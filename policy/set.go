package policy

import (
	"errors"

	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"
)

// Set is a compiled, immutable policy set. It is safe for concurrent use;
// a reload builds a new Set and swaps it in whole.
type Set struct {
	source   string
	warnings []Diagnostic
}

// Load reads, decodes, validates and compiles the policy file at path.
// TODO(skeleton): implemented in this package shortly.
func Load(path string) (*Set, error) { return nil, errors.New("not implemented") }

// Parse decodes, validates and compiles a policy file's contents; file names
// the source in diagnostics.
func Parse(file string, data []byte) (*Set, error) { return nil, errors.New("not implemented") }

// Compile validates and compiles a decoded policy file.
func Compile(file string, pf *corsprocv1.PolicyFile) (*Set, error) {
	return nil, errors.New("not implemented")
}

// Development returns the embedded development policy set.
func Development() *Set { return nil }

// Source names where the set came from (a file name, or the development
// default).
func (s *Set) Source() string { return s.source }

// Warnings returns what validation found questionable but not wrong.
func (s *Set) Warnings() []Diagnostic { return s.warnings }

// Names returns the policy names in file order.
func (s *Set) Names() []string { return nil }

// Decide selects the policy governing r and decides what corsproc does with
// it, filling d. It allocates nothing for actual requests and requests
// without an Origin.
func (s *Set) Decide(r *Request, d *Decision) {}
