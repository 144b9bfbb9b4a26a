package policyfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/corsproc/corsproc/policy"
)

// Load reads, decodes, validates and compiles the policy set at path: a
// policy file, or a directory whose *.yaml and *.yml files (in name order,
// hidden files skipped) form one set, as a Kubernetes ConfigMap mount gives.
// Every problem of every file is reported at once in a *ValidationError.
// The YAML of a directory's files is parsed on several goroutines (up to
// GOMAXPROCS), one file each; everything else happens in order, so the
// result and diagnostics are those of loading the files one after another.
func Load(path string) (*policy.Set, error) {
	s, _, err := LoadChanged(path, "")
	return s, err
}

// LoadChanged is Load for a reload: it reads the files once, and when their
// digest is active (the active set's Digest) it returns a nil Set, the
// digest and no error, without decoding them. The digest is "" only when
// the files could not be read; a set they give that fails to load comes
// with its digest and the error.
func LoadChanged(path, active string) (*policy.Set, string, error) {
	sources, digest, err := readSources(path)
	if err != nil {
		return nil, "", err
	}
	if digest == active {
		return nil, digest, nil
	}
	// The data was read here and is not kept elsewhere: no copy needed.
	s, err := policy.Compile(policy.Source{Name: path, Digest: digest, Files: decodeFiles(sources)})
	if err != nil {
		return nil, digest, err
	}
	return s, digest, nil
}

// decodeFiles decodes the files of a set, in order. The files share the
// bounds of limits.go: the first one crossed stops the load (the result
// ends with the capped file, and build compiles nothing).
//
// The result is the one decode gives called on each file in turn. Parsing
// the YAML is most of what decoding costs, and a file parses the same
// whatever the other files hold, so the files are parsed concurrently; what
// counts against the bounds is done in order on this goroutine: the sizes
// and YAML node bounds of the files are checked before any tree is built
// (so the trees stay within MaxYAMLNodes together), then the trees are
// decoded, aliases expanded, on the budget of the files before them.
func decodeFiles(sources []fileText) []policy.Input {
	var b budget
	files := make([]*decoded, 0, len(sources))
	for _, src := range sources {
		files = append(files, checkFile(src.name, src.data, &b))
		if files[len(files)-1].capped {
			break
		}
	}
	docs := make([]*yaml.Node, len(files))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range files {
		if files[i].capped {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			docs[i] = parseWhole(sources[i].data, files[i])
			<-sem
		})
	}
	wg.Wait()
	for i := range files {
		if !files[i].capped {
			files[i].decodeDoc(docs[i], &b)
		}
		if files[i].capped {
			return inputs(files[:i+1], sources)
		}
	}
	return inputs(files, sources)
}

// Digest returns the digest of the policy files at path, what Load would
// give the set's Digest, without decoding them: a reload compares it with
// the active set's before doing the work of a Load.
func Digest(path string) (string, error) {
	_, digest, err := readSources(path)
	return digest, err
}

// readSources reads the policy files at path (see Load) and returns them
// with their digest: that of the file's bytes, or for a directory that of
// each file's name, length and bytes in turn. Only regular files are read
// (readFile), at most MaxFileSize bytes each and MaxSetSize in all.
func readSources(path string) ([]fileText, string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", err
	}
	if !fi.IsDir() {
		data, err := readFile(path)
		if err != nil {
			return nil, "", err
		}
		sum := sha256.Sum256(data)
		return []fileText{{name: path, data: data}}, hex.EncodeToString(sum[:]), nil
	}
	names, err := policyFiles(path)
	if err != nil {
		return nil, "", err
	}
	if len(names) == 0 {
		return nil, "", fmt.Errorf("%s: no policy files (*.yaml, *.yml) in the directory", path)
	}
	sources := make([]fileText, 0, len(names))
	h := sha256.New()
	total := 0
	for _, name := range names {
		data, err := readFile(name)
		if err != nil {
			return nil, "", err
		}
		if total += len(data); total > MaxSetSize {
			return nil, "", fmt.Errorf("%s: the policy files are larger than the %d bytes corsproc reads in all (at %s); see docs/policy.md",
				path, MaxSetSize, filepath.Base(name))
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(name), len(data))
		h.Write(data)
		sources = append(sources, fileText{name: name, data: data})
	}
	return sources, hex.EncodeToString(h.Sum(nil)), nil
}

