// Package docs_test checks that the documentation is whole: every doc a
// Go file cites exists, with the section or heading it names, no code
// points outside the repository for its rules, and every relative link of
// the Markdown files reaches a file and, with an anchor, a heading.
package docs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// root is the repository, from this package's directory.
const root = ".."

// markdown returns the Markdown files of the repository (README.md,
// docs/, k8s/README.md, ...), by path from root.
func markdown(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	walk(t, func(path string) {
		if strings.HasSuffix(path, ".md") {
			files[path] = read(t, path)
		}
	})
	return files
}

// walk calls f with the path (from root) of every file of the repository,
// the version control directory and test data aside.
func walk(t *testing.T, f func(path string)) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if name := d.Name(); rel != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		f(filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var headingRE = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)

// headings returns the headings of a Markdown text.
func headings(md string) []string {
	var hs []string
	inFence := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if m := headingRE.FindStringSubmatch(line); m != nil && !inFence {
			hs = append(hs, m[1])
		}
	}
	return hs
}

// anchor is the anchor a Markdown renderer gives a heading: lower case,
// punctuation but hyphens and underscores dropped, spaces made hyphens.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// outside are the names of documents that are not part of the repository,
// which the code once cited for its rules.
var outside = []string{"shared/docs", "cors-semantics.md", "envoy-extproc.md", "../shared"}

// citeRE finds a doc cited from Go code, with the section (§N) or the
// quoted heading it names, if any.
var citeRE = regexp.MustCompile(`docs/([a-z0-9-]+\.md)(?:, *(?:§(\d+)|"([^"]+)"))?`)

// TestCodeCitations: every docs/X.md a Go file names exists; a cited §N is
// a numbered heading of it, and a quoted heading one of its headings; and
// no Go file points outside the repository for a rule.
func TestCodeCitations(t *testing.T) {
	docs := markdown(t)
	cited := 0
	walk(t, func(path string) {
		if !strings.HasSuffix(path, ".go") {
			return
		}
		src := read(t, path)
		for _, o := range outside {
			if strings.Contains(src, o) && path != "docs/docs_test.go" {
				t.Errorf("%s names %q, which is not part of the repository: cite docs/ instead", path, o)
			}
		}
		for _, m := range citeRE.FindAllStringSubmatch(src, -1) {
			cited++
			doc, ok := docs["docs/"+m[1]]
			if !ok {
				t.Errorf("%s cites docs/%s, which does not exist", path, m[1])
				continue
			}
			hs := headings(doc)
			switch {
			case m[2] != "":
				if !hasHeadingPrefix(hs, m[2]+". ") {
					t.Errorf("%s cites docs/%s, §%s: no heading %q there", path, m[1], m[2], m[2]+". …")
				}
			case m[3] != "":
				// A heading cited in a comment may wrap: "Which policy\n// governs".
				h := strings.Join(strings.Fields(strings.ReplaceAll(m[3], "//", " ")), " ")
				if !hasHeadingPrefix(hs, h) {
					t.Errorf("%s cites docs/%s, %q: no such heading there", path, m[1], h)
				}
			}
		}
	})
	if cited == 0 {
		t.Fatal("found no citation of docs/ in the Go files: the walk is broken")
	}
}

// hasHeadingPrefix reports whether a heading starts with p (a quoted
// heading may be cited without its tail).
func hasHeadingPrefix(hs []string, p string) bool {
	for _, h := range hs {
		if strings.HasPrefix(strings.Trim(h, "`"), p) || strings.HasPrefix(h, p) {
			return true
		}
	}
	return false
}

// linkRE finds Markdown links [text](target); images and absolute URLs are
// told apart by the caller.
var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestMarkdownLinks: every relative link of every Markdown file reaches a
// file or directory of the repository, and its anchor, if any, a heading of
// the Markdown file it reaches.
func TestMarkdownLinks(t *testing.T) {
	docs := markdown(t)
	links := 0
	for path, md := range docs {
		for _, m := range linkRE.FindAllStringSubmatch(md, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links++
			file, frag, _ := strings.Cut(target, "#")
			dest := path
			if file != "" {
				dest = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(path), file)))
				if _, err := os.Stat(filepath.Join(root, dest)); err != nil {
					t.Errorf("%s: link %q: %s does not exist", path, target, dest)
					continue
				}
			}
			if frag == "" {
				continue
			}
			doc, ok := docs[dest]
			if !ok {
				continue // an anchor into a non-Markdown file (a line of code)
			}
			found := false
			for _, h := range headings(doc) {
				if anchor(h) == frag {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s: link %q: no heading of %s has the anchor #%s", path, target, dest, frag)
			}
		}
	}
	if links == 0 {
		t.Fatal("found no relative link in the Markdown files: the scan is broken")
	}
}
