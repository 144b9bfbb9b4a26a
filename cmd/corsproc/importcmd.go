package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/corsproc/corsproc/internal/importer/django"
)

func newImportFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.Var(new(debugProfile), "debug",
		"django: evaluate the settings for DEBUG = `true|false` only and write one policy,\n"+
			"named django, for that profile (default: both, with a second policy,\n"+
			"django-debug, when the CORS settings depend on DEBUG)")
	fs.String("o", "", "write the policy file to `FILE` instead of stdout")
	return fs
}

// debugProfile is import's --debug: the DEBUG value the Django settings are
// evaluated for.
type debugProfile django.Profile

func (p *debugProfile) String() string {
	switch django.Profile(*p) {
	case django.ProductionProfile:
		return "false"
	case django.DebugProfile:
		return "true"
	}
	return ""
}

func (p *debugProfile) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*p = debugProfile(django.ProductionProfile)
	if b {
		*p = debugProfile(django.DebugProfile)
	}
	return nil
}

// errImportIncomplete is import's result when the generated policy needs a
// hand: the YAML and every warning are already printed.
var errImportIncomplete = errors.New("import: the generated policy does not load as it is; see the warnings")

// errImportLeftOut is import's result when the policy lacks values, or
// parts of values, that the settings give and the importer could not read:
// they must be written in by hand, as the warnings say.
var errImportLeftOut = errors.New("import: the policy lacks values the importer could not read; add them by hand as the warnings say")

// runImport is `corsproc import django SETTINGS.py`: read a Django settings
// file without executing it and print the equivalent policy file on
// stdout, and every difference between django-cors-headers and corsproc on
// stderr with its line number.
func runImport(_ context.Context, e *env, args []string) error {
	fs := newImportFlags()
	pos, err := parseFlagsWithArgs("import", fs, args, "SOURCE", "FILE|DIR|-")
	if err != nil {
		return err
	}
	if pos[0] != "django" {
		if fs.Lookup("debug").Value.String() != "" {
			return usageErrorf("import: --debug selects a DEBUG profile of Django settings; %s has none", pos[0])
		}
		// nginx, envoy, istio, gateway-api: importsources.go.
		return runImportSource(e, fs, pos[0], pos[1])
	}
	file := pos[1]
	src, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	profile := django.Profile(*fs.Lookup("debug").Value.(*debugProfile))
	res, err := django.ImportWith(file, src, django.Options{Profile: profile})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	// What corsproc refuses is an error among the warnings, at its
	// settings line; the command then exits 1.
	if err := writeImport(e, fs, res.YAML, res.Warnings); err != nil {
		return err
	}
	if res.LoadError != nil {
		return errImportIncomplete
	}
	if res.Incomplete() {
		return errImportLeftOut
	}
	return nil
}
