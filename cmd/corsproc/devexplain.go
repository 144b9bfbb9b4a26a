package main

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/corsproc/corsproc/policy"
)

// devRefusals is corsproc dev's processor.Options.Refused: each refused
// request is explained on w as `corsproc explain` would explain it
// (docs/operations.md, "Refusals that explain themselves"), one block
// written at once so that concurrent refusals do not interleave. With
// --log-format json it is nil: the console is a JSON log then, and the
// refusal's log line carries its facts.
func devRefusals(w io.Writer, logFormat string) func(*policy.Set, *policy.Request, *policy.Decision) {
	if logFormat != "text" {
		return nil
	}
	var mu sync.Mutex
	return func(set *policy.Set, r *policy.Request, d *policy.Decision) {
		// The request's strings are valid only during the call: the block
		// is built now.
		er := policy.ExplainRequest{Request: *r}
		var b bytes.Buffer
		fmt.Fprintf(&b, "\ncorsproc refused a request: %s\n\n", d.Refusal(r))
		printExplanation(&b, &er, set, set.Explain(&er))
		b.WriteString("\n")
		mu.Lock()
		defer mu.Unlock()
		w.Write(b.Bytes())
	}
}
