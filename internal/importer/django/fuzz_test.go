package django_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/importer/django"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// FuzzImport feeds any bytes to Import: the result is an error, or YAML that
// decodes (syntax, keys and types always right) and that policyfile.Parse
// accepts or refuses with a ValidationError, as Result.LoadError says.
// Never a panic, and never a hang: every step is bounded by the input.
func FuzzImport(f *testing.F) {
	for _, tt := range importTests {
		f.Add([]byte(tt.settings))
	}
	for _, tt := range syntaxErrorTests {
		f.Add([]byte(tt.settings))
	}
	f.Add([]byte("if DEBUG:\n\tCORS_ALLOWED_ORIGINS = [f\"{x['a']}\", *default_headers]\nelse:\n  pass\n"))
	f.Add([]byte("CORS_ALLOWED_ORIGINS = ('a' 'b' r'\\c' \"\"\"d\ne\"\"\" b'x')\n"))
	f.Add([]byte("CORS_PREFLIGHT_MAX_AGE = -(2**63) // -1 % 7\n"))
	// Found by fuzzing: a header colon with no keyword; a regex error that
	// quoted the regex, newline and all.
	f.Add([]byte("CORS_ALLOWED_ORIGINS = [os.getenv('A', 'https://a.example'), *env.list('B', default=['https://b.example'])] + config('C', default='x, y', cast=Csv())\nCORS_ALLOWED_ORIGINS += os.environ['D'].split(',')\nCORS_ALLOWED_ORIGINS.extend(X)\n"))
	f.Add([]byte(":"))
	f.Add([]byte("CORS_ALLOWED_ORIGIN_REGEXES=['0(\\n']"))
	f.Fuzz(func(t *testing.T, src []byte) {
		res, err := django.Import("settings.py", src)
		if err != nil {
			if res != nil {
				t.Fatal("Import returned a result and an error")
			}
			return
		}
		if _, err := policyfile.Decode("generated.yaml", res.YAML); err != nil {
			t.Fatalf("generated YAML does not decode: %v\n%s", err, res.YAML)
		}
		_, err = policyfile.Parse("generated.yaml", res.YAML)
		var ve *policy.ValidationError
		switch {
		case err == nil && res.LoadError != nil:
			t.Fatalf("LoadError %v for a file that loads", res.LoadError)
		case err != nil && !errors.As(err, &ve):
			t.Fatalf("Parse error is not a ValidationError: %v", err)
		case err != nil && res.LoadError == nil:
			t.Fatalf("no LoadError for a file corsproc refuses: %v", err)
		}
		for _, w := range res.Warnings {
			if w.Message == "" || strings.Contains(w.String(), "\n") {
				t.Fatalf("malformed warning %q", w.String())
			}
		}
	})
}
