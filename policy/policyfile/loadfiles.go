package policyfile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/corsproc/corsproc/policy"
)

// A SetFile is one file of a set LoadFiles loads.
type SetFile struct {
	// Name is the file's name in the directory the set is mounted in: a
	// ConfigMap's data key. The set's digest uses it, as Load's does.
	Name string
	// Display names the file in diagnostics and in the set's Files.
	Display string
	// Data is the file's text. The set keeps it: it must not change after.
	Data []byte
}

// LoadFiles decodes, validates and compiles files as one policy set, as
// Load does the directory they are mounted in: the policy files of a
// Kubernetes ConfigMap, or those a kustomize configMapGenerator lists. The
// files come in the order the directory lists them, by Name; the set's
// digest is the one Load gives that directory. source names the set.
// Every problem is reported at once in a *policy.ValidationError.
func LoadFiles(source string, files []SetFile) (*policy.Set, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no policy files", source)
	}
	if len(files) > maxFiles {
		return nil, fmt.Errorf("%s: more than %d policy files; see docs/policy.md", source, maxFiles)
	}
	h := sha256.New()
	sources := make([]fileText, 0, len(files))
	total := 0
	for _, f := range files {
		if total += len(f.Data); total > MaxSetSize {
			return nil, fmt.Errorf("%s: the policy files are larger than the %d bytes corsproc reads in all (at %s); see docs/policy.md",
				source, MaxSetSize, f.Display)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f.Name, len(f.Data))
		h.Write(f.Data)
		sources = append(sources, fileText{name: f.Display, data: f.Data})
	}
	return policy.Compile(policy.Source{Name: source, Digest: hex.EncodeToString(h.Sum(nil)), Files: decodeFiles(sources)})
}
