package k8s_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestSourceYAML parses every YAML file under k8s/ on its own, so that a
// syntax error or a key written twice is reported with its file and line
// even where kustomize would not read the file (a patch no kustomization
// lists yet).
func TestSourceYAML(t *testing.T) {
	for p, data := range loadTree(t) {
		if ext := path.Ext(p); ext != ".yaml" && ext != ".yml" {
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("k8s/%s: %v", p, err)
				break
			}
		}
	}
}

// docFiles are the docs that show manifests; every yaml block of them that
// holds a Kubernetes object (apiVersion and kind) must decode strictly, as
// the overlays' objects do.
var docFiles = []string{"../docs/kubernetes.md", "../docs/istio.md", "../docs/envoy-gateway.md"}

var yamlBlock = regexp.MustCompile("(?ms)^```ya?ml\\n(.*?)^```")

// TestDocManifests decodes the manifests shown in the docs strictly, and
// checks that the docs name every overlay.
func TestDocManifests(t *testing.T) {
	var all strings.Builder
	for _, doc := range docFiles {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Error(err)
			continue
		}
		all.Write(data)
		r := &report{overlay: strings.TrimPrefix(doc, "../")}
		decoded := 0
		for _, m := range yamlBlock.FindAllSubmatchIndex(data, -1) {
			block := data[m[2]:m[3]]
			if !bytes.Contains(block, []byte("apiVersion:")) || !bytes.Contains(block, []byte("kind:")) {
				continue
			}
			line := 1 + bytes.Count(data[:m[0]], []byte("\n"))
			dec := yaml.NewDecoder(bytes.NewReader(block))
			for {
				var v map[string]any
				if err := dec.Decode(&v); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Errorf("%s:%d: %v", doc, line, err)
					break
				}
				// The mappings of a Kubernetes object only have string
				// keys: one that does not fails here.
				js, err := json.Marshal(v)
				if err != nil {
					t.Errorf("%s:%d: %v", doc, line, err)
					continue
				}
				u := unstructured.Unstructured{Object: v}
				o := &object{
					overlay:    r.overlay,
					apiVersion: u.GetAPIVersion(),
					kind:       u.GetKind(),
					namespace:  u.GetNamespace(),
					name:       u.GetName(),
					data:       js,
					origin:     fmt.Sprintf("%s:%d", strings.TrimPrefix(doc, "../"), line),
				}
				if strings.HasPrefix(o.apiVersion, "kustomize.config.k8s.io/") {
					continue // a kustomization, not an object of the cluster
				}
				decode(r, o)
				decoded++
				if o.kind == "EnvoyFilter" && o.typed != nil {
					checkEnvoyFilter(r, o, nil, nil) // no Service to check the cluster against
				}
			}
		}
		for _, p := range r.problems {
			t.Error(p)
		}
		if decoded == 0 {
			t.Errorf("%s: no manifest found in its yaml blocks", doc)
		}
	}
	for _, o := range overlays {
		if !strings.Contains(all.String(), "k8s/"+o) {
			t.Errorf("no doc of %q mentions k8s/%s", docFiles, o)
		}
	}
}
