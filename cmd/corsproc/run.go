package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Run runs the corsproc command line args (without the program name),
// writing requested output (help) to stdout and logs to stderr. It returns
// when the command is done or, for serve, when ctx is cancelled and the
// server has drained. A command-line mistake is returned as a usage error;
// see exitCode.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return run(ctx, args, &env{stdout: stdout, stderr: stderr})
}

// env is what a command gets from Run.
type env struct {
	stdout, stderr io.Writer
	// ready, when set, is called once serve accepts connections, with the
	// addresses it bound. Tests use it to learn the ports they asked the
	// kernel to pick (port 0).
	ready func(listening)
}

// command is one corsproc subcommand.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string
	run     func(ctx context.Context, e *env, args []string) error
	// flags returns the command's flag set, bound to throwaway values; help
	// uses it to describe every flag.
	flags func() *flag.FlagSet
}

// defaultCommand runs when no command is named: plain `corsproc`, or
// `corsproc --policy FILE`.
const defaultCommand = "serve"

// commands is the dispatch table.
var commands = []command{
	{
		name:    "serve",
		summary: "serve the ext_proc gRPC service Envoy calls (the default)",
		run:     runServe,
		flags:   func() *flag.FlagSet { return newServeFlags(new(serveConfig)) },
	},
	{
		name:    "dev",
		summary: "run corsproc and an emulated Envoy in front of an app, in one process, for local development",
		run:     runDev,
		flags:   func() *flag.FlagSet { return newDevFlags(new(devConfig)) },
	},
	{
		name:    "check",
		args:    "FILE|DIR",
		summary: "validate a policy file or directory, or the policy sets of Kubernetes manifests, without serving (exit 1 on errors)",
		run:     runCheck,
		flags:   func() *flag.FlagSet { return newCheckFlags(new(checkConfig)) },
	},
	{
		name:    "explain",
		summary: "explain what corsproc does with a request, check by check, and how to fix a refusal",
		run:     runExplain,
		flags:   func() *flag.FlagSet { return newExplainFlags(new(explainConfig)) },
	},
	{
		name:    "import",
		args:    "django|nginx|envoy|istio|gateway-api FILE|DIR|-",
		summary: "turn another system's CORS configuration into a policy file on stdout, differences on stderr",
		run:     runImport,
		flags:   newImportFlags,
	},
	{
		name:    "audit",
		args:    "django|nginx|envoy|istio|gateway-api FILE|DIR|-",
		summary: "report unsafe CORS in another system's configuration as it is (exit 1 when unsafe)",
		run:     runAudit,
		flags:   func() *flag.FlagSet { return newAuditFlags(new(auditConfig)) },
	},
	{
		name:    "version",
		summary: "print the module version, commit and Go version corsproc was built with",
		run:     runVersion,
		flags:   newVersionFlags,
	},
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func run(ctx context.Context, args []string, e *env) error {
	name := defaultCommand
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "-h" || a == "-help" || a == "--help":
			printUsage(e.stdout)
			return nil
		case a == "help":
			return runHelp(e.stdout, args[1:])
		case a == "-version" || a == "--version":
			name, args = "version", args[1:]
		case !strings.HasPrefix(a, "-"):
			name, args = a, args[1:]
		}
	}
	c, ok := lookup(name)
	if !ok {
		return usageErrorf("unknown command %q", name)
	}
	err := c.run(ctx, e, args)
	if errors.Is(err, flag.ErrHelp) {
		printCommandUsage(e.stdout, c)
		return nil
	}
	return err
}

// runHelp serves `corsproc help [command]`.
func runHelp(w io.Writer, args []string) error {
	switch len(args) {
	case 0:
		printUsage(w)
		return nil
	case 1:
		c, ok := lookup(args[0])
		if !ok {
			return usageErrorf("help: unknown command %q", args[0])
		}
		printCommandUsage(w, c)
		return nil
	default:
		return usageErrorf("help: want at most one command, got %d arguments", len(args))
	}
}

// printUsage describes the commands and the flags of the default command,
// since those are the flags plain `corsproc` accepts.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `corsproc enforces CORS policies for Envoy through its External Processing
(ext_proc) filter.

Usage:
  corsproc [flags]              same as corsproc serve [flags]
  corsproc <command> [flags]
  corsproc help [command]
  corsproc --version            same as corsproc version

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	def, _ := lookup(defaultCommand)
	fmt.Fprintf(w, "\nFlags (of %s):\n", def.name)
	printFlags(w, def.flags())
}

func printCommandUsage(w io.Writer, c command) {
	args := ""
	if c.args != "" {
		args = " " + c.args
	}
	fs := c.flags()
	if !hasFlags(fs) {
		fmt.Fprintf(w, "Usage: corsproc %s%s\n\n%s.\n", c.name, args, upperFirst(c.summary))
		return
	}
	fmt.Fprintf(w, "Usage: corsproc %s [flags]%s\n\n%s.\n\nFlags:\n", c.name, args, upperFirst(c.summary))
	printFlags(w, fs)
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// printFlags lists every flag with its argument, description and default,
// spelled as the docs spell them (the flag package accepts one dash or
// two): a one-letter flag with one dash (-o), any other with two.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + arg
		}
		dashes := "--"
		if len(f.Name) == 1 {
			dashes = "-"
		}
		fmt.Fprintf(w, "  %s%s%s\n", dashes, f.Name, arg)
		for line := range strings.Lines(usage) {
			fmt.Fprintf(w, "        %s", line)
		}
		if f.DefValue != "" && f.DefValue != "false" {
			if _, isString := f.Value.(flag.Getter).Get().(string); isString {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			} else {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
		}
		fmt.Fprintln(w)
	})
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// parseFlags parses the flags of command c into fs. It returns
// flag.ErrHelp for -h/--help, which run answers with the command's help,
// and a usage error for anything else wrong, including a positional
// argument: it serves the commands that take none (parseFlagsWithArgs the
// others).
func parseFlags(c string, fs *flag.FlagSet, args []string) error {
	_, err := parseFlagsWithArgs(c, fs, args)
	return err
}

// parseFlagsWithArgs parses flags that may come before or after the
// command's positional arguments (corsproc check FILE --strict), and
// requires exactly the arguments named in want.
func parseFlagsWithArgs(c string, fs *flag.FlagSet, args []string, want ...string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageErrorf("%s: %v", c, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(want) == 0 && len(pos) > 0 {
		return nil, usageErrorf("%s: unexpected argument %q", c, pos[0])
	}
	if len(pos) != len(want) {
		return nil, usageErrorf("%s: want %d argument(s) (%v), got %d", c, len(want), want, len(pos))
	}
	return pos, nil
}

// usageError is a command-line mistake: main exits 2 for it and points at
// --help.
type usageError struct{ err error }

func (e *usageError) Error() string {
	return e.err.Error() + "\nrun 'corsproc --help' for usage"
}

func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitCode maps Run's result to the process exit status: 0 for success, 2
// for a usage error, 1 for anything else.
func exitCode(err error) int {
	var u *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		return 2
	default:
		return 1
	}
}
