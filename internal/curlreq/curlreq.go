// Package curlreq reads the request a curl command line sends, as a
// browser's DevTools "Copy as cURL (bash)" writes it, and derives what the
// browser sends for it: the preflight first when the request needs one
// (docs/troubleshooting.md). corsproc explain --curl and the browser tests
// use it.
package curlreq

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/corsproc/corsproc/policy"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// Request is the HTTP request a curl command line sends, as much of it
// as CORS cares about.
type Request struct {
	Method  string
	URL     *url.URL
	Headers [][2]string // names lower case, in order
	Body    bool        // the command sends a body
}

// Header returns the first value of the named (lower-case) header.
func (c *Request) Header(name string) (string, bool) {
	for _, h := range c.Headers {
		if h[0] == name {
			return h[1], true
		}
	}
	return "", false
}

// MaxLen bounds the command line explain reads: DevTools' copies are a
// few KiB, a large cookie included.
const MaxLen = 1 << 20

// curlNoValue are the options of curl that take no value and say nothing
// CORS cares about (DevTools adds --compressed and, for HTTP/2, --http2).
var curlNoValue = []string{
	"--compressed", "--insecure", "-k", "--silent", "-s", "--show-error", "-S", "--location", "-L",
	"--include", "-i", "--verbose", "-v", "--globoff", "-g", "--http1.0", "--http1.1", "--http2",
	"--http2-prior-knowledge", "--http3", "--fail", "-f", "--no-buffer", "-N", "--path-as-is",
}

// curlIgnored are the options that take a value CORS does not care about.
var curlIgnored = []string{
	"--output", "-o", "--max-time", "-m", "--connect-timeout", "--proxy", "-x", "--resolve",
	"--connect-to", "--retry", "--cacert", "--cert", "-E", "--key", "--limit-rate",
}

// Parse reads a curl command line as the browser's "Copy as cURL
// (bash)" writes it: shell words in single quotes or $'…', the URL, -X,
// -H, the data options, -b for cookies. See shellWords for how the words
// are read.
func Parse(line string) (*Request, error) {
	if len(line) > MaxLen {
		return nil, fmt.Errorf("the curl command is longer than %d bytes", MaxLen)
	}
	words, err := shellWords(line)
	if err != nil {
		return nil, fmt.Errorf("reading the curl command: %v", err)
	}
	if len(words) == 0 || path.Base(words[0]) != "curl" {
		return nil, errors.New(`not a curl command: paste what the browser's "Copy as cURL" (bash) gives, starting with curl`)
	}
	c := &Request{}
	var rawURL string
	setURL := func(u string) error {
		if rawURL != "" {
			return fmt.Errorf("two URLs, %q and %q: explain takes one request", rawURL, u)
		}
		rawURL = u
		return nil
	}
	words = words[1:]
	for i := 0; i < len(words); i++ {
		w := words[i]
		value := func() (string, error) {
			if i+1 >= len(words) {
				return "", fmt.Errorf("curl option %s needs a value", w)
			}
			i++
			return words[i], nil
		}
		name, inline, hasInline := strings.Cut(w, "=")
		if !strings.HasPrefix(w, "--") || !hasInline {
			name, inline, hasInline = w, "", false
		}
		arg := func() (string, error) {
			if hasInline {
				return inline, nil
			}
			return value()
		}
		var err error
		var v string
		switch {
		case w == "--":
			for _, u := range words[i+1:] {
				if err := setURL(u); err != nil {
					return nil, err
				}
			}
			i = len(words)
		case !strings.HasPrefix(w, "-") || w == "-":
			err = setURL(w)
		case name == "--url":
			if v, err = arg(); err == nil {
				err = setURL(v)
			}
		case name == "-X" || name == "--request":
			if v, err = arg(); err == nil {
				c.Method = strings.ToUpper(v)
			}
		case name == "-H" || name == "--header":
			if v, err = arg(); err == nil {
				err = c.addHeader(v)
			}
		case name == "-A" || name == "--user-agent":
			if v, err = arg(); err == nil {
				c.Headers = append(c.Headers, [2]string{"user-agent", v})
			}
		case name == "-e" || name == "--referer":
			if v, err = arg(); err == nil {
				c.Headers = append(c.Headers, [2]string{"referer", v})
			}
		case name == "-b" || name == "--cookie":
			if v, err = arg(); err == nil {
				c.Headers = append(c.Headers, [2]string{"cookie", v})
			}
		case name == "-u" || name == "--user":
			if _, err = arg(); err == nil {
				c.Headers = append(c.Headers, [2]string{"authorization", "Basic"})
			}
		case slices.Contains([]string{"-d", "--data", "--data-raw", "--data-binary", "--data-ascii", "--data-urlencode"}, name):
			if _, err = arg(); err == nil {
				c.Body = true
				if _, ok := c.Header("content-type"); !ok {
					c.Headers = append(c.Headers, [2]string{"content-type", "application/x-www-form-urlencoded"})
				}
			}
		case name == "--json":
			if _, err = arg(); err == nil {
				c.Body = true
				c.Headers = append(c.Headers, [2]string{"content-type", "application/json"}, [2]string{"accept", "application/json"})
			}
		case name == "-F" || name == "--form":
			if _, err = arg(); err == nil {
				c.Body = true
				c.Headers = append(c.Headers, [2]string{"content-type", "multipart/form-data"})
			}
		case name == "-I" || name == "--head":
			c.Method = "HEAD"
		case name == "-G" || name == "--get":
			c.Method = "GET"
		case slices.Contains(curlIgnored, name):
			_, err = arg()
		case slices.Contains(curlNoValue, name) || shortFlags(w):
		default:
			err = fmt.Errorf("curl option %q is not one explain reads: paste what the browser's \"Copy as cURL\" (bash) gives", w)
		}
		if err != nil {
			return nil, err
		}
	}
	if rawURL == "" {
		return nil, errors.New("the curl command has no URL")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("URL %q: want http:// or https:// with a host", rawURL)
	}
	c.URL = u
	if c.Method == "" {
		c.Method = "GET"
		if c.Body {
			c.Method = "POST"
		}
	}
	return c, nil
}