// policyFiles lists the policy files of a directory in name order
// (FileNames), refusing any that cannot be read as a regular file.
func policyFiles(dir string) ([]string, error) {
	candidates, err := FileNames(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, full := range candidates {
		// Follow symlinks (a ConfigMap's files are links into ..data). A
		// policy file that cannot be reached (a dangling link, a link loop)
		// is an error: skipping it would silently drop its policies.
		fi, err := os.Stat(full)
		if err != nil {
			return nil, err
		}
		if fi.IsDir() {
			continue
		}
		// Anything else that is not a regular file (a named pipe, a
		// device, a socket) would block or never end the read: an error,
		// not skipped, as its policies would be silently dropped.
		if err := regular(full, fi); err != nil {
			return nil, err
		}
		names = append(names, full)
	}
	return names, nil
}

// FileNames returns the paths of the policy files of dir in name order:
// *.yaml and *.yml, skipping names that start with "." (a ConfigMap mount
// holds ..data and ..2024_… entries beside the files, and editors leave
// hidden swap files). A load and the reloader's watch list both use it.
//
// The directory is read a batch of entries at a time, and a directory of
// more than MaxDirEntries entries, or more than MaxFiles policy files, is
// refused before any file is opened: whoever can write to it cannot make a
// load list millions of names. On an error it returns the paths it found
// before it too.
func FileNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var names []string
	seen := 0
	for {
		batch, err := d.ReadDir(1024)
		seen += len(batch)
		if seen > maxDirEntries {
			return names, fmt.Errorf("%s: more than %d entries in the policy directory; see docs/policy.md", dir, maxDirEntries)
		}
		for _, e := range batch {
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			if ext := filepath.Ext(name); ext != ".yaml" && ext != ".yml" {
				continue
			}
			names = append(names, filepath.Join(dir, name))
		}
		if len(names) > maxFiles {
			return names, fmt.Errorf("%s: more than %d policy files (*.yaml, *.yml) in the directory; see docs/policy.md", dir, maxFiles)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return names, err
		}
	}
	slices.Sort(names)
	return names, nil
}

// readFile reads a policy file, refusing anything but a regular file (after
// symlinks) and files above MaxFileSize. It never blocks in open: opening a
// named pipe for reading waits for a writer, so the file is opened
// non-blocking, after os.Stat said it is regular, and the opened file is
// checked again, as the path may have been replaced in between.
func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		e := fileSizeCapError()
		return nil, fmt.Errorf("%s: %s: %s", path, e.msg, e.fix)
	}
	return data, nil
}

// regular returns an error naming path unless fi is a regular file's.
func regular(path string, fi os.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	what := "not a regular file"
	switch t := fi.Mode().Type(); {
	case t&os.ModeDir != 0:
		what = "a directory"
	case t&os.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case t&os.ModeSocket != 0:
		what = "a socket"
	case t&os.ModeCharDevice != 0:
		what = "a character device"
	case t&os.ModeDevice != 0:
		what = "a device"
	}
	return fmt.Errorf("%s: is %s, not a regular file: a policy file must be a regular file (or a symlink to one)", path, what)
}

// Parse decodes, validates and compiles a policy file's contents; file names
// the source in diagnostics. Every problem is reported at once in a
// *ValidationError.
func Parse(file string, data []byte) (*policy.Set, error) {
	sum := sha256.Sum256(data)
	// The caller keeps data: copy it, so that the set stays immutable.
	src := []fileText{{name: file, data: bytes.Clone(data)}}
	return policy.Compile(policy.Source{Name: file, Digest: hex.EncodeToString(sum[:]), Files: inputs([]*decoded{decode(file, data, new(budget))}, src)})
}

// fileText is one policy file as read.
type fileText struct {
	name string
	data []byte
}
