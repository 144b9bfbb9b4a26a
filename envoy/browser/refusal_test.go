package browser

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/corsproc/corsproc/internal/curlreq"
	"github.com/corsproc/corsproc/policy/policyfile"
	"github.com/corsproc/corsproc/processor"
)

// devtools records what Chromium's DevTools see of a tab: the network
// events and the console's log entries.
type devtools struct {
	mu        sync.Mutex
	requests  map[network.RequestID]*network.EventRequestWillBeSent
	extra     map[network.RequestID]network.Headers // the headers sent on the wire
	responses map[network.RequestID]*network.EventResponseReceived
	console   []string
}

func (b *tab) devtools() *devtools {
	d := &devtools{
		requests:  map[network.RequestID]*network.EventRequestWillBeSent{},
		extra:     map[network.RequestID]network.Headers{},
		responses: map[network.RequestID]*network.EventResponseReceived{},
	}
	err := chromedp.Listen(b.ctx, func(ev any) {
		d.mu.Lock()
		defer d.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			d.requests[ev.RequestID] = ev
		case *network.EventRequestWillBeSentExtraInfo:
			d.extra[ev.RequestID] = ev.Headers
		case *network.EventResponseReceived:
			d.responses[ev.RequestID] = ev
		case *log.EventEntryAdded:
			d.console = append(d.console, ev.Entry.Text)
		}
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return d
}

// find returns the request to url of the resource type, and its response.
func (d *devtools) find(url string, typ network.ResourceType) (network.RequestID, *network.EventRequestWillBeSent, *network.EventResponseReceived) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, r := range d.requests {
		if r.Request.URL == url && r.Type == typ {
			return id, r, d.responses[id]
		}
	}
	for id, r := range d.responses { // a preflight may be seen only by its response
		if r.Response.URL == url && r.Type == typ {
			return id, nil, r
		}
	}
	return "", nil, nil
}

// curl writes the request as DevTools' "Copy as cURL (bash)" does: the URL,
// -X, each header sent (the wire headers when the request was sent, the
// provisional ones otherwise) in single quotes, the body with --data-raw.
func (d *devtools) curl(id network.RequestID, r *network.EventRequestWillBeSent) string {
	d.mu.Lock()
	headers := d.extra[id]
	d.mu.Unlock()
	if headers == nil {
		headers = r.Request.Headers
	}
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	var b strings.Builder
	fmt.Fprintf(&b, "curl %s \\\n  -X %s", quote(r.Request.URL), quote(r.Request.Method))
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if strings.HasPrefix(k, ":") {
			continue
		}
		fmt.Fprintf(&b, " \\\n  -H %s", quote(strings.ToLower(k)+": "+fmt.Sprint(headers[k])))
	}
	if r.Request.HasPostData {
		b.WriteString(" \\\n  --data-raw '{}'")
	}
	return b.String()
}

// In corsproc dev (Options.ExplainRefusals), a refused preflight says why
// where a developer looks: the preflight's response in DevTools carries
// X-Corsproc-Reason. And explain, given the request as DevTools copies it
// as cURL (the blocked request, or its preflight), predicts the preflight
// and the very message Chromium's console prints.
func TestRefusalExplainedInDevTools(t *testing.T) {
	e := newEnvWith(t, processor.Options{ExplainRefusals: true})
	b := newTab(t)
	d := b.devtools()
	b.open(e.pageOrigin)

	url := e.apiOrigin + "/explain-refusal/items"
	res := b.fetch(url, map[string]any{
		"method":  "PUT",
		"headers": map[string]string{"x-refused": "1"},
		"body":    "{}",
	})
	wantCORSError(t, "PUT with x-refused", res)

	const why = `request header "x-refused" is not in allow_headers of policy "web"`
	var (
		preID   network.RequestID
		preResp *network.EventResponseReceived
		req     *network.EventRequestWillBeSent
		reqID   network.RequestID
	)
	// DevTools' events arrive after the page's promise settles.
	for deadline := time.Now().Add(actionTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		preID, _, preResp = d.find(url, network.ResourceTypePreflight)
		reqID, req, _ = d.find(url, network.ResourceTypeFetch)
		d.mu.Lock()
		console := slices.ContainsFunc(d.console, func(s string) bool { return strings.Contains(s, "blocked by CORS policy") })
		d.mu.Unlock()
		if preResp != nil && req != nil && console {
			break
		}
	}
	if preResp == nil || req == nil {
		t.Fatalf("DevTools saw no preflight response (%v) or no fetch (%v)", preResp != nil, req != nil)
	}
	if got := header(preResp.Response.Headers, "x-corsproc-reason"); preResp.Response.Status != 403 || got != why {
		t.Errorf("preflight in DevTools: %d, X-Corsproc-Reason %q; want 403 saying %q", preResp.Response.Status, got, why)
	}
	// (Chromium keeps no body of a preflight for DevTools: the body is
	// checked over HTTP, by cmd/corsproc's TestDevExplainsRefusals.)

	// explain --curl on the requests as DevTools copies them: the blocked
	// request (only provisional headers, no Origin: its Referer gives the
	// page's origin) and the preflight (the headers sent).
	set, err := policyfile.Parse("browser-test.yaml", []byte(e.policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	console := slices.Clone(d.console)
	preReq := d.requests[preID]
	d.mu.Unlock()
	copies := []string{d.curl(reqID, req)}
	if preReq != nil {
		copies = append(copies, d.curl(preID, preReq))
	} else {
		t.Error("DevTools saw no request of the preflight: it cannot be copied")
	}
	for _, cmd := range copies {
		cr, err := curlreq.Parse(cmd)
		if err != nil {
			t.Fatalf("curlreq.Parse(%s): %v", cmd, err)
		}
		ers := cr.ExplainRequests("api", "", false)
		x := set.Explain(&ers[0])
		if x.Kind != "preflight" || x.Outcome != "preflight_rejected" || x.Reason != "header_not_allowed" || ers[0].Origin != e.pageOrigin {
			t.Errorf("explain of the copy:\n%s\npredicts %s %s (%s) from %q; Chromium refused the preflight from %s on x-refused",
				cmd, x.Kind, x.Outcome, x.Reason, ers[0].Origin, e.pageOrigin)
		}
		if !slices.ContainsFunc(console, func(s string) bool { return strings.HasPrefix(s, x.BrowserError) }) {
			t.Errorf("explain of the copy:\n%s\npredicts the console message\n  %s\nChromium printed\n  %s", cmd, x.BrowserError, strings.Join(console, "\n  "))
		}
	}
}

// header returns a DevTools header by name, in any case.
func header(hs network.Headers, name string) string {
	for k, v := range hs {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}
