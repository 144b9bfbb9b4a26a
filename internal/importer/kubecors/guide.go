package kubecors

import (
	"strings"
)

// The examples of docs/migrating-istio-gateway-api.md are executed by the
// tests of the istio and gatewayapi packages: each fenced block follows a
// marker line "<!-- NAME -->", and the tests compare the importer's output
// with the blocks (or rewrite them, with -update).

// GuideBlock returns the fenced block after the marker <!-- name --> in
// doc, and where its content starts and ends; ok is false without one.
func GuideBlock(doc, name string) (content string, start, end int, ok bool) {
	i := strings.Index(doc, "<!-- "+name+" -->\n")
	if i < 0 {
		return "", 0, 0, false
	}
	rest := doc[i:]
	open := strings.Index(rest, "```")
	if open < 0 {
		return "", 0, 0, false
	}
	nl := strings.IndexByte(rest[open:], '\n')
	if nl < 0 {
		return "", 0, 0, false
	}
	start = i + open + nl + 1
	closing := strings.Index(doc[start:], "```")
	if closing < 0 {
		return "", 0, 0, false
	}
	end = start + closing
	return doc[start:end], start, end, true
}
