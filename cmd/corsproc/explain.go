package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/corsproc/corsproc/internal/curlreq"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// explainConfig is what explain's flags set.
type explainConfig struct {
	policy         string
	origin         string
	method         string
	requestHeaders string
	preflight      bool
	privateNetwork bool
	route          string
	host           string
	path           string
	metadata       string
	credentials    bool
	format         string
	url            string
	curl           string
	given          map[string]bool // the flags the command line set
}

func newExplainFlags(c *explainConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.StringVar(&c.policy, "policy", "", "policy `FILE` or directory; without it, the embedded development policy")
	fs.StringVar(&c.origin, "origin", "", "the page's `ORIGIN`, e.g. https://app.example.com; empty for a request without Origin")
	fs.StringVar(&c.method, "method", "GET", "the request `METHOD`; with --preflight, the method the preflight asks for")
	fs.StringVar(&c.requestHeaders, "request-headers", "", "comma-separated `HEADERS` the page sets (what the preflight asks for)")
	fs.BoolVar(&c.preflight, "preflight", false, "explain the preflight (OPTIONS) rather than the actual request")
	fs.BoolVar(&c.privateNetwork, "private-network", false, "the preflight asks for private network access")
	fs.StringVar(&c.route, "route", "", "Envoy route `NAME` (xds.route_name)")
	fs.StringVar(&c.host, "host", "", "request `HOST` (:authority)")
	fs.StringVar(&c.path, "path", "/", "request `PATH`")
	fs.StringVar(&c.metadata, "metadata-policy", "", "policy `NAME` the Envoy route sets in x-corsproc-policy")
	fs.BoolVar(&c.credentials, "credentials", false, "the page sends credentials (fetch credentials: 'include')")
	fs.StringVar(&c.format, "format", "text", "output `FORMAT`: text or json")
	fs.StringVar(&c.url, "url", "", "the requested `URL`, e.g. https://api.example.com/v1/items: sets\n"+
		"--host and --path, and names the resource in the browser's message")
	fs.StringVar(&c.curl, "curl", "", "explain the request of a curl `COMMAND` as the browser's DevTools\n"+
		"\"Copy as cURL (bash)\" gives it (\"-\" reads it from standard input),\n"+
		"and the preflight the browser sends before it, if any")
	return fs
}

// stdin is what --curl - reads; tests replace it.
var stdin io.Reader = os.Stdin

// runExplain is `corsproc explain`: which policy governs a request, each
// check in order, the exact response headers, and for a failure the
// browser's error and the fix. It runs the server's own decision code.
func runExplain(_ context.Context, e *env, args []string) error {
	var c explainConfig
	fs := newExplainFlags(&c)
	if err := parseFlags("explain", fs, args); err != nil {
		return err
	}
	c.given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.given[f.Name] = true })
	if c.format != "text" && c.format != "json" {
		return usageErrorf("explain: --format %q: want text or json", c.format)
	}
	set := policyfile.Development()
	if c.policy != "" {
		var err error
		if set, err = policyfile.Load(c.policy); err != nil {
			return fmt.Errorf("explain: %w", err)
		}
	}
	ers, err := explainRequests(&c)
	if err != nil {
		return err
	}
	derived := len(ers) > 1 // a preflight explain derived, then the request
	xs := make([]*policy.Explanation, len(ers))
	for i := range ers {
		xs[i] = set.Explain(&ers[i])
		if i == 0 && derived && xs[0].Outcome != policy.OutcomePreflightAllowed.String() {
			// The preflight fails: the browser sends nothing more.
			ers, xs = ers[:1], xs[:1]
			break
		}
	}
	if c.format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if c.curl == "" {
			return enc.Encode(struct {
				Policy string `json:"policy_source"`
				*policy.Explanation
			}{set.Source(), xs[0]})
		}
		// --curl: the preflight the browser sends first, if any, then the
		// request, in the order the browser sends them.
		return enc.Encode(struct {
			Policy   string                `json:"policy_source"`
			Requests []*policy.Explanation `json:"requests"`
		}{set.Source(), xs})
	}
	for i := range ers {
		if derived {
			if i == 0 {
				fmt.Fprintln(e.stdout, "The browser first sends a preflight:")
			} else {
				fmt.Fprintln(e.stdout, "\nThe preflight is allowed, so the browser sends the request:")
			}
			fmt.Fprintln(e.stdout)
		}
		printExplanation(e.stdout, &ers[i], set, xs[i])
	}
	if derived && len(ers) == 1 {
		fmt.Fprintln(e.stdout, "\nThe preflight fails, so the browser never sends the request itself.")
	}
	return nil
}

