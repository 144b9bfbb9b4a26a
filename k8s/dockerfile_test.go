package k8s_test

// No Docker engine runs here or in CI, so the image is never built by the
// tests. This test parses ../Dockerfile with BuildKit's own parser (the one
// `docker build` uses) and checks what can be checked without building: the
// build flags match `make build` plus the static-build ones, the Go version
// matches go.mod, the runtime image is distroless as a numeric non-root user,
// and the entrypoint is the binary the build stage produced. And the build is
// the one a multi-platform `docker buildx build` needs: the build stage runs
// on $BUILDPLATFORM and cross-compiles for TARGETOS/TARGETARCH/TARGETVARIANT,
// both base images are pinned by digest, and the Go caches are BuildKit
// cache mounts.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

const (
	dockerfile   = "../Dockerfile"
	dockerignore = "../.dockerignore"
	// The current distroless release line: Debian 13.
	runtimeImage = "gcr.io/distroless/static-debian13:nonroot"
)

// pinned matches an image reference pinned by digest: name[:tag]@sha256:hex.
var pinned = regexp.MustCompile(`^([^@]+)@sha256:[0-9a-f]{64}$`)

// Sentinels the build arguments expand to when the check reads the RUN
// lines, so that GOOS=${TARGETOS} can be told from GOOS=linux.
var buildArgSentinels = map[string]string{
	"BUILDPLATFORM": "<BUILDPLATFORM>",
	"TARGETOS":      "<TARGETOS>",
	"TARGETARCH":    "<TARGETARCH>",
	"TARGETVARIANT": "<TARGETVARIANT>",
}

// dockerFiles are the files the Dockerfile check reads, relative to k8s/.
var dockerFiles = []string{dockerfile, dockerignore, "../Makefile", "../go.mod"}

func readDockerFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, f := range dockerFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		files[f] = data
	}
	return files
}

func TestDockerfile(t *testing.T) {
	for _, p := range dockerfileProblems(readDockerFiles(t)) {
		t.Error(p)
	}
}

// problems collects failure messages.
type problems []string

