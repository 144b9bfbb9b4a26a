package django_test

import (
	"os"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/importer/django"
)

// codeBlocks returns the fenced code blocks of a Markdown file whose info
// string is lang, in order.
func codeBlocks(doc, lang string) []string {
	var out []string
	for _, part := range strings.Split(doc, "```"+lang+"\n")[1:] {
		out = append(out, part[:strings.Index(part, "```")])
	}
	return out
}

// TestMigrationGuide imports the settings shown in
// docs/migrating-from-django.md and checks that the guide shows exactly what
// the importer prints, YAML and warnings alike.
func TestMigrationGuide(t *testing.T) {
	data, err := os.ReadFile("../../../docs/migrating-from-django.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	settings, yamls, texts := codeBlocks(doc, "python"), codeBlocks(doc, "yaml"), codeBlocks(doc, "text")
	if len(settings) == 0 || len(yamls) == 0 || len(texts) == 0 {
		t.Fatal("the guide lost its settings, policy or warnings block")
	}
	res, err := django.Import("settings.py", []byte(settings[0]))
	if err != nil {
		t.Fatal(err)
	}
	if string(res.YAML) != yamls[0] {
		t.Errorf("the guide's policy differs from the importer's:\n--- guide\n%s--- importer\n%s", yamls[0], res.YAML)
	}
	var warnings strings.Builder
	for _, w := range res.Warnings {
		warnings.WriteString("warning: " + w.String() + "\n")
	}
	if warnings.String() != texts[0] {
		t.Errorf("the guide's warnings differ from the importer's:\n--- guide\n%s--- importer\n%s", texts[0], warnings.String())
	}
	if res.LoadError != nil {
		t.Errorf("the guide's policy does not load: %v", res.LoadError)
	}
}
