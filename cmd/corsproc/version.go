package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/corsproc/corsproc/internal/admin"
)

// runVersion is `corsproc version` (and `corsproc --version`): the module
// version, commit and Go version the binary was built with, as the
// corsproc_build_info metric exports them.
func runVersion(_ context.Context, e *env, args []string) error {
	if err := parseFlags("version", newVersionFlags(), args); err != nil {
		return err
	}
	printVersion(e.stdout, admin.ReadBuild())
	return nil
}

func newVersionFlags() *flag.FlagSet { return flag.NewFlagSet("version", flag.ContinueOnError) }

// printVersion writes b as three lines: corsproc VERSION, commit, go.
func printVersion(w io.Writer, b admin.Build) {
	commit := b.Commit
	if b.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "corsproc %s\ncommit: %s\ngo: %s\n", b.Version, commit, b.GoVersion)
}
