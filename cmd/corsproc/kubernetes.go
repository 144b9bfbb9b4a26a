package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// check recognises Kubernetes objects (docs/operations.md, "Checking
// Kubernetes manifests"): a rendered manifest (kustomize build, helm
// template) or a kustomize directory holds Deployments, Services and
// ConfigMaps, not policy files, and the policy sets corsproc loads are the
// ConfigMaps whose *.yaml and *.yml keys hold policy files, mounted as a
// directory.

// maxManifestSize bounds the bytes check reads of a manifest, or of all
// the files of a kustomize directory: a rendered application, far more
// than a policy set (policyfile.MaxSetSize).
const maxManifestSize = 64 << 20

// The bounds readBounded reads within, as its errors name them.
var (
	manifestBound   = fmt.Sprintf("the %d bytes check reads of Kubernetes manifests", maxManifestSize)
	policyFileBound = fmt.Sprintf("the %d bytes corsproc reads of a policy file", policyfile.MaxFileSize)
)

// k8sSet is a policy set found among Kubernetes objects: a ConfigMap, or a
// kustomize configMapGenerator.
type k8sSet struct {
	source string
	files  []policyfile.SetFile
	// at maps a file's Display to where its text is in the manifest, for
	// diagnostics.
	at map[string]textAt
}

// textAt is where a ConfigMap value's text is: in file, from line (the
// first line of the value is line+1) and column, when the value is a
// literal block (|) whose lines are the manifest's; otherwise line is 0
// and diagnostics count lines from the start of the value.
type textAt struct {
	file         string
	line, column int
}

// k8sScan is what check found among Kubernetes objects.
type k8sScan struct {
	sets []k8sSet
	// skipped names the ConfigMaps and generators whose YAML keys are not
	// policy files (no policies or default_policy key), and the YAML files
	// of a directory that are neither an object nor a generator's file.
	skipped []string
}

// scanKubernetes reads path, a file or a directory, and reports whether it
// holds Kubernetes objects (a YAML document with apiVersion and kind); if
// so, it returns the policy sets among them.
func scanKubernetes(path string) (*k8sScan, bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	var files []string
	if fi.IsDir() {
		if files, err = policyfile.FileNames(path); err != nil {
			return nil, false, err
		}
	} else {
		files = []string{path}
	}
	type doc struct {
		file string
		data []byte
		node *yaml.Node
	}
	var docs []doc
	plain := map[string]bool{} // files that are not objects
	total := 0
	isK8s := false
	for _, name := range files {
		data, err := readBounded(name, maxManifestSize-total, manifestBound)
		if err != nil {
			return nil, false, err
		}
		total += len(data)
		objects := 0
		// Only a file that names apiVersion and kind can hold an object:
		// a policy file is not parsed here, before the bounds its load
		// holds it to (docs/policy.md, "Size and count caps").
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for mayHoldObjects(data) {
			var n yaml.Node
			if err := dec.Decode(&n); err != nil {
				// The end, or YAML a policy file load reports better.
				break
			}
			if isObject(&n) {
				docs = append(docs, doc{name, data, &n})
				objects++
			}
		}
		if objects == 0 {
			plain[name] = true
		}
		isK8s = isK8s || objects > 0
	}
	if !isK8s {
		return nil, false, nil
	}
	scan := &k8sScan{}
	referenced := map[string]bool{}
	for _, d := range docs {
		root := d.node.Content[0]
		switch field(root, "kind") {
		case "ConfigMap":
			scan.configMap(d.file, d.data, root)
		case "List": // kubectl get -o yaml
			if items := value(root, "items"); items != nil && items.Kind == yaml.SequenceNode {
				for _, it := range items.Content {
					if field(it, "kind") == "ConfigMap" {
						scan.configMap(d.file, d.data, it)
					}
				}
			}
		case "Kustomization":
			if err := scan.generators(filepath.Dir(d.file), root, referenced); err != nil {
				return nil, false, err
			}
		}
	}
	for _, name := range files {
		if plain[name] && !referenced[name] {
			scan.skipped = append(scan.skipped, name+" (not a Kubernetes object, nor a file a kustomization.yaml names)")
		}
	}
	return scan, true, nil
}