// shortFlags reports whether w is a cluster of curl's value-less short
// options, such as -sSL.
func shortFlags(w string) bool {
	if len(w) < 2 || w[0] != '-' || w[1] == '-' {
		return false
	}
	for _, c := range w[1:] {
		if !slices.Contains(curlNoValue, "-"+string(c)) {
			return false
		}
	}
	return true
}

// addHeader adds a -H value: "Name: value", or "Name;" for an empty one
// (curl's spelling); "Name:" alone removes a header curl would send, which
// changes nothing here.
func (c *Request) addHeader(h string) error {
	name, value, ok := strings.Cut(h, ":")
	if !ok {
		if n, found := strings.CutSuffix(h, ";"); found {
			c.Headers = append(c.Headers, [2]string{strings.ToLower(strings.TrimSpace(n)), ""})
			return nil
		}
		return fmt.Errorf("header %q: want Name: value", h)
	}
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		return fmt.Errorf("header %q: no name", h)
	}
	if value = strings.TrimSpace(value); value == "" {
		return nil
	}
	c.Headers = append(c.Headers, [2]string{name, value})
	return nil
}

// devToolsHeaders are headers a browser's copy carries that the page did
// not set and that are not forbidden request headers (which scripts cannot
// set either, policy.IsForbiddenRequestHeader): user-agent, and those
// DevTools or the network stack add (cache-control and pragma with the
// cache disabled, priority). A preflight never asks for either kind.
var devToolsHeaders = []string{"user-agent", "cache-control", "pragma", "priority"}

// safelisted reports whether a header the page set is one Fetch lets
// through without a preflight: its CORS-safelisted request-headers accept,
// accept-language, content-language and content-type (a form's three
// types), with the values it allows (at most 128 bytes, no CORS-unsafe
// byte; the languages only in 0-9 A-Z a-z and " *,-.;=").
func safelisted(name, value string) bool {
	if len(value) > 128 {
		return false
	}
	unsafe := strings.ContainsFunc(value, func(r rune) bool {
		return r < 0x20 && r != '\t' || r == 0x7f || strings.ContainsRune("\"():<>?@[\\]{}", r)
	})
	switch name {
	case "accept":
		return !unsafe
	case "accept-language", "content-language":
		return !strings.ContainsFunc(value, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || strings.ContainsRune(" *,-.;=", r))
		})
	case "content-type":
		essence, _, _ := strings.Cut(value, ";")
		switch strings.ToLower(strings.TrimSpace(essence)) {
		case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
			return !unsafe
		}
	}
	return false
}

