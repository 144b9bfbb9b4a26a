package admin

import (
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricBuildInfo is the gauge that exports Build: value 1, labels
// version, commit and goversion.
const MetricBuildInfo = "corsproc_build_info"

// Build is what a corsproc binary knows of itself, from the build
// information the go command embeds (runtime/debug.ReadBuildInfo).
type Build struct {
	// Version is the module version: v1.2.3 for `go install ...@v1.2.3`,
	// a pseudo-version (v0.0.0-20260102150405-0123456789ab) for a commit
	// without a tag, "(devel)" or "unknown" when the go command did not
	// know it.
	Version string
	// Commit is the VCS revision the binary was built from (vcs.revision,
	// stamped by go build in a checkout), or the commit a pseudo-version
	// names (go install of a commit); "unknown" when neither is known.
	Commit string
	// Modified is true when the checkout had uncommitted changes.
	Modified bool
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
}

// ReadBuild returns the running binary's Build.
func ReadBuild() Build {
	bi, _ := debug.ReadBuildInfo()
	return BuildOf(bi)
}

// BuildOf returns the Build that bi, a binary's build information, gives
// (nil: none embedded).
func BuildOf(bi *debug.BuildInfo) Build {
	b := Build{Version: "unknown", Commit: "unknown", GoVersion: "unknown"}
	if bi == nil {
		return b
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	if b.Commit == "unknown" {
		if c := pseudoCommit(b.Version); c != "" {
			b.Commit = c
		}
	}
	return b
}

// pseudoCommit returns the commit prefix a pseudo-version ends with
// (vX.Y.Z-yyyymmddhhmmss-abcdefabcdef, or -0.yyyymmddhhmmss-abcdef... after
// a pre-release), or "".
func pseudoCommit(v string) string {
	v, _, _ = strings.Cut(v, "+") // +incompatible, +dirty
	i := strings.LastIndexByte(v, '-')
	if i < 0 {
		return ""
	}
	c := v[i+1:]
	if len(c) != 12 || strings.Trim(c, "0123456789abcdef") != "" {
		return ""
	}
	return c
}

// newBuildInfo returns the corsproc_build_info gauge for b.
func newBuildInfo(b Build) prometheus.Gauge {
	commit := b.Commit
	if b.Modified {
		commit += "-modified"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        MetricBuildInfo,
		Help:        "Always 1; its labels say which corsproc is running: the module version, the VCS commit (-modified when built from a checkout with changes) and the Go version that built it.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": commit, "goversion": b.GoVersion},
	})
	g.Set(1)
	return g
}
