package policy

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync"

	"go.yaml.in/yaml/v3"
)

// A large policy file is mostly its policies list, and YAML parsing is most
// of what loading it costs: yaml/v3 reads about 10 MB/s and builds a node
// per scalar. parseSplit parses such a file on every CPU: it cuts the
// block sequence under the top-level `policies:` key at its items' lines,
// parses each run of items as a document of its own, parses the rest of
// the file with those lines left blank, and puts the pieces together into
// the tree yaml/v3 builds from the whole file, line numbers included.
//
// Cutting YAML text is safe only where the text says what it looks like,
// so the cut is checked, and any doubt gives the file back to the plain
// parse (which reports every error): a line that looks like an item but
// sits inside a quoted or flow scalar leaves a piece unterminated, so it
// fails to parse; every piece must hold exactly the items its lines
// promised; the `policies` key must be a real key at the line it was found
// on; an alias to an anchor in another piece fails to resolve, and an
// anchor of the rest of the file may not be redefined in a piece. Block
// scalars cannot hide an item line: their content is indented deeper than
// the item.

// Tuning of parseSplit, variables so that tests can make small inputs split.
var (
	splitMinBytes        = 256 << 10 // smaller files parse in under ~30 ms anyway
	splitMinItemsPerPart = 256
	splitMinParts        = 2 // one piece saves nothing
	splitParts           = runtime.GOMAXPROCS
)

// parseSplit returns the document node of data, or false when data is not
// worth splitting or the cut does not check out; the caller then parses data
// whole.
func parseSplit(data []byte) (*yaml.Node, bool) {
	parts := splitParts(0)
	if parts < splitMinParts || len(data) < splitMinBytes {
		return nil, false
	}
	c, ok := cutPolicies(data)
	if parts = min(parts, len(c.items)/splitMinItemsPerPart); !ok || parts < splitMinParts {
		return nil, false
	}

	// The rest of the file: the items' lines blank, so lines keep their
	// numbers.
	rest := make([]byte, 0, c.start+c.newlines+len(data)-c.end)
	rest = append(rest, data[:c.start]...)
	rest = append(rest, bytes.Repeat([]byte{'\n'}, c.newlines)...)
	rest = append(rest, data[c.end:]...)

	type piece struct {
		from, to int // items
		seq      *yaml.Node
		anchors  []string
		ok       bool
	}
	pieces := make([]piece, parts)
	var wg sync.WaitGroup
	for i := range pieces {
		p := &pieces[i]
		p.from, p.to = i*len(c.items)/parts, (i+1)*len(c.items)/parts
		wg.Go(func() {
			p.seq, p.anchors, p.ok = parsePiece(data, &c, p.from, p.to)
		})
	}
	doc, ok := parseOne(rest)
	wg.Wait()
	if !ok {
		return nil, false
	}
	root := doc.Content[0]
	var value *yaml.Node
	for i := 0; i+1 < len(root.Content) && root.Kind == yaml.MappingNode; i += 2 {
		k := root.Content[i]
		if k.Line == c.keyLine && k.Column == 1 {
			if k.Kind == yaml.ScalarNode && k.Style == 0 && k.Value == "policies" {
				value = root.Content[i+1]
			}
			break
		}
	}
	if value == nil || value.Kind != yaml.ScalarNode || value.Tag != "!!null" || value.Value != "" || value.Anchor != "" {
		return nil, false
	}
	// yaml/v3 lets a later anchor of the same name replace an earlier one:
	// an anchor of the rest of the file redefined in a piece would resolve
	// differently in the whole file.
	restAnchors := map[string]bool{}
	walk(root, func(n *yaml.Node) {
		if n.Anchor != "" {
			restAnchors[n.Anchor] = true
		}
	})
	items := make([]*yaml.Node, 0, len(c.items))
	for _, p := range pieces {
		if !p.ok {
			return nil, false
		}
		for _, a := range p.anchors {
			if restAnchors[a] {
				return nil, false
			}
		}
		items = append(items, p.seq.Content...)
	}
	first := pieces[0].seq
	*value = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: first.Line, Column: first.Column, Content: items}
	return doc, true
}

// parseOne parses data as one YAML document that is not empty.
func parseOne(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil || len(doc.Content) != 1 {
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, false
	}
	return &doc, true
}

