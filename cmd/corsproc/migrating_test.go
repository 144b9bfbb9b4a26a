package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var updateGuide = flag.Bool("update-guide", false, "rewrite the outputs docs/migrating.md shows with what corsproc prints")

// guideStepRE finds the marked blocks of docs/migrating.md: a file to
// write, a command to run (its stdout and exit status), or the stderr of
// the command before.
var guideStepRE = regexp.MustCompile("(?s)<!-- (file|run|stderr)(?:: ([^>]*?))? -->\n```[a-z]*\n(.*?)```")

// TestMigratingGuide runs every example of docs/migrating.md as a reader
// does, in a directory of its own: it writes each file the guide shows,
// runs each command, and checks that stdout, stderr (with the line main
// prints for an error) and the exit status are what the guide says.
func TestMigratingGuide(t *testing.T) {
	guide, err := filepath.Abs("../../docs/migrating.md")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(guide)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	type edit struct {
		from, to int
		text     string
	}
	var edits []edit
	runs := 0
	var lastStderr, lastCmd string
	for _, m := range guideStepRE.FindAllSubmatchIndex(doc, -1) {
		kind, body := string(doc[m[2]:m[3]]), string(doc[m[6]:m[7]])
		arg := ""
		if m[4] >= 0 {
			arg = string(doc[m[4]:m[5]])
		}
		switch kind {
		case "file":
			if err := os.MkdirAll(filepath.Dir(arg), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(arg, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		case "run":
			runs++
			cmd, exit, ok := strings.Cut(arg, "; exit ")
			want, err := strconv.Atoi(exit)
			if !ok || err != nil {
				t.Fatalf("run %q: want \"ARGS; exit N\"", arg)
			}
			var stdout, stderr bytes.Buffer
			err = Run(t.Context(), strings.Fields(cmd), &stdout, &stderr)
			if err != nil {
				stderr.WriteString("corsproc: " + err.Error() + "\n")
			}
			if got := exitCode(err); got != want {
				t.Errorf("corsproc %s: exit %d, the guide says %d\n%s", cmd, got, want, stderr.String())
			}
			if stdout.String() != body {
				edits = append(edits, edit{m[6], m[7], stdout.String()})
				if !*updateGuide {
					t.Errorf("corsproc %s: stdout differs from the guide's (-update-guide rewrites it):\n--- got\n%s--- guide\n%s", cmd, stdout.String(), body)
				}
			}
			lastStderr, lastCmd = stderr.String(), cmd
		case "stderr":
			if lastStderr != body {
				edits = append(edits, edit{m[6], m[7], lastStderr})
				if !*updateGuide {
					t.Errorf("corsproc %s: stderr differs from the guide's (-update-guide rewrites it):\n--- got\n%s--- guide\n%s", lastCmd, lastStderr, body)
				}
			}
		}
	}
	if runs < 5 {
		t.Fatalf("the guide runs %d commands; its markers are lost", runs)
	}
	if *updateGuide && len(edits) > 0 {
		out := doc
		for i := len(edits) - 1; i >= 0; i-- {
			e := edits[i]
			out = append(append(append([]byte(nil), out[:e.from]...), e.text...), out[e.to:]...)
		}
		if err := os.WriteFile(guide, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
