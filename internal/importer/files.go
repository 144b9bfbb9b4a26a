package importer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// File is one source file as read: Name is how warnings and comments name
// it ("-" is standard input).
type File struct {
	Name string
	Data []byte
}

// Reader is a source importer's entry point: it reads the files of one
// import (in name order) into a RuleSet. Each source package exports one
// as Read; an error is for files it cannot read at all (not YAML, not
// nginx syntax), never for what it can read but not carry over, which are
// warnings.
type Reader func(files []File) (*RuleSet, error)

// MaxFileSize is the largest source file read, and MaxTotalSize the most
// bytes of all the files of a directory.
const (
	MaxFileSize  = 8 << 20
	MaxTotalSize = 64 << 20
	MaxFiles     = 10000
)

// ReadFiles reads what corsproc import and audit are given: a file, a
// directory (every regular file, or symlink to one, in its tree whose name
// ends in one of exts, or, for an ext ending in "/" such as
// "sites-enabled/", that is in a directory of that name; in name order,
// hidden entries skipped), or "-" for standard input.
func ReadFiles(arg string, stdin io.Reader, exts []string) ([]File, error) {
	if arg == "-" {
		data, err := readCapped(stdin, "-")
		if err != nil {
			return nil, err
		}
		return []File{{Name: "-", Data: data}}, nil
	}
	st, err := os.Stat(arg)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		f, err := os.Open(arg)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", arg)
		}
		data, err := readCapped(f, arg)
		if err != nil {
			return nil, err
		}
		return []File{{Name: arg, Data: data}}, nil
	}
	var names []string
	err = filepath.WalkDir(arg, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != arg && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		regular := d.Type().IsRegular()
		if d.Type()&fs.ModeSymlink != 0 {
			// sites-enabled/default -> ../sites-available/default
			st, err := os.Stat(path)
			regular = err == nil && st.Mode().IsRegular()
		}
		if regular && slices.ContainsFunc(exts, func(e string) bool {
			if dir, ok := strings.CutSuffix(e, "/"); ok {
				return filepath.Base(filepath.Dir(path)) == dir
			}
			return strings.HasSuffix(d.Name(), e)
		}) {
			if len(names) == MaxFiles {
				return fmt.Errorf("%s: more than %d files", arg, MaxFiles)
			}
			names = append(names, path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no file named *%s in the directory", arg, strings.Join(exts, ", *"))
	}
	slices.Sort(names)
	var files []File
	total := 0
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			return nil, err
		}
		data, err := readCapped(f, n)
		f.Close()
		if err != nil {
			return nil, err
		}
		if total += len(data); total > MaxTotalSize {
			return nil, fmt.Errorf("%s: the files hold more than %d bytes", arg, MaxTotalSize)
		}
		files = append(files, File{Name: n, Data: data})
	}
	return files, nil
}

var errTooLarge = errors.New("too large")

func readCapped(r io.Reader, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", name, errTooLarge, MaxFileSize)
	}
	return data, nil
}
