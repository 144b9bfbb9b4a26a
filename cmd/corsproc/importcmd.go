package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/corsproc/corsproc/internal/importer/django"
)

func newImportFlags() *flag.FlagSet {
	return flag.NewFlagSet("import", flag.ContinueOnError)
}

// errImportIncomplete is import's result when the generated policy needs a
// hand: the YAML and every warning are already printed.
var errImportIncomplete = errors.New("import: the generated policy does not load as it is; see the warnings")

// runImport is `corsproc import django SETTINGS.py`: read a Django settings
// file without executing it and print the equivalent policy file on
// stdout, and every difference between django-cors-headers and corsproc on
// stderr with its line number.
func runImport(_ context.Context, e *env, args []string) error {
	pos, err := parseFlagsWithArgs("import", newImportFlags(), args, "django", "SETTINGS.py")
	if err != nil {
		return err
	}
	if pos[0] != "django" {
		return usageErrorf("import: unknown source %q: corsproc imports from django", pos[0])
	}
	file := pos[1]
	src, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	res, err := django.Import(file, src)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if _, err := e.stdout.Write(res.YAML); err != nil {
		return err
	}
	for _, w := range res.Warnings {
		// What corsproc refuses is an error, at its settings line; the
		// command then exits 1.
		severity := "warning"
		if w.Error {
			severity = "error"
		}
		fmt.Fprintf(e.stderr, "%s: %s\n", severity, w)
	}
	if res.LoadError != nil {
		return errImportIncomplete
	}
	return nil
}
