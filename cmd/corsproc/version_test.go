package main

import (
	"bytes"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/admin"
)

// corsproc version and --version print what the build information says:
// the module version, the commit and the Go version.
func TestVersion(t *testing.T) {
	t.Parallel()
	want := admin.ReadBuild()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var stdout bytes.Buffer
		if err := Run(t.Context(), args, &stdout, io.Discard); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		out := stdout.String()
		for _, w := range []string{"corsproc " + want.Version + "\n", "commit: " + want.Commit, "go: " + runtime.Version() + "\n"} {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output lacks %q:\n%s", args, w, out)
			}
		}
	}
	if err := Run(t.Context(), []string{"version", "extra"}, io.Discard, io.Discard); exitCode(err) != 2 {
		t.Errorf("version extra: exit %d, want 2", exitCode(err))
	}
}

// The three ways a binary is built: go install of a tag, go install of a
// commit (a pseudo-version), go build in a checkout (VCS stamping).
func TestVersionFromBuildInfo(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"tag", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}},
			"corsproc v1.4.0\ncommit: unknown\ngo: go1.26.8\n"},
		{"pseudo-version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261206190000-0123456789ab"}},
			"corsproc v0.0.0-20261206190000-0123456789ab\ncommit: 0123456789ab\ngo: go1.26.8\n"},
		{"checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}}},
			"corsproc (devel)\ncommit: 0123456789abcdef0123456789abcdef01234567 (modified)\ngo: go1.26.8\n"},
		{"none", nil, "corsproc unknown\ncommit: unknown\ngo: unknown\n"},
	} {
		var b bytes.Buffer
		printVersion(&b, admin.BuildOf(c.bi))
		if b.String() != c.want {
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, b.String(), c.want)
		}
	}
}