// parsePiece parses the items [from, to) of the cut, and returns their
// sequence as the whole file's parse has it, and the anchors they define.
//
// The piece is parsed in the context it has in the file, so that yaml/v3
// gives every node the position it gives it there: under a `policies:` key,
// and followed by an empty item where another piece follows (yaml/v3 places
// an empty value at the next token, which is then that item's "-", as in
// the file). The extra key line and item are taken out again.
func parsePiece(data []byte, c *policiesCut, from, to int) (*yaml.Node, []string, bool) {
	start, end := c.items[from].offset, c.end
	want := to - from
	text := make([]byte, 0, len("policies:\n")+end-start+c.indent+2)
	text = append(text, "policies:\n"...)
	if to < len(c.items) {
		end = c.items[to].offset
		text = append(text, data[start:end]...)
		text = append(text, bytes.Repeat([]byte{' '}, c.indent)...)
		text = append(text, "-\n"...)
		want++
	} else {
		text = append(text, data[start:end]...)
	}
	doc, ok := parseOne(text)
	if !ok {
		return nil, nil, false
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode || len(root.Content) != 2 {
		return nil, nil, false
	}
	seq := root.Content[1]
	if seq.Kind != yaml.SequenceNode || seq.Style&yaml.FlowStyle != 0 || seq.Column != c.indent+1 || len(seq.Content) != want {
		return nil, nil, false
	}
	if want > to-from {
		last := seq.Content[want-1]
		if last.Kind != yaml.ScalarNode || last.Tag != "!!null" || last.Value != "" || last.Anchor != "" {
			return nil, nil, false
		}
		seq.Content = seq.Content[:to-from]
	}
	// Line 2 of the piece is the first item's line in the file.
	by := c.items[from].line - 2
	var anchors []string
	walk(seq, func(n *yaml.Node) {
		n.Line += by
		if n.Anchor != "" {
			anchors = append(anchors, n.Anchor)
		}
	})
	return seq, anchors, true
}

// walk calls f on n and every node below it, aliases not followed.
func walk(n *yaml.Node, f func(*yaml.Node)) {
	f(n)
	for _, c := range n.Content {
		walk(c, f)
	}
}

// policiesCut is where the items of the top-level policies list are.
type policiesCut struct {
	keyLine    int // line of `policies:`, from 1
	indent     int // column of the items' "-", from 0
	start, end int // byte range of the items' lines
	newlines   int // line breaks in [start, end)
	items      []itemLine
}

type itemLine struct {
	offset, line int
}

// cutPolicies finds the lines of the items of a block sequence under a
// top-level `policies:` key. It gives up (false) on what it does not need
// to understand: carriage returns, a byte order mark, tabs in indentation, a
// line indented less than the items but not at the top level.
func cutPolicies(data []byte) (policiesCut, bool) {
	var c policiesCut
	if bytes.IndexByte(data, '\r') >= 0 || bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return c, false
	}
	const (
		head = iota
		first
		items
	)
	state := head
	line := 0
	for off := 0; off < len(data); {
		line++
		next := len(data)
		if nl := bytes.IndexByte(data[off:], '\n'); nl >= 0 {
			next = off + nl + 1
		}
		text := bytes.TrimSuffix(data[off:next], []byte("\n"))
		indent := 0
		for indent < len(text) && text[indent] == ' ' {
			indent++
		}
		body := text[indent:]
		blank := len(body) == 0 || body[0] == '#'
		if !blank && body[0] == '\t' {
			return c, false
		}
		isItem := len(body) > 0 && body[0] == '-' && (len(body) == 1 || body[1] == ' ')
		switch state {
		case head:
			if indent == 0 && isPoliciesKey(text) {
				c.keyLine, state = line, first
			}
		case first:
			if blank {
				break
			}
			if !isItem {
				return c, false
			}
			c.indent, c.start, state = indent, off, items
			c.items = append(c.items, itemLine{off, line})
		case items:
			switch {
			case blank || indent > c.indent:
			case indent == c.indent && isItem:
				c.items = append(c.items, itemLine{off, line})
			case indent == 0:
				c.end = off
				c.newlines = bytes.Count(data[c.start:c.end], []byte("\n"))
				return c, true
			default:
				return c, false
			}
		}
		off = next
	}
	if state != items {
		return c, false
	}
	c.end = len(data)
	c.newlines = bytes.Count(data[c.start:], []byte("\n"))
	return c, true
}

// isPoliciesKey reports whether a line is `policies:`, perhaps with
// trailing spaces and a comment.
func isPoliciesKey(text []byte) bool {
	rest, ok := bytes.CutPrefix(text, []byte("policies:"))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " ")
	return len(rest) == 0 || rest[0] == '#' && len(rest) < len(text)-len("policies:")
}
