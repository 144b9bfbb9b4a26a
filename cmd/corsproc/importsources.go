package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/corsproc/corsproc/internal/importer"
	"github.com/corsproc/corsproc/internal/importer/django"
	"github.com/corsproc/corsproc/internal/importer/envoy"
	"github.com/corsproc/corsproc/internal/importer/gatewayapi"
	"github.com/corsproc/corsproc/internal/importer/istio"
	"github.com/corsproc/corsproc/internal/importer/nginx"
)

// importSource is one source of corsproc import and audit besides django.
type importSource struct {
	name string
	// exts are the file names read from a directory.
	exts []string
	// read is the source's reader; nil when this build has none.
	read importer.Reader
}

var yamlExts = []string{".yaml", ".yml", ".json"}

// importSources are the sources import and audit read with the shared
// importer (internal/importer); django has its own importer.
var importSources = []importSource{
	{name: "nginx", exts: []string{".conf", "sites-enabled/"}, read: nginx.Read},
	{name: "envoy", exts: yamlExts, read: envoy.Read},
	{name: "istio", exts: yamlExts, read: istio.Read},
	{name: "gateway-api", exts: yamlExts, read: gatewayapi.Read},
}

func sourceNames() string {
	names := []string{"django"}
	for _, s := range importSources {
		names = append(names, s.name)
	}
	return strings.Join(names, ", ")
}

func lookupSource(cmd, name string) (importSource, error) {
	for _, s := range importSources {
		if s.name == name {
			if s.read == nil {
				return s, fmt.Errorf("%s: the %s importer is not in this build", cmd, name)
			}
			return s, nil
		}
	}
	return importSource{}, usageErrorf("%s: unknown source %q: corsproc reads %s", cmd, name, sourceNames())
}

// readSource reads arg (FILE, DIR or -) with the source's reader and
// builds the policy file.
func readSource(e *env, s importSource, arg string) (*importer.Result, error) {
	files, err := importer.ReadFiles(arg, importStdin, s.exts)
	if err != nil {
		return nil, err
	}
	rs, err := s.read(files)
	if err != nil {
		return nil, err
	}
	return importer.Build(rs)
}

// importStdin is what import and audit read for "-"; tests replace it.
var importStdin io.Reader = os.Stdin

// auditDjango audits a Django settings file with the Django importer: what
// corsproc refuses in the generated policy is unsafe.
func auditDjango(arg string) (*importer.Result, error) {
	files, err := importer.ReadFiles(arg, importStdin, []string{".py"})
	if err != nil {
		return nil, err
	}
	res := &importer.Result{}
	for _, f := range files {
		dr, err := django.Import(f.Name, f.Data)
		if err != nil {
			return nil, err
		}
		for _, w := range dr.Warnings {
			if w.Error {
				w.Unsafe, w.Code = true, importer.CodeRefused
				if strings.Contains(w.Setting, "ORIGIN") {
					w.Code = importer.CodeUnsafeOrigin
				}
			}
			res.Warnings = append(res.Warnings, w)
		}
	}
	return res, nil
}

// runImportSource is corsproc import SOURCE FILE|DIR|- for the sources of
// importSources: the policy file to stdout (or -o), every warning to
// stderr, exit 1 when the policy needs a hand (refused, something left out,
// a conflict to decide).
func runImportSource(e *env, fs *flag.FlagSet, source, arg string) error {
	s, err := lookupSource("import", source)
	if err != nil {
		return err
	}
	res, err := readSource(e, s, arg)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := writeImport(e, fs, res.YAML, res.Warnings); err != nil {
		return err
	}
	switch {
	case res.LoadError != nil:
		return errImportIncomplete
	case res.Incomplete():
		return errImportNeedsDecision
	}
	return nil
}

// errImportNeedsDecision is import's result when the policy loads but
// leaves out something the source sets, or holds a conflict to decide.
var errImportNeedsDecision = errors.New("import: the policy leaves out what the sources set, or holds conflicting definitions; see the warnings")

// writeImport writes the policy file to -o's file, or stdout, and then
// every warning to stderr.
func writeImport(e *env, fs *flag.FlagSet, yaml []byte, warnings []importer.Warning) error {
	out := ""
	if f := fs.Lookup("o"); f != nil {
		out = f.Value.String()
	}
	if out == "" || out == "-" {
		if _, err := e.stdout.Write(yaml); err != nil {
			return err
		}
	} else if err := os.WriteFile(out, yaml, 0o644); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	_, err := io.WriteString(e.stderr, importer.WarningsText(warnings))
	return err
}

type auditConfig struct {
	format string
}

func newAuditFlags(c *auditConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.StringVar(&c.format, "format", "text", "output `text|json`")
	return fs
}

// errAuditUnsafe is audit's result when it found something unsafe.
var errAuditUnsafe = errors.New("audit: unsafe CORS found")

// runAudit is corsproc audit SOURCE FILE|DIR|-: every unsafe origin rule
// (by corsproc's own validation of the imported policy), every CORS
// answer without Vary: Origin, every preflight reaching authentication
// and every conflicting definition; exit 1 when one is unsafe.
func runAudit(_ context.Context, e *env, args []string) error {
	var c auditConfig
	pos, err := parseFlagsWithArgs("audit", newAuditFlags(&c), args, "SOURCE", "FILE|DIR|-")
	if err != nil {
		return err
	}
	if c.format != "text" && c.format != "json" {
		return usageErrorf("audit: --format %q: want text or json", c.format)
	}
	var res *importer.Result
	if pos[0] == "django" {
		res, err = auditDjango(pos[1])
	} else {
		var s importSource
		if s, err = lookupSource("audit", pos[0]); err != nil {
			return err
		}
		res, err = readSource(e, s, pos[1])
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	findings, unsafe := importer.Audit(res)
	if c.format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if findings == nil {
			findings = []importer.Finding{}
		}
		if err := enc.Encode(struct {
			Source   string             `json:"source"`
			Findings []importer.Finding `json:"findings"`
			Unsafe   int                `json:"unsafe"`
		}{pos[0], findings, unsafe}); err != nil {
			return err
		}
	} else if _, err := io.WriteString(e.stdout, importer.AuditText(res)); err != nil {
		return err
	}
	if unsafe > 0 {
		return errAuditUnsafe
	}
	return nil
}