// readBounded reads the file name, refusing more than limit bytes (bound
// says which bound that is, in the error) and anything but a regular file.
// It never blocks in open, as a policy load does not (policyfile's
// readFile): a named pipe is refused after os.Stat, and opened non-blocking
// in case the path was replaced in between.
func readBounded(name string, limit int, bound string) ([]byte, error) {
	if fi, err := os.Stat(name); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: more than %s", name, bound)
	}
	return data, nil
}

// mayHoldObjects reports whether data has the keys of a Kubernetes object.
func mayHoldObjects(data []byte) bool {
	return bytes.Contains(data, []byte("apiVersion")) && bytes.Contains(data, []byte("kind"))
}

// isObject reports whether the YAML document n is a Kubernetes object: a
// mapping with string apiVersion and kind.
func isObject(n *yaml.Node) bool {
	if n.Kind != yaml.DocumentNode || len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
		return false
	}
	root := n.Content[0]
	return field(root, "apiVersion") != "" && field(root, "kind") != ""
}

// value returns the value node of key in mapping m, or nil.
func value(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// field returns the string value of key in mapping m, or "".
func field(m *yaml.Node, key string) string {
	if v := value(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// isPolicyKey reports whether a ConfigMap key names a file a policy
// directory load reads (policyfile.FileNames).
func isPolicyKey(key string) bool {
	ext := filepath.Ext(key)
	return !strings.HasPrefix(key, ".") && (ext == ".yaml" || ext == ".yml")
}

// looksLikePolicy reports whether text is a policy file rather than other
// YAML a ConfigMap carries (an Envoy configuration): a mapping with
// policies or default_policy.
func looksLikePolicy(text []byte) bool {
	var n yaml.Node
	if yaml.Unmarshal(text, &n) != nil || len(n.Content) == 0 {
		return false
	}
	return value(n.Content[0], "policies") != nil || value(n.Content[0], "default_policy") != nil
}

// configMap adds the policy set of the ConfigMap object root in file, if
// its YAML keys hold policy files: all of them, as a mount gives them.
func (s *k8sScan) configMap(file string, text []byte, root *yaml.Node) {
	meta := value(root, "metadata")
	name := field(meta, "name")
	if ns := field(meta, "namespace"); ns != "" {
		name = ns + "/" + name
	}
	source := fmt.Sprintf("%s: ConfigMap %s", file, name)
	set := k8sSet{source: source, at: map[string]textAt{}}
	policyLike := false
	data := value(root, "data")
	if data != nil && data.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(data.Content); i += 2 {
			k, v := data.Content[i], data.Content[i+1]
			if !isPolicyKey(k.Value) || v.Kind != yaml.ScalarNode {
				continue
			}
			display := fmt.Sprintf("%s: ConfigMap %s, key %s", file, name, k.Value)
			at := textAt{file: file}
			if v.Style&yaml.LiteralStyle != 0 {
				at.line, at.column = v.Line, blockIndent(text, v.Line+1)
			}
			set.at[display] = at
			set.files = append(set.files, policyfile.SetFile{Name: k.Value, Display: display, Data: []byte(v.Value)})
			policyLike = policyLike || looksLikePolicy([]byte(v.Value))
		}
	}
	if !policyLike {
		s.skipped = append(s.skipped, source+" (no key holds a policy file)")
		return
	}
	slices.SortFunc(set.files, func(a, b policyfile.SetFile) int { return strings.Compare(a.Name, b.Name) })
	s.sets = append(s.sets, set)
}

// blockIndent returns the column (0-based) where the text of a literal
// block starting at 1-based line of text begins: its indentation.
func blockIndent(text []byte, line int) int {
	for i := 1; len(text) > 0; i++ {
		l, rest, _ := bytes.Cut(text, []byte("\n"))
		if i >= line && len(bytes.TrimSpace(l)) > 0 {
			return len(l) - len(bytes.TrimLeft(l, " "))
		}
		text = rest
	}
	return 0
}

// generators adds the policy sets of the configMapGenerator entries of the
// Kustomization root in dir, recording in referenced the files it reads
// (theirs, and its patches').
func (s *k8sScan) generators(dir string, root *yaml.Node, referenced map[string]bool) error {
	// The files the Kustomization reads that are not objects: patches.
	for _, key := range []string{"patches", "patchesStrategicMerge", "patchesJson6902", "resources"} {
		list := value(root, key)
		if list == nil || list.Kind != yaml.SequenceNode {
			continue
		}
		for _, p := range list.Content {
			rel := p.Value
			if p.Kind == yaml.MappingNode {
				rel = field(p, "path")
			}
			if rel != "" {
				referenced[filepath.Join(dir, rel)] = true
			}
		}
	}
	gens := value(root, "configMapGenerator")
	if gens == nil || gens.Kind != yaml.SequenceNode {
		return nil
	}
	for _, g := range gens.Content {
		name := field(g, "name")
		source := fmt.Sprintf("%s: configMapGenerator %s", filepath.Join(dir, "kustomization.yaml"), name)
		set := k8sSet{source: source, at: map[string]textAt{}}
		policyLike := false
		if files := value(g, "files"); files != nil && files.Kind == yaml.SequenceNode {
			for _, f := range files.Content {
				key, rel, ok := strings.Cut(f.Value, "=")
				if !ok {
					key, rel = filepath.Base(f.Value), f.Value
				}
				full := filepath.Join(dir, rel)
				referenced[full] = true
				if !isPolicyKey(key) {
					continue
				}
				data, err := readBounded(full, policyfile.MaxFileSize, policyFileBound)
				if err != nil {
					return fmt.Errorf("%s: %w", source, err)
				}
				set.files = append(set.files, policyfile.SetFile{Name: key, Display: full, Data: data})
				policyLike = policyLike || looksLikePolicy(data)
			}
		}
		if !policyLike {
			s.skipped = append(s.skipped, source+" (no file holds a policy file)")
			continue
		}
		slices.SortFunc(set.files, func(a, b policyfile.SetFile) int { return strings.Compare(a.Name, b.Name) })
		s.sets = append(s.sets, set)
	}
	return nil
}

// load loads the set, and rewrites the diagnostics of the values of a
// manifest's ConfigMap to the manifest's lines.
func (k *k8sSet) load() (*policy.Set, []policy.Diagnostic, error) {
	set, err := policyfile.LoadFiles(k.source, k.files)
	var verr *policy.ValidationError
	switch {
	case errors.As(err, &verr):
		return nil, k.place(verr.Diagnostics), nil
	case err != nil:
		return nil, nil, err
	}
	return set, k.place(set.Warnings()), nil
}

// place rewrites diagnostics as load does.
func (k *k8sSet) place(ds []policy.Diagnostic) []policy.Diagnostic {
	out := slices.Clone(ds)
	for i, d := range out {
		at, ok := k.at[d.File]
		if !ok || at.line == 0 || d.Line == 0 {
			continue
		}
		out[i].File = at.file
		out[i].Line += at.line
		out[i].Column += at.column
	}
	return out
}

// policyFiles returns the set's files as policy.Files, named as in
// diagnostics.
func (k *k8sSet) policyFiles() []policy.File {
	out := make([]policy.File, len(k.files))
	for i, f := range k.files {
		out[i] = policy.File{Name: f.Display, Data: f.Data}
	}
	return out
}

// readPolicyFiles reads the policy files at path, a file or a directory,
// as a load lists them (policyfile.FileNames), for the checks that read
// the files themselves.
func readPolicyFiles(path string) ([]policy.File, error) {
	names := []string{path}
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if fi.IsDir() {
		if names, err = policyfile.FileNames(path); err != nil {
			return nil, err
		}
	}
	var files []policy.File
	for _, name := range names {
		data, err := readBounded(name, policyfile.MaxFileSize, policyFileBound)
		if err != nil {
			return nil, err
		}
		files = append(files, policy.File{Name: name, Data: data})
	}
	return files, nil
}
