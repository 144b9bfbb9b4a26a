package django

import (
	"strings"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

var yamlStrings = []string{
	"https://app.example.com", "http://localhost:*", "*", "null", "Null", "~", "true", "yes", "on", "y",
	"0", "12", "1e3", "0x1f", ".inf", "-", "- x", "? x", ": x", "x:", "x: y", "a #b", "#x", "&a", "*a", "!x",
	"%x", "@x", "`x", "|", ">", "[x]", "{x}", "x,y", `'q'`, `"q"`, "", " ", " x", "x ", "a\nb", "a\tb", "\x00",
	"\u00a0", "\ufeff", "é", "😀", `^https://\w+\.example\.com$`, `(?:^/api/|^/graphql$).*`, `\`, "<<",
	"\x7f", "\u0085", "\u2028", "x\r", "---", "...",
}

func TestYAMLString(t *testing.T) {
	for _, s := range yamlStrings {
		checkYAMLString(t, s)
	}
	for s, want := range map[string]string{
		"https://app.example.com": "https://app.example.com",
		"null":                    "'null'",
		"*":                       "'*'",
		`^a\.b$`:                  `'^a\.b$'`,
		"it's":                    `'it''s'`,
		"a\nb":                    `"a\nb"`,
		// What YAML 1.1 readers (kubectl, older tools) take for a boolean
		// stays a string for them too.
		"on":  "'on'",
		"yes": "'yes'",
		"Y":   "'Y'",
		// Invisible characters are escaped, so that a reviewer sees them:
		// a no-break space, a line separator, a byte order mark.
		"https://a\u00a0b.example": `"https://a\u00a0b.example"`,
		"\u2028":                   `"\u2028"`,
		"\ufeffhttps://a.example":  `"\ufeffhttps://a.example"`,
	} {
		if got := yamlString(s); got != want {
			t.Errorf("yamlString(%q) = %s; want %s", s, got, want)
		}
	}
}

func FuzzYAMLString(f *testing.F) {
	for _, s := range yamlStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // values come from a UTF-8 file, and escapes decode to runes
		}
		checkYAMLString(t, s)
	})
}

// checkYAMLString checks that yamlString(s) reads back as s, as a list
// entry in block and flow style and as a mapping value.
func checkYAMLString(t *testing.T, s string) {
	t.Helper()
	q := yamlString(s)
	for _, doc := range []string{"k: " + q + "  # c\n", "- " + q + "\n", "k: [" + q + ", x]\n"} {
		var v any
		if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatalf("yamlString(%q) = %s: %v", s, q, err)
		}
		var got any
		switch v := v.(type) {
		case map[string]any:
			got = v["k"]
			if l, ok := got.([]any); ok {
				got = l[0]
			}
		case []any:
			got = v[0]
		}
		if got != s {
			t.Fatalf("yamlString(%q) = %s reads back as %#v in %q", s, q, got, doc)
		}
	}
}

func TestTranslateRegex(t *testing.T) {
	for _, tt := range []struct {
		src, want, problem string
	}{
		{`^https://\w+\.example\.com$`, `^https://\w+\.example\.com$`, ""},
		{`^https://a\.example\.com\Z`, `^https://a\.example\.com\z`, ""},
		{`^https://caf\u00e9\.example$`, `^https://caf\x{00e9}\.example$`, ""},
		{`^/v\d{,2}/`, `^/v\d{0,2}/`, ""},
		{`^[\]\Z]x`, "", "is not RE2 syntax"},
		{`^(?P<sub>\w+)\.example\.com$`, `^(?P<sub>\w+)\.example\.com$`, ""},
		{`^https://(?!admin)`, "", "uses a lookahead"},
		{`^https://(?<!x)a`, "", "uses a lookbehind"},
		{`^(a)\1$`, "", "uses a backreference"},
		{`^(?P<a>x)(?P=a)$`, "", "uses a backreference"},
		{`^(?(1)a|b)$`, "", "uses a conditional group"},
		{`(?x) ^ a $`, "", "is not RE2 syntax"},
		{`^a(?>bc)$`, "", "uses an atomic group"},
	} {
		got, problem := translateRegex(tt.src)
		if got != tt.want || !strings.HasPrefix(problem, tt.problem) || (problem == "") != (tt.problem == "") {
			t.Errorf("translateRegex(%q) = %q, %q; want %q, %q", tt.src, got, problem, tt.want, tt.problem)
		}
	}
}

func TestFullMatchPath(t *testing.T) {
	for _, tt := range []struct {
		src, want string
		every     bool
	}{
		{`^/api/`, `^/api/.*`, false},
		{`^/api/.*$`, `^/api/.*$`, false},
		{`^/api/(v1|v2)$`, `^/api/(v1|v2)$`, false},
		{`^/a$|^/b`, `(?:^/a$|^/b).*`, false},
		{`^/a$|^/b$`, `^/a$|^/b$`, false},
		{`^/[|]`, `^/[|].*`, false},
		{`^.*$`, "", true},
		{`^/`, "", true},
		{``, "", true},
	} {
		if every := matchesEveryPath(tt.src); every != tt.every {
			t.Errorf("matchesEveryPath(%q) = %t", tt.src, every)
		}
		if tt.every {
			continue
		}
		if got, _ := fullMatchPath(tt.src); got != tt.want {
			t.Errorf("fullMatchPath(%q) = %q; want %q", tt.src, got, tt.want)
		}
	}
}

