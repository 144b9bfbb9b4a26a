// Package kubecors is what the Istio and Gateway API importers share:
// reading Kubernetes objects from YAML or JSON (one object, several
// documents separated by ---, or a List as kubectl get ... -o yaml writes
// it) with the line of every key, so that each value of a generated policy
// names the file and line it came from; and turning the values that Istio
// and Envoy Gateway hand to Envoy's CORS filter into corsproc's, as
// browsers read Envoy's answers (the Envoy importer converts a CorsPolicy's
// lists and regexes with the same functions).
//
// It decodes into yaml.Node and walks only the fields an importer asks
// for, instead of decoding into the projects' API types: those modules
// bring Kubernetes' apimachinery (and Istio's whole protobuf tree) into the
// corsproc binary for the few fields CORS needs, and keep no positions
// (docs/migrating-istio-gateway-api.md, "How the objects are read").
package kubecors

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/corsproc/corsproc/internal/importer"
)

// maxSteps bounds the nodes one Walker visits, aliases followed: an alias
// to a large mapping, repeated, would otherwise make a small file cost
// minutes.
const maxSteps = 10_000_000

// Object is one Kubernetes object of a file.
type Object struct {
	File       string
	APIVersion string
	Kind       string
	Namespace  string // "" when metadata.namespace is not given
	Name       string
	Labels     map[string]string
	// CreationTimestamp is metadata.creationTimestamp as written (RFC
	// 3339), "" when absent; it orders policies as their controllers do.
	CreationTimestamp string
	Line              int // the line of the object's first key
	Node              *yaml.Node
}

// Group is the API group of the object's apiVersion ("" for the core
// group).
func (o *Object) Group() string {
	g, _, ok := strings.Cut(o.APIVersion, "/")
	if !ok {
		return ""
	}
	return g
}

// NamespaceOr is the object's namespace, or def when it has none.
func (o *Object) NamespaceOr(def string) string {
	if o.Namespace == "" {
		return def
	}
	return o.Namespace
}

// ID is "Kind namespace/name" (or "Kind name" without a namespace).
func (o *Object) ID() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Src is a Source at n's line in the object's file.
func (o *Object) Src(n *yaml.Node, key string) importer.Source {
	line := 0
	if n != nil {
		line = n.Line
	}
	return importer.Source{File: o.File, Line: line, Key: key}
}

// Read reads the objects of every file, in order, for the source named
// source: the rule set it starts holds the files' names and the warnings
// Objects gives on their documents. The error is Objects's.
func Read(source string, files []importer.File) (*importer.RuleSet, []*Object, error) {
	rs := &importer.RuleSet{Source: source, DefaultPolicy: -1}
	var all []*Object
	for _, f := range files {
		objs, warns, err := Objects(f.Name, f.Data)
		if err != nil {
			return nil, nil, err
		}
		rs.Files = append(rs.Files, f.Name)
		all = append(all, objs...)
		rs.Warnings = append(rs.Warnings, warns...)
	}
	return rs, all, nil
}

// Objects returns the objects of a file, in order. The error is for a
// file that is not YAML (or JSON) or is too large; documents that are not
// objects, and objects without a kind, are warnings.
func Objects(file string, data []byte) ([]*Object, []importer.Warning, error) {
	if len(data) > importer.MaxFileSize {
		return nil, nil, fmt.Errorf("%s: file is %d bytes, more than the %d the importer reads", file, len(data), importer.MaxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var objs []*Object
	var warns []importer.Warning
	w := &Walker{File: file}
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %s", file, doc, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		root := &n
		if root.Kind == yaml.DocumentNode {
			if len(root.Content) == 0 {
				continue
			}
			root = root.Content[0]
		}
		root = w.resolve(root)
		if root == nil || root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue // an empty document
		}
		if root.Kind != yaml.MappingNode {
			warns = append(warns, importer.At(importer.Source{File: file, Line: root.Line}, importer.CodeDifference,
				fmt.Sprintf("document %d is not a Kubernetes object; skipped", doc), ""))
			continue
		}
		objs, warns = w.object(root, objs, warns, 0)
		if w.Over() {
			return nil, nil, fmt.Errorf("%s: document %d: more than %d YAML nodes with aliases expanded", file, doc, maxSteps)
		}
	}
	return objs, warns, nil
}