// explainRequests returns the requests explain explains: the one its
// flags describe, or the request of --curl preceded by the preflight a
// browser sends before it when it needs one (runExplain drops the request
// when that preflight fails, since the browser sends nothing more).
func explainRequests(c *explainConfig) ([]policy.ExplainRequest, error) {
	if c.curl == "" {
		er := policy.ExplainRequest{
			Request: policy.Request{
				Method:     c.method,
				Origin:     c.origin,
				Host:       c.host,
				Path:       c.path,
				Route:      c.route,
				PolicyName: c.metadata,
			},
			Credentials: c.credentials,
		}
		if c.url != "" {
			u, err := url.Parse(c.url)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, usageErrorf("explain: --url %q: want http:// or https:// with a host", c.url)
			}
			if c.given["host"] || c.given["path"] {
				return nil, usageErrorf("explain: --url sets the host and path: give --url, or --host and --path")
			}
			er.Host, er.Path, er.URL = u.Host, u.RequestURI(), curlreq.ResourceURL(u)
		}
		if c.preflight {
			er.Method, er.ACRM = "OPTIONS", c.method
			if c.requestHeaders != "" {
				er.ACRH = []string{c.requestHeaders}
			}
			if c.privateNetwork {
				er.ACRPN = "true"
			}
		}
		return []policy.ExplainRequest{er}, nil
	}
	for _, f := range []string{"origin", "method", "request-headers", "preflight", "private-network", "host", "path", "url"} {
		if c.given[f] {
			return nil, usageErrorf("explain: --%s and --curl: the curl command says the request; give one or the other", f)
		}
	}
	line := c.curl
	if line == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, curlreq.MaxLen+1))
		if err != nil {
			return nil, fmt.Errorf("explain: reading the curl command: %w", err)
		}
		line = string(data)
	}
	cr, err := curlreq.Parse(line)
	if err != nil {
		return nil, fmt.Errorf("explain: --curl: %w", err)
	}
	return cr.ExplainRequests(c.route, c.metadata, c.credentials), nil
}

func printExplanation(w io.Writer, er *policy.ExplainRequest, set *policy.Set, x *policy.Explanation) {
	host := er.Host
	if host == "" {
		host = "(any host)"
	}
	fmt.Fprintf(w, "Request:  %s %s%s", er.Method, host, er.Path)
	if er.Origin != "" {
		fmt.Fprintf(w, " from origin %s", er.Origin)
	}
	switch x.Kind {
	case "preflight":
		fmt.Fprintf(w, " (preflight for %s", er.ACRM)
		if len(er.ACRH) > 0 {
			fmt.Fprintf(w, " with %s", er.ACRH[0])
		}
		fmt.Fprint(w, ")")
	case "non_cors":
		fmt.Fprint(w, " (not a CORS request: no Origin)")
	}
	if er.Credentials {
		fmt.Fprint(w, ", with credentials")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Policies: %s\n", set.Source())
	switch {
	case x.Selection == policy.SelectedUnknown.String():
		fmt.Fprintf(w, "Policy:   unknown: %s\n", x.Why)
	case x.Policy == "":
		fmt.Fprintf(w, "Policy:   none: %s\n", x.Why)
	default:
		fmt.Fprintf(w, "Policy:   %s (selected by %s: %s)\n", x.Policy, x.Selection, x.Why)
	}
	outcome := x.Outcome
	if x.Reason != "none" {
		outcome += " (" + x.Reason + ")"
	}
	if x.Shadow {
		outcome += " [shadow mode: recorded only]"
	}
	if x.BrowserError != "" && (x.Outcome == policy.OutcomeAllowed.String() || x.Outcome == policy.OutcomePreflightAllowed.String()) {
		// corsproc allows it; the browser's own check fails (credentials).
		outcome += " by corsproc, but the browser blocks it (below)"
	}
	fmt.Fprintf(w, "Outcome:  %s\n", outcome)
	if len(x.Checks) > 0 {
		fmt.Fprintln(w, "\nChecks:")
		for i, c := range x.Checks {
			fmt.Fprintf(w, "  %d. %-16s %-14s %s\n", i+1, c.Name, strings.ToUpper(c.Result), c.Detail)
		}
	}
	fmt.Fprintf(w, "\nResponse: %s\n", x.Response)
	if x.Status != 0 {
		fmt.Fprintf(w, "  status %d\n", x.Status)
	}
	for _, h := range x.Remove {
		fmt.Fprintf(w, "  remove  %s\n", h)
	}
	for _, h := range x.Headers {
		op := "set    "
		if h.Append {
			op = "append "
		}
		fmt.Fprintf(w, "  %s %s: %s\n", op, h.Name, h.Value)
	}
	if x.BrowserError != "" {
		fmt.Fprintf(w, "\nThe browser's console will show:\n  %s\n", x.BrowserError)
	} else if x.Kind == "actual" || x.Kind == "preflight" {
		fmt.Fprintln(w, "\nThe browser lets the page read the response.")
	}
	if x.Fix != "" {
		fmt.Fprintf(w, "\nFix: %s\n", x.Fix)
	}
	for _, h := range x.Hints {
		fmt.Fprintf(w, "Note: %s\n", h)
	}
}