func TestDecodeEscapes(t *testing.T) {
	for _, tt := range []struct {
		body, want, unread string
	}{
		{`a\nb`, "a\nb", ""},
		{`\x41\101\u00e9\U0001F600`, "AAé😀", ""},
		{`^https://\w+\.example\.com$`, `^https://\w+\.example\.com$`, ""},
		{`it\'s \"q\" \\`, `it's "q" \`, ""},
		{"a\\\nb", "ab", ""},
		{`\N{BULLET}`, "", `names a character with \N{BULLET}`},
	} {
		got, unread, err := decodeEscapes(tt.body, 1)
		if err != nil || unread != tt.unread || tt.unread == "" && got != tt.want {
			t.Errorf("decodeEscapes(%q) = %q, %q, %v; want %q, %q", tt.body, got, unread, err, tt.want, tt.unread)
		}
	}
	// Python's hex escapes take exactly their number of hex digits: no
	// sign, no underscore, no 0x.
	for _, body := range []string{`\x+1`, `\x-1`, `\x_1`, `\x4`, `\u+123`, `\u00_e`, `\u0x12`, `\U-0001F60`, `\U0001_600`, `\U00110000`} {
		if got, _, err := decodeEscapes(body, 1); err == nil {
			t.Errorf("decodeEscapes(%q) = %q; want an error", body, got)
		}
	}
}

// TestNumbers: the integers settings write a number of seconds with are
// read (literals in every base, +, - and * as in 60 * 60 * 24); what the
// importer does not compute (//, %, ** and results beyond an int64) is
// left out with a warning that says so, never guessed.
func TestNumbers(t *testing.T) {
	for _, tt := range []struct{ src, want, warning string }{
		{"CORS_PREFLIGHT_MAX_AGE = 86_400", "", ""},
		{"CORS_PREFLIGHT_MAX_AGE = 0x1C20", "7200", ""},
		{"CORS_PREFLIGHT_MAX_AGE = 0o17", "15", ""},
		{"CORS_PREFLIGHT_MAX_AGE = (60 * 60) - 600", "3000", ""},
		{"CORS_PREFLIGHT_MAX_AGE = 60 * 60 * 2", "7200", ""},
		{"CORS_PREFLIGHT_MAX_AGE = 60 * 60 * 24", "", ""}, // DCH's default
		{"CORS_PREFLIGHT_MAX_AGE = -(-3600)", "3600", ""},
		{"CORS_PREFLIGHT_MAX_AGE = 2 ** 10", "", "left out: the value is computed with **; the importer computes whole numbers with +, - and * only"},
		{"CORS_PREFLIGHT_MAX_AGE = 7 // -2 + 10", "", "left out: the value is computed with //; the importer computes whole numbers with +, - and * only"},
		{"CORS_PREFLIGHT_MAX_AGE = -7 % 3 + 99", "", "left out: the value is computed with %; the importer computes whole numbers with +, - and * only"},
		{"CORS_PREFLIGHT_MAX_AGE = 3600 / 2", "", "left out: the value is computed with /; the importer computes whole numbers with +, - and * only"},
		{"CORS_PREFLIGHT_MAX_AGE = 9_223_372_036_854_775_807 + 1", "", "left out: the value is too large"},
		{"CORS_PREFLIGHT_MAX_AGE = -9_223_372_036_854_775_807 - 2", "", "left out: the value is too large"},
		{"CORS_PREFLIGHT_MAX_AGE = 4_294_967_296 * 4_294_967_296", "", "left out: the value is too large"},
		{"CORS_PREFLIGHT_MAX_AGE = -1 * (-9_223_372_036_854_775_807 - 1)", "", "left out: the value is too large"},
		{"CORS_PREFLIGHT_MAX_AGE = -(-9_223_372_036_854_775_807 - 1)", "", "left out: the value is too large"},
	} {
		res, err := Import("settings.py", []byte("CORS_ALLOW_ALL_ORIGINS = True\n"+tt.src+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if _, after, ok := strings.Cut(string(res.YAML), "preflight_max_age: "); ok {
			got, _, _ = strings.Cut(after, " ")
		}
		if got != tt.want {
			t.Errorf("%s: preflight_max_age %q; want %q (warnings %v)", tt.src, got, tt.want, res.Warnings)
		}
		var warned []string
		for _, w := range res.Warnings {
			if w.Line == 2 {
				warned = append(warned, w.Message)
			}
		}
		switch {
		case tt.warning == "" && len(warned) > 0:
			t.Errorf("%s: warnings %q; want none", tt.src, warned)
		case tt.warning != "" && (len(warned) != 1 || !strings.HasPrefix(warned[0], tt.warning)):
			t.Errorf("%s: warnings %q; want one starting %q", tt.src, warned, tt.warning)
		}
	}
}