func (p *problems) errorf(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

func dockerfileProblems(files map[string][]byte) (ps problems) {
	res, err := parser.Parse(bytes.NewReader(files[dockerfile]))
	if err != nil {
		ps.errorf("Dockerfile: %v", err)
		return ps
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		ps.errorf("Dockerfile: %v", err)
		return ps
	}
	if len(stages) != 2 {
		ps.errorf("Dockerfile: %d stages, want a build stage and a runtime stage", len(stages))
		return ps
	}
	build, final := stages[0], stages[1]

	// The build stage: golang:<go.mod's minor version>, pinned, on the
	// builder's platform.
	goVersion, err := goModMinor(files["../go.mod"])
	if err != nil {
		ps.errorf("%v", err)
	}
	buildImage := build.BaseName
	if m := pinned.FindStringSubmatch(buildImage); m == nil {
		ps.errorf("Dockerfile: build stage FROM %s is not pinned by digest (name:tag@sha256:...): a rebuild would take whatever the tag points at that day", build.BaseName)
	} else {
		buildImage = m[1]
	}
	if want := "golang:" + goVersion; buildImage != want && !strings.HasPrefix(buildImage, want+"-") && !strings.HasPrefix(buildImage, want+".") {
		ps.errorf("Dockerfile: build stage FROM %s, want %s (go.mod says go %s)", build.BaseName, want, goVersion)
	}
	if build.Platform != "$BUILDPLATFORM" && build.Platform != "${BUILDPLATFORM}" {
		ps.errorf("Dockerfile: build stage FROM --platform=%q, want --platform=$BUILDPLATFORM: otherwise `buildx build --platform linux/arm64` runs the Go toolchain itself under emulation instead of cross-compiling", build.Platform)
	}

	// The go build command: make build's arguments, plus -trimpath, with
	// CGO_ENABLED=0.
	makeArgs, err := makeBuildArgs(files["../Makefile"])
	if err != nil {
		ps.errorf("%v", err)
		return ps
	}
	var goBuild []string
	env := map[string]string{}
	args := map[string]bool{}
	var sentinels []string
	for k, v := range buildArgSentinels {
		sentinels = append(sentinels, k+"="+v)
	}
	for _, cmd := range build.Commands {
		switch c := cmd.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				args[a.Key] = true
			}
		case *instructions.RunCommand:
			line := strings.Join(c.CmdLine, " ")
			words, err := shell.NewLex('\\').ProcessWords(line, shell.EnvsFromSlice(sentinels))
			if err != nil {
				ps.errorf("Dockerfile: RUN %s: %v", c.CmdLine, err)
			}
			// The --mount flags are parsed when the command is expanded.
			if err := c.Expand(func(word string) (string, error) { return word, nil }); err != nil {
				ps.errorf("Dockerfile: RUN %s: %v", c.CmdLine, err)
			}
			caches := map[string]bool{}
			for _, m := range instructions.GetMounts(c) {
				if m.Type == instructions.MountTypeCache {
					caches[m.Target] = true
				}
			}
			for i := range words {
				if words[i] != "go" || i+1 >= len(words) {
					continue
				}
				switch words[i+1] {
				case "build":
					if goBuild != nil {
						ps.errorf("Dockerfile: go build runs twice")
					}
					goBuild = words[i+2:]
					for _, w := range words[:i] {
						if k, v, ok := strings.Cut(w, "="); ok {
							env[k] = v
						}
					}
					for _, dir := range []string{"/go/pkg/mod", "/root/.cache/go-build"} {
						if !caches[dir] {
							ps.errorf("Dockerfile: the go build RUN has no --mount=type=cache,target=%s: every build would compile (or download) from scratch", dir)
						}
					}
					if !strings.Contains(line, "GOARM=") || !strings.Contains(line, "${TARGETVARIANT#v}") {
						ps.errorf("Dockerfile: go build does not set GOARM from TARGETVARIANT: --platform linux/arm/v6 and linux/arm/v7 would get the same binary")
					}
				case "mod":
					if !caches["/go/pkg/mod"] {
						ps.errorf("Dockerfile: go mod download has no --mount=type=cache,target=/go/pkg/mod")
					}
				}
			}
		}
	}
	// BuildKit sets the platform arguments in the global scope only; a stage
	// sees one through an ARG naming it (buildkit v0.32.2,
	// frontend/dockerfile/dockerfile2llb/platform.go defaultArgs, and
	// convert.go dispatchArg, which takes the value from globalArgs).
	for _, a := range []string{"TARGETOS", "TARGETARCH", "TARGETVARIANT"} {
		if !args[a] {
			ps.errorf("Dockerfile: the build stage does not declare ARG %s: BuildKit sets it from --platform only for a stage that declares it", a)
		}
	}
	if env["GOOS"] != buildArgSentinels["TARGETOS"] || env["GOARCH"] != buildArgSentinels["TARGETARCH"] {
		ps.errorf("Dockerfile: go build with GOOS=%q GOARCH=%q, want GOOS=${TARGETOS} GOARCH=${TARGETARCH}: the binary must be built for the target platform, not the builder's", env["GOOS"], env["GOARCH"])
	}
	if goBuild == nil {
		ps.errorf("Dockerfile: the build stage runs no go build")
		return ps
	}
	if env["CGO_ENABLED"] != "0" {
		ps.errorf("Dockerfile: go build without CGO_ENABLED=0: the binary would need the libc that distroless/static does not have")
	}
	out, rest := splitOutput(goBuild)
	_, mk := splitOutput(makeArgs)
	want := append([]string{"-trimpath"}, mk...)
	slices.Sort(rest)
	slices.Sort(want)
	if !slices.Equal(rest, want) {
		ps.errorf("Dockerfile: go build %q (besides -o), want %q: make build's flags and package (Makefile) plus -trimpath", rest, want)
	}
	if out == "" {
		ps.errorf("Dockerfile: go build has no -o")
		return ps
	}

	// The runtime stage: distroless static, pinned, the binary, a numeric
	// non-root user.
	if m := pinned.FindStringSubmatch(final.BaseName); m == nil {
		ps.errorf("Dockerfile: runtime stage FROM %s is not pinned by digest (%s@sha256:...)", final.BaseName, runtimeImage)
	} else if m[1] != runtimeImage {
		ps.errorf("Dockerfile: runtime stage FROM %s, want %s", final.BaseName, runtimeImage)
	}
	var user, bin string
	var entrypoint []string
	for _, cmd := range final.Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.CopyCommand:
			if c.From == build.Name && slices.Contains(c.SourcePaths, out) {
				bin = c.DestPath
			}
		case *instructions.EntrypointCommand:
			if !c.PrependShell {
				entrypoint = c.CmdLine
			} else {
				ps.errorf("Dockerfile: ENTRYPOINT in shell form: distroless has no shell; use the exec form [\"...\"]")
			}
		case *instructions.RunCommand:
			ps.errorf("Dockerfile: RUN in the runtime stage: distroless has no shell")
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		ps.errorf("Dockerfile: USER %q, want a numeric non-root uid (65532:65532): the kubelet can only check runAsNonRoot on a numeric user", user)
	} else if n != 65532 {
		ps.errorf("Dockerfile: USER %q: the manifests run as 65532, distroless's nonroot", user)
	}
	if bin == "" {
		ps.errorf("Dockerfile: the runtime stage does not COPY --from=%s %s", build.Name, out)
	} else if len(entrypoint) == 0 || entrypoint[0] != bin {
		ps.errorf("Dockerfile: ENTRYPOINT %q, want [%q], the binary copied from the build stage", entrypoint, bin)
	}

	// The build context leaves out what the binary does not need.
	for _, p := range []string{".git", "k8s"} {
		if !slices.Contains(strings.Fields(string(files[dockerignore])), p) {
			ps.errorf(".dockerignore does not leave out %s", p)
		}
	}
	return ps
}