func (w *Walker) object(m *yaml.Node, objs []*Object, warns []importer.Warning, depth int) ([]*Object, []importer.Warning) {
	kind, _ := w.Str(w.Get(m, "kind"))
	if items := w.Get(m, "items"); items != nil && strings.HasSuffix(kind, "List") && depth < 2 {
		for _, it := range w.Seq(items) {
			if it.Kind != yaml.MappingNode {
				continue
			}
			objs, warns = w.object(it, objs, warns, depth+1)
		}
		return objs, warns
	}
	o := &Object{File: w.File, Kind: kind, Line: m.Line, Node: m}
	o.APIVersion, _ = w.Str(w.Get(m, "apiVersion"))
	if kind == "" {
		warns = append(warns, importer.At(importer.Source{File: w.File, Line: m.Line}, importer.CodeDifference,
			"an object without kind; skipped", ""))
		return objs, warns
	}
	meta := w.Get(m, "metadata")
	o.Name, _ = w.Str(w.Get(meta, "name"))
	o.Namespace, _ = w.Str(w.Get(meta, "namespace"))
	o.CreationTimestamp, _ = w.Str(w.Get(meta, "creationTimestamp"))
	if labels := w.Get(meta, "labels"); labels != nil && labels.Kind == yaml.MappingNode {
		o.Labels = map[string]string{}
		for i := 0; i+1 < len(labels.Content); i += 2 {
			k, _ := w.Str(labels.Content[i])
			v, _ := w.Str(labels.Content[i+1])
			o.Labels[k] = v
		}
	}
	return append(objs, o), warns
}

// Walker reads fields of decoded objects, following aliases within a
// bound on the nodes visited.
type Walker struct {
	File  string
	steps int
}

// Over reports whether the walker has visited more nodes than it may; an
// importer stops reading then.
func (w *Walker) Over() bool { return w.steps > maxSteps }

func (w *Walker) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 100 {
			return nil
		}
		n = n.Alias
	}
	return n
}

// Field returns the key and value nodes of key in the mapping m, both nil
// when m is not a mapping or has no such key. A key written twice gives
// its last value, as Kubernetes' JSON decoding does.
func (w *Walker) Field(m *yaml.Node, key string) (k, v *yaml.Node) {
	m = w.resolve(m)
	if m == nil || m.Kind != yaml.MappingNode || w.Over() {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		w.steps++
		if c := m.Content[i]; c.Kind == yaml.ScalarNode && c.Value == key {
			k, v = c, w.resolve(m.Content[i+1])
		}
	}
	return k, v
}

// Get returns the value of key in the mapping m, nil when absent.
func (w *Walker) Get(m *yaml.Node, key string) *yaml.Node {
	_, v := w.Field(m, key)
	return v
}

// Keys returns the keys of the mapping m, in order.
func (w *Walker) Keys(m *yaml.Node) []*yaml.Node {
	m = w.resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	var out []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		w.steps++
		out = append(out, m.Content[i])
	}
	return out
}

// Seq returns the entries of the sequence n, aliases resolved; nil when n
// is not a sequence.
func (w *Walker) Seq(n *yaml.Node) []*yaml.Node {
	n = w.resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode || w.Over() {
		return nil
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		w.steps++
		if c = w.resolve(c); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// Str returns the scalar n as a string; ok is false for a null, a
// mapping or a sequence.
func (w *Walker) Str(n *yaml.Node) (string, bool) {
	n = w.resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", false
	}
	return n.Value, true
}

// Bool returns the boolean scalar n.
func (w *Walker) Bool(n *yaml.Node) (v, ok bool) {
	n = w.resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, false
	}
	b, err := strconv.ParseBool(strings.ToLower(n.Value))
	return b, err == nil
}

// Int returns the integer scalar n.
func (w *Walker) Int(n *yaml.Node) (int64, bool) {
	n = w.resolve(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return 0, false
	}
	i, err := strconv.ParseInt(n.Value, 0, 64)
	return i, err == nil
}

// Describe names the YAML type of n for a warning: "a list", "a string".
func Describe(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!null":
		return "null"
	case "!!bool":
		return "a boolean"
	case "!!int", "!!float":
		return "a number"
	}
	return "a string"
}
