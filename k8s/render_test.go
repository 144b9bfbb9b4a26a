package k8s_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// overlays are the kustomizations this directory must hold, each rendered and
// checked on its own. A directory holding a kustomization.yaml that is not
// listed here fails TestOverlayList: add it, with what it must contain.
var overlays = []string{
	"base",
	"namespaced",
	"envoy-gateway",
	"sidecar",
	"istio-ingress",
	"istio-mesh",
	"envoy-gateway-api",
	"dev",
	"prod",
}

// originAnnotation is what kustomize adds when a kustomization asks for
// build metadata; the tests ask for it (in memory only) to name the file an
// object comes from, then strip it.
const originAnnotation = "config.kubernetes.io/origin"

// tree is the content of k8s/ (every file but the Go module's own), keyed
// by slash-separated path relative to k8s/. Tests render copies of it in
// memory, so a mutated copy never touches the disk.
type tree map[string][]byte

func loadTree(t *testing.T) tree {
	t.Helper()
	tr := tree{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if strings.HasSuffix(p, ".go") || p == "go.mod" || p == "go.sum" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		tr[filepath.ToSlash(p)] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func (tr tree) clone() tree {
	c := make(tree, len(tr))
	for k, v := range tr {
		c[k] = bytes.Clone(v)
	}
	return c
}

// kustomizations lists the directories of tr holding a kustomization
// (components, kind: Component, are not built on their own: components_test.go
// renders them inside overlays).
func (tr tree) kustomizations() []string {
	var dirs []string
	for p := range tr {
		if path.Base(p) == "kustomization.yaml" || path.Base(p) == "kustomization.yml" || path.Base(p) == "Kustomization" {
			if isComponent(tr[p]) {
				continue
			}
			dirs = append(dirs, path.Dir(p))
		}
	}
	sort.Strings(dirs)
	return dirs
}

// memRoot is where the tree lives in the in-memory file system.
const memRoot = "/k8s"

// object is one rendered Kubernetes object.
type object struct {
	overlay    string
	apiVersion string
	kind       string
	namespace  string
	name       string
	// origin is the file the object comes from, relative to the repository
	// root ("k8s/base/deployment.yaml"), or the kustomization whose
	// generator made it; patches lists the patch files applied to it.
	origin  string
	patches []string
	// data is the object as JSON, without the build annotations.
	data []byte
	// typed is the object strictly decoded into its Go API type, nil if it
	// could not be.
	typed any
}

// String names the object the way every failure message does:
// "Deployment corsproc/corsproc (k8s/base/deployment.yaml)".
func (o *object) String() string {
	id := o.name
	if o.namespace != "" {
		id = o.namespace + "/" + o.name
	}
	s := o.kind + " " + id
	if o.origin != "" {
		s += " (" + o.origin
		if len(o.patches) > 0 {
			s += ", patched by " + strings.Join(o.patches, ", ")
		}
		s += ")"
	}
	return s
}

func (o *object) is(kind, namespace, name string) bool {
	return o.kind == kind && o.namespace == namespace && o.name == name
}

// render builds one kustomization of tr with kustomize's Go API, in memory.
// Every kustomization is given `buildMetadata: [originAnnotations]` on the
// way, so that each object says which file it came from.
func render(tr tree, overlay string) ([]*object, error) {
	mem := filesys.MakeFsInMemory()
	for p, data := range tr {
		if path.Base(p) == "kustomization.yaml" {
			data = append(bytes.Clone(data), "\nbuildMetadata: [originAnnotations]\n"...)
		}
		if err := mem.WriteFile(path.Join(memRoot, p), data); err != nil {
			return nil, err
		}
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(mem, path.Join(memRoot, overlay))
	if err != nil {
		return nil, fmt.Errorf("kustomize build k8s/%s: %v", overlay, strings.ReplaceAll(err.Error(), memRoot+"/", "k8s/"))
	}
	patches := patchIndex(tr, overlay)
	var objs []*object
	for _, r := range m.Resources() {
		o, err := newObject(overlay, r)
		if err != nil {
			return nil, err
		}
		o.patches = patches[r.GetKind()+"/"+r.OrgId().Name]
		objs = append(objs, o)
	}
	return objs, nil
}

// patchIndex maps kind/name to the patch files that the kustomizations
// building overlay apply to that object, for failure messages.
func patchIndex(tr tree, overlay string) map[string][]string {
	idx := map[string][]string{}
	seen := map[string]bool{}
	var visit func(dir string)
	visit = func(dir string) {
		if seen[dir] {
			return
		}
		seen[dir] = true
		var k struct {
			Resources []string `yaml:"resources"`
			Patches   []struct {
				Path   string `yaml:"path"`
				Target *struct {
					Kind string `yaml:"kind"`
					Name string `yaml:"name"`
				} `yaml:"target"`
			} `yaml:"patches"`
		}
		if yaml.Unmarshal(tr[path.Join(dir, "kustomization.yaml")], &k) != nil {
			return
		}
		for _, res := range k.Resources {
			if d := path.Clean(path.Join(dir, res)); tr[path.Join(d, "kustomization.yaml")] != nil {
				visit(d)
			}
		}
		for _, p := range k.Patches {
			file := path.Join(dir, p.Path)
			key := ""
			if p.Target != nil {
				key = p.Target.Kind + "/" + p.Target.Name
			} else {
				var meta struct {
					Kind     string `yaml:"kind"`
					Metadata struct {
						Name string `yaml:"name"`
					} `yaml:"metadata"`
				}
				if yaml.Unmarshal(tr[file], &meta) != nil {
					continue
				}
				key = meta.Kind + "/" + meta.Metadata.Name
			}
			idx[key] = append(idx[key], "k8s/"+file)
		}
	}
	visit(overlay)
	return idx
}

func newObject(overlay string, r *resource.Resource) (*object, error) {
	o := &object{
		overlay:    overlay,
		apiVersion: r.GetApiVersion(),
		kind:       r.GetKind(),
		namespace:  r.GetNamespace(),
		name:       r.GetName(),
	}
	origin, err := r.GetOrigin()
	if err != nil {
		return nil, fmt.Errorf("k8s/%s: %s: %s annotation: %v", overlay, o, originAnnotation, err)
	}
	o.origin = originFile(overlay, origin)
	ann := r.GetAnnotations()
	delete(ann, originAnnotation)
	if len(ann) == 0 {
		ann = nil
	}
	if err := r.SetAnnotations(ann); err != nil {
		return nil, err
	}
	data, err := r.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("k8s/%s: %s: %v", overlay, o, err)
	}
	o.data = data
	return o, nil
}

// originFile turns kustomize's origin annotation, decoded by kustomize
// itself (path, or configuredIn and configuredBy for generated objects),
// into a path relative to the repository root; "" without one.
func originFile(overlay string, origin *resource.Origin) string {
	switch {
	case origin == nil:
		return ""
	case origin.Path != "":
		return path.Join("k8s", overlay, origin.Path)
	case origin.ConfiguredIn != "":
		return path.Join("k8s", overlay, origin.ConfiguredIn) + " (" + origin.ConfiguredBy.Kind + ")"
	}
	return ""
}

// report collects the problems found in one overlay.
type report struct {
	overlay  string
	problems []string
	// checked are the policy ConfigMaps already validated.
	checked map[*object]bool
}

func (r *report) add(o *object, format string, args ...any) {
	where := "k8s/" + r.overlay
	if o != nil {
		where += ": " + o.String()
	}
	r.problems = append(r.problems, where+": "+fmt.Sprintf(format, args...))
}

// checkOverlay renders one overlay of tr and runs every check on it.
func checkOverlay(env *testEnv, tr tree, overlay string) []string {
	_, problems := checkRendered(env, tr, overlay)
	return problems
}

// checkRendered is checkOverlay that also returns the decoded objects, for
// checks of their own; nil when the overlay does not render.
func checkRendered(env *testEnv, tr tree, overlay string) ([]*object, []string) {
	r := &report{overlay: overlay}
	objs, err := render(tr, overlay)
	if err != nil {
		r.problems = append(r.problems, err.Error())
		return nil, r.problems
	}
	for _, o := range objs {
		decode(r, o)
	}
	checkObjects(env, r, tr, objs)
	if expect, ok := expectations[overlay]; ok {
		expect(env, r, tr, objs)
	}
	return objs, r.problems
}

// unstructuredOf decodes an object's JSON into apimachinery's generic
// form, for the checks that read its metadata whatever its kind; nil if the
// JSON is not an object.
func unstructuredOf(data []byte) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(data, &u.Object); err != nil || u.Object == nil {
		return nil
	}
	return u
}

func TestOverlayList(t *testing.T) {
	tr := loadTree(t)
	got := tr.kustomizations()
	want := slices.Clone(overlays)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("kustomizations under k8s/ = %q, want %q: list a new one in overlays (render_test.go) with its expectations", got, want)
	}
}

// TestOverlays renders every overlay and checks it. Every failure names the
// overlay, the object (kind, namespace/name) and the file it comes from.
func TestOverlays(t *testing.T) {
	env := newTestEnv(t)
	tr := loadTree(t)
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			for _, p := range checkOverlay(env, tr, overlay) {
				t.Error(p)
			}
		})
	}
}