// makeBuildArgs returns the arguments of `$(GO) build` in the Makefile's
// build recipe.
func makeBuildArgs(data []byte) ([]string, error) {
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "build:") {
			in = true
			continue
		}
		if in && !strings.HasPrefix(line, "\t") {
			break
		}
		if in {
			words := strings.Fields(line)
			if i := slices.Index(words, "build"); i > 0 && words[i-1] == "$(GO)" {
				return words[i+1:], nil
			}
		}
	}
	return nil, errors.New("Makefile: no `$(GO) build` in the build recipe")
}

// splitOutput separates -o FILE from the other arguments of go build.
func splitOutput(args []string) (out string, rest []string) {
	for i := 0; i < len(args); i++ {
		if args[i] == "-o" && i+1 < len(args) {
			out = args[i+1]
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	return out, rest
}

// goModMinor returns "1.26" from corsproc's go.mod `go 1.26.0`.
func goModMinor(data []byte) (string, error) {
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(data)
	if m == nil {
		return "", errors.New("go.mod has no go line")
	}
	return string(m[1]), nil
}

// TestDockerfileMutations proves the Dockerfile check fails: each case
// breaks an in-memory copy of one file.
func TestDockerfileMutations(t *testing.T) {
	orig := readDockerFiles(t)
	cases := []struct{ name, file, old, new, want string }{
		{"cgo left on", dockerfile, "CGO_ENABLED=0 GOOS", "CGO_ENABLED=1 GOOS", "without CGO_ENABLED=0"},
		{"no -trimpath", dockerfile, "go build -trimpath -o", "go build -o", "-trimpath"},
		{"flags drift from make build", "../Makefile", "$(GO) build -o bin/corsproc ./cmd/corsproc", "$(GO) build -race -o bin/corsproc ./cmd/corsproc", "make build's flags"},
		{"runs as root", dockerfile, "USER 65532:65532", "USER root", "numeric non-root uid"},
		{"another Go", dockerfile, "golang:1.26.8@", "golang:1.25.9@", "go.mod says go 1.26"},
		{"not distroless", dockerfile, "FROM gcr.io/distroless/static-debian13:nonroot@", "FROM debian:13@", "want gcr.io/distroless/static-debian13:nonroot"},
		{"the old distroless", dockerfile, "static-debian13:nonroot@", "static-debian12:nonroot@", "want gcr.io/distroless/static-debian13:nonroot"},
		{"runtime base by tag only", dockerfile, "static-debian13:nonroot@sha256:1c2c046bc09ed40fad370b599a0b1ae7987f55b01e247cf27a7c27cd97e5bbc7", "static-debian13:nonroot", "runtime stage FROM gcr.io/distroless/static-debian13:nonroot is not pinned by digest"},
		{"build base by tag only", dockerfile, "golang:1.26.8@sha256:3c3e25a4da13fd0478eed2df1eb35a0e667094a7124d3993a6a1d30f71c17e79", "golang:1.26.8", "build stage FROM golang:1.26.8 is not pinned by digest"},
		{"build stage emulated", dockerfile, "FROM --platform=$BUILDPLATFORM golang", "FROM golang", "want --platform=$BUILDPLATFORM"},
		{"no TARGETVARIANT", dockerfile, "ARG TARGETOS TARGETARCH TARGETVARIANT", "ARG TARGETOS TARGETARCH", "does not declare ARG TARGETVARIANT"},
		{"GOARM ignored", dockerfile, `arm) export GOARM="${TARGETVARIANT#v}" ;;`, `arm) ;;`, "GOARM from TARGETVARIANT"},
		{"built for the builder", dockerfile, "GOOS=${TARGETOS} GOARCH=${TARGETARCH}", "GOOS=linux GOARCH=amd64", "want GOOS=${TARGETOS} GOARCH=${TARGETARCH}"},
		{"no build cache", dockerfile, "    --mount=type=cache,target=/root/.cache/go-build \\\n", "", "target=/root/.cache/go-build"},
		{"shell-form entrypoint", dockerfile, `ENTRYPOINT ["/usr/local/bin/corsproc"]`, "ENTRYPOINT /usr/local/bin/corsproc", "shell form"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string][]byte{}
			for k, v := range orig {
				files[k] = v
			}
			if n := bytes.Count(files[c.file], []byte(c.old)); n != 1 {
				t.Fatalf("%s holds %q %d times, want once: update this case", c.file, c.old, n)
			}
			files[c.file] = bytes.Replace(files[c.file], []byte(c.old), []byte(c.new), 1)
			ps := dockerfileProblems(files)
			for _, p := range ps {
				if strings.Contains(p, c.want) {
					t.Logf("reported as: %s", p)
					return
				}
			}
			t.Errorf("no problem mentions %q; got:\n%s", c.want, strings.Join(ps, "\n"))
		})
	}
}
