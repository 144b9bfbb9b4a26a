package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
)

// serveFlags are the flags serve must have and help must describe.
var serveFlags = []string{"policy", "listen", "admin", "log-format", "log-level", "shutdown-timeout",
	"tls-cert", "tls-key", "client-ca", "listen-mode", "stream-idle-timeout", "max-request-headers", "max-request-header-bytes",
	"admin-mode", "max-message-bytes", "max-streams", "max-connections", "reload-interval", "explain-refusals"}

func TestServeFlagsAreAllDescribed(t *testing.T) {
	t.Parallel()
	var defined []string
	newServeFlags(new(serveConfig)).VisitAll(func(f *flag.Flag) { defined = append(defined, f.Name) })
	if got, want := strings.Join(defined, " "), "admin admin-mode client-ca explain-refusals listen listen-mode log-format log-level max-connections max-message-bytes max-request-header-bytes max-request-headers max-streams policy reload-interval shutdown-timeout stream-idle-timeout tls-cert tls-key"; got != want {
		t.Errorf("serve defines flags %q, want %q: update serveFlags and this test with the docs", got, want)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"-help"}, {"help"},
		{"serve", "--help"}, {"serve", "-h"}, {"help", "serve"},
		{"--policy", "x.yaml", "--help"}, // help wins over the other flags
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if err := Run(t.Context(), args, &stdout, &stderr); err != nil {
				t.Fatalf("Run(%q) = %v, want nil (exit 0)", args, err)
			}
			out := stdout.String()
			for _, name := range serveFlags {
				if !strings.Contains(out, "--"+name+" ") && !strings.Contains(out, "--"+name+"\n") {
					t.Errorf("help does not describe --%s:\n%s", name, out)
				}
			}
			for _, s := range []string{`"127.0.0.1:9001"`, `"127.0.0.1:9002"`, "10s", "http://[::1]:*", "unix:///"} {
				if !strings.Contains(out, s) {
					t.Errorf("help does not mention %s:\n%s", s, out)
				}
			}
			if stderr.Len() > 0 {
				t.Errorf("help wrote to stderr: %s", stderr.String())
			}
		})
	}
}

func TestTopLevelHelpListsCommands(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	if err := Run(t.Context(), []string{"--help"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		if !strings.Contains(stdout.String(), "\n  "+c.name+" ") {
			t.Errorf("help does not list command %s:\n%s", c.name, stdout.String())
		}
	}
}

// TestCommandHelpFlags: a command's help lists its flags under a heading,
// and a command without flags has neither the heading nor "[flags]".
func TestCommandHelpFlags(t *testing.T) {
	t.Parallel()
	withFlags := map[string]bool{"serve": true, "check": true, "explain": true, "dev": true, "import": true, "audit": true, "version": false}
	for _, c := range commands {
		want, ok := withFlags[c.name]
		if !ok {
			t.Errorf("command %s: say here whether it takes flags", c.name)
			continue
		}
		n := 0
		c.flags().VisitAll(func(*flag.Flag) { n++ })
		if want != (n > 0) {
			t.Errorf("command %s has %d flags; this test expects flags: %v", c.name, n, want)
		}
		var stdout bytes.Buffer
		if err := Run(t.Context(), []string{c.name, "--help"}, &stdout, io.Discard); err != nil {
			t.Fatalf("%s --help: %v", c.name, err)
		}
		out := stdout.String()
		if want != strings.Contains(out, "\nFlags:\n") || want != strings.Contains(out, "[flags]") {
			t.Errorf("%s --help: flags heading and usage do not say it takes flags: %v:\n%s", c.name, want, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string // substrings of the error, all of them
	}{
		{[]string{"--bogus"}, []string{"-bogus"}},
		{[]string{"serve", "--bogus"}, []string{"-bogus"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{[]string{"serve", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"--policy"}, []string{"flag needs an argument: -policy"}},
		{[]string{"--log-level", "loud"}, []string{`--log-level "loud"`}},
		{[]string{"--log-format", "xml"}, []string{`--log-format "xml"`}},
		{[]string{"--shutdown-timeout", "0s"}, []string{"--shutdown-timeout 0s"}},
		{[]string{"--shutdown-timeout", "soon"}, []string{"-shutdown-timeout"}},
		{[]string{"--listen", ""}, []string{`--listen ""`}},
		{[]string{"--listen", "9001"}, []string{`--listen "9001"`}},
		{[]string{"--listen", "unix://corsproc.sock"}, []string{`--listen "unix://corsproc.sock"`, "absolute"}},
		{[]string{"--admin", "localhost"}, []string{`--admin "localhost"`}},
		{[]string{"--tls-cert", "c.pem"}, []string{"--tls-cert and --tls-key: give both or neither"}},
		{[]string{"--tls-key", "k.pem"}, []string{"--tls-cert and --tls-key: give both or neither"}},
		{[]string{"--client-ca", "ca.pem"}, []string{"--client-ca requires --tls-cert"}},
		{[]string{"--listen-mode", "rw"}, []string{`--listen-mode "rw"`, "octal"}},
		{[]string{"--listen-mode", "1777"}, []string{`--listen-mode "1777"`}},
		{[]string{"--stream-idle-timeout", "-1s"}, []string{"--stream-idle-timeout -1s"}},
		{[]string{"--reload-interval", "-1s"}, []string{"--reload-interval -1s"}},
		{[]string{"--max-request-headers", "0"}, []string{"--max-request-headers 0"}},
		{[]string{"--max-request-header-bytes", "-5"}, []string{"--max-request-header-bytes -5"}},
		// Every problem at once, not the first one only.
		{
			[]string{"--log-format", "xml", "--log-level", "loud", "--listen", "nowhere", "--shutdown-timeout", "-1s"},
			[]string{`--log-format "xml"`, `--log-level "loud"`, `--listen "nowhere"`, "--shutdown-timeout -1s"},
		},
		{[]string{"help", "nope"}, []string{`unknown command "nope"`}},
		{[]string{"help", "serve", "serve"}, []string{"at most one command"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			// A cancelled context: were the arguments wrongly accepted, serve
			// would stop at once rather than run.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			var stdout bytes.Buffer
			err := Run(ctx, tc.args, &stdout, io.Discard)
			if err == nil {
				t.Fatalf("Run(%q) = nil, want a usage error", tc.args)
			}
			if got := exitCode(err); got != 2 {
				t.Errorf("exitCode(%v) = %d, want 2", err, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "corsproc --help") {
				t.Errorf("error %q does not point at --help", err)
			}
			if stdout.Len() > 0 {
				t.Errorf("a usage error wrote to stdout: %s", stdout.String())
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	usage := usageErrorf("bad flag")
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{usage, 2},
		{fmt.Errorf("wrapped: %w", usage), 2},
		{errors.Join(errors.New("other"), usage), 2},
		{errors.New("policy file not found"), 1},
		{context.Canceled, 1},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestHelpSpellsShortFlags: import's help spells its one-letter flag -o,
// as README.md and docs/migrating.md do, not --o.
func TestHelpSpellsShortFlags(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	if err := Run(t.Context(), []string{"import", "--help"}, &stdout, io.Discard); err != nil {
		t.Fatalf("import --help: %v", err)
	}
	out := stdout.String()
	if !strings.Contains(out, "\n  -o FILE\n") || strings.Contains(out, "--o ") {
		t.Errorf("import --help does not spell -o FILE:\n%s", out)
	}
}