// Preflight returns the Access-Control-Request-Method and
// Access-Control-Request-Headers a browser sends before c, and whether it
// sends a preflight at all: for a method other than GET, HEAD and POST, or
// a header the page set that is not safelisted. The names are sorted,
// lower case and joined with "," as Chromium sends them.
func (c *Request) Preflight() (acrm, acrh string, needed bool) {
	var names []string
	for _, h := range c.Headers {
		name := h[0]
		if policy.IsForbiddenRequestHeader(name) || slices.Contains(devToolsHeaders, name) || safelisted(name, h[1]) {
			continue
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	simple := c.Method == "GET" || c.Method == "HEAD" || c.Method == "POST"
	return c.Method, strings.Join(names, ","), !simple || len(names) > 0
}

// ExplainRequests returns what the browser sends for c, as policy.Set's
// Explain takes it: the preflight the browser sends first when c needs
// one, then c; or c alone, when it is simple, has no Origin, or is itself
// a preflight (a copied OPTIONS with Access-Control-Request-Method). route
// and metadataPolicy are what Envoy adds (a copy cannot say them); a copy
// with cookies is a request with credentials, as is any with credentials
// set (fetch's credentials: 'include' without a cookie yet).
func (c *Request) ExplainRequests(route, metadataPolicy string, credentials bool) []policy.ExplainRequest {
	origin := c.Origin()
	_, cookies := c.Header("cookie")
	req := policy.ExplainRequest{
		Request: policy.Request{
			Method:     c.Method,
			Origin:     origin,
			Host:       c.URL.Host,
			Path:       c.URL.RequestURI(),
			Route:      route,
			PolicyName: metadataPolicy,
		},
		Credentials: credentials || cookies,
		URL:         ResourceURL(c.URL),
	}
	if acrm, ok := c.Header("access-control-request-method"); ok && c.Method == "OPTIONS" {
		req.ACRM = acrm
		if acrh, ok := c.Header("access-control-request-headers"); ok {
			req.ACRH = []string{acrh}
		}
		req.ACRPN, _ = c.Header("access-control-request-private-network")
		return []policy.ExplainRequest{req}
	}
	acrm, acrh, needed := c.Preflight()
	if origin == "" || !needed {
		return []policy.ExplainRequest{req}
	}
	pre := req
	pre.Method, pre.ACRM = "OPTIONS", acrm
	if acrh != "" {
		pre.ACRH = []string{acrh}
	}
	return []policy.ExplainRequest{pre, req}
}

// Origin returns the page's origin: the Origin header; or, for a copy of
// a request the browser blocked before sending it, whose DevTools entry has
// only provisional headers and no Origin, the origin of its Referer when
// that differs from the URL's (a cross-origin request: browsers send at
// least the page's origin as Referer to another origin unless the page's
// referrer policy is no-referrer). "" when neither says.
func (c *Request) Origin() string {
	if o, ok := c.Header("origin"); ok {
		return o
	}
	ref, ok := c.Header("referer")
	if !ok {
		return ""
	}
	u, err := url.Parse(ref)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	o := u.Scheme + "://" + u.Host
	if o == c.URL.Scheme+"://"+c.URL.Host {
		return "" // same origin: no CORS
	}
	return o
}

// ResourceURL is u as the browser's console names it: without its fragment.
func ResourceURL(u *url.URL) string {
	v := *u
	v.Fragment, v.RawFragment = "", ""
	return v.String()
}

// shellWords splits line into shell words with mvdan.cc/sh's parser, and
// removes their quotes (single, double, and $'…' with its escapes, as
// expand.Literal does). A word may hold nothing else: a parameter
// expansion, command or process substitution, arithmetic or glob is an
// error, so nothing in a pasted command is run or expanded, and a brace
// expansion such as {1..99999999} stays the literal text it is in an
// assignment (expand.Literal never expands braces).
func shellWords(line string) ([]string, error) {
	var words []string
	var bad error
	err := syntax.NewParser().Words(strings.NewReader(line), func(w *syntax.Word) bool {
		if bad = literalOnly(w.Parts); bad != nil {
			return false
		}
		s, err := expand.Literal(&expand.Config{}, w)
		if err != nil {
			bad = err
			return false
		}
		words = append(words, s)
		return true
	})
	if err != nil {
		return nil, err
	}
	return words, bad
}

// literalOnly returns an error naming the first part of a word that is not
// literal text or a quote of it.
func literalOnly(parts []syntax.WordPart) error {
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.Lit, *syntax.SglQuoted:
		case *syntax.DblQuoted:
			if err := literalOnly(p.Parts); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: only quoted or plain text is read, nothing is expanded or run", syntaxNodeName(p))
		}
	}
	return nil
}

func syntaxNodeName(p syntax.WordPart) string {
	switch p.(type) {
	case *syntax.ParamExp:
		return "a parameter expansion ($name)"
	case *syntax.CmdSubst:
		return "a command substitution"
	case *syntax.ArithmExp:
		return "an arithmetic expansion"
	case *syntax.ProcSubst:
		return "a process substitution"
	case *syntax.ExtGlob:
		return "a glob"
	}
	return fmt.Sprintf("%T", p)
}
