package k8s_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// testEnv holds what the checks learn once from outside the manifests.
type testEnv struct {
	// serveFlags are the flags `corsproc serve` accepts, read from the help
	// of a corsproc built from this checkout; serveFlagsErr says why they
	// are unknown.
	serveFlags    map[string]bool
	serveFlagsErr error
	// corsprocImage is the image reference the corsproc containers must
	// render to, from the images: entry of k8s/base/kustomization.yaml.
	corsprocImage    string
	corsprocImageErr error
	// metrics are the metric names corsproc exports, read from a running
	// corsproc on first use (components_test.go, exportedMetrics).
	metricsOnce sync.Once
	metrics     map[string]bool
	metricsErr  error
}

var (
	envOnce   sync.Once
	sharedEnv *testEnv
	tmpDir    string
)

func TestMain(m *testing.M) {
	var err error
	tmpDir, err = os.MkdirTemp("", "corsproc-k8s-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpDir)
	os.Exit(code)
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	envOnce.Do(func() {
		e := &testEnv{}
		e.serveFlags, e.serveFlagsErr = corsprocServeFlags()
		e.corsprocImage, e.corsprocImageErr = baseImage()
		sharedEnv = e
	})
	return sharedEnv
}

// corsprocServeFlags builds cmd/corsproc from the checkout above k8s/ and
// reads the flags of `corsproc serve -h`, so that a flag renamed in the code
// but not in the manifests fails here rather than in a CrashLoopBackOff.
func corsprocServeFlags() (map[string]bool, error) {
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			return nil, fmt.Errorf("no go command to build corsproc with: %v", err)
		}
	}
	bin := filepath.Join(tmpDir, "corsproc")
	build := exec.Command(gobin, "build", "-o", bin, "./cmd/corsproc")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/corsproc: %v\n%s", err, out)
	}
	var out bytes.Buffer
	help := exec.Command(bin, "serve", "-h")
	help.Stdout, help.Stderr = &out, &out
	_ = help.Run() // the exit status of -h does not matter, its text does
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--?([a-z][a-z0-9-]*)\b`).FindAllStringSubmatch(out.String(), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("`corsproc serve -h` listed no flags:\n%s", out.String())
	}
	return flags, nil
}

// baseImage reads the corsproc image from k8s/base/kustomization.yaml.
func baseImage() (string, error) {
	data, err := os.ReadFile("base/kustomization.yaml")
	if err != nil {
		return "", err
	}
	var k struct {
		Images []kustomizeImage `yaml:"images"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		return "", fmt.Errorf("k8s/base/kustomization.yaml: %v", err)
	}
	if ref := corsprocImage(k.Images); ref != "" {
		return ref, nil
	}
	return "", fmt.Errorf("k8s/base/kustomization.yaml: no images: entry named %q", corsprocImageName)
}

// kustomizeImage is an entry of a kustomization's images: field.
type kustomizeImage struct {
	Name    string `yaml:"name"`
	NewName string `yaml:"newName"`
	NewTag  string `yaml:"newTag"`
	Digest  string `yaml:"digest"`
}

// corsprocImage returns the image reference the images: entry for corsproc
// sets (its digest over its tag, as kustomize does), or "" without one.
func corsprocImage(images []kustomizeImage) string {
	for _, img := range images {
		if img.Name != corsprocImageName {
			continue
		}
		ref := img.Name
		if img.NewName != "" {
			ref = img.NewName
		}
		switch {
		case img.Digest != "":
			ref += "@" + img.Digest
		case img.NewTag != "":
			ref += ":" + img.NewTag
		}
		return ref
	}
	return ""
}
