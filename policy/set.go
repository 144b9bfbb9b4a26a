package policy

import "bytes"

// Set is a compiled, immutable policy set (Compile builds one; so do
// policy/policyfile's Load and Parse). It is safe for concurrent use; a
// reload builds a new Set and swaps it in whole.
type Set struct {
	source   string
	digest   string
	files    []File // the source text; nil for a schema built in code
	warnings []Diagnostic
	names    []string
	byName   map[string]*compiledPolicy
	byRoute  map[string]*compiledPolicy
	matchers []*compiledPolicy // policies selected by host and path, in file order
	def      *compiledPolicy
}

// Source names where the set came from (a file name, or the development
// default).
func (s *Set) Source() string { return s.source }

// Digest identifies the version of the policy files the set was built
// from: policy/policyfile gives the SHA-256 of the policy file (for a
// directory, of its files' names and contents), in hex. It is "" for a set
// compiled from a schema built in code.
func (s *Set) Digest() string { return s.digest }

// File is one source file of a policy set, as it was read.
type File struct {
	// Name names the file as diagnostics do (Input.File).
	Name string
	// Data is the file's contents.
	Data []byte
}

// Files returns the text of the files the set was built from, in load
// order (Source.Files), leaving out those that have none: a set compiled
// from a schema built in code has no source text, and Files returns nil.
// The result is a copy: changing it does not change the set.
func (s *Set) Files() []File {
	if s.files == nil {
		return nil
	}
	out := make([]File, len(s.files))
	for i, f := range s.files {
		out[i] = File{Name: f.Name, Data: bytes.Clone(f.Data)}
	}
	return out
}

// Warnings returns what validation found questionable but not wrong.
func (s *Set) Warnings() []Diagnostic { return s.warnings }

// Names returns the policy names in file order.
func (s *Set) Names() []string { return s.names }

// Has reports whether the set holds a policy named name.
func (s *Set) Has(name string) bool {
	_, ok := s.byName[name]
	return ok
}
