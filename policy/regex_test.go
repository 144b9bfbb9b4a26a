package policy_test

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/testutil"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// regexPolicy is a policy file with one allowed_origin_regexes entry, and
// extra keys (allow_credentials, dangerously_…) indented as policy keys.
func regexPolicy(re string, keys ...string) string {
	y := "default_policy: p\npolicies:\n  - name: p\n    allowed_origin_regexes: [" + strconv.Quote(re) + "]\n"
	for _, k := range keys {
		y += "    " + k + "\n"
	}
	return y
}

// loadRegex returns the diagnostics of a policy with the regex re, and the
// set when it loads.
func loadRegex(t *testing.T, re string, keys ...string) (*policy.Set, []policy.Diagnostic) {
	t.Helper()
	set, err := policyfile.Parse("re.yaml", []byte(regexPolicy(re, keys...)))
	var verr *policy.ValidationError
	switch {
	case err == nil:
		return set, set.Warnings()
	case errors.As(err, &verr):
		return nil, verr.Diagnostics
	default:
		t.Fatalf("%q: %v", re, err)
		return nil, nil
	}
}

// unsafeRegexes match origins that listed in allowed_origins would be
// refused with credentials: each with the witness its diagnostic quotes,
// whether it is also a warning without credentials (any host, a name run
// into the domain), and the dangerously_… setting that allows it, if any.
var unsafeRegexes = []struct {
	re, witness string
	warnWithout bool
	dangerous   string
}{
	// The regexes that once loaded with credentials and reflected attackers.
	{`.*`, `"https://evil.invalid"`, true, ""},
	{`https://.*`, `"https://evil.invalid"`, true, ""},
	{`http://(.+\.)?example\.com`, `"http://example.com"`, false, "dangerously_allow_insecure_origins: true"},
	{`https://[a-z0-9-]+\.github\.io`, `"https://evil.github.io"`, false, "dangerously_allow_public_suffix_wildcards: true"},
	{`https://[a-z0-9.-]*example\.com`, `"https://evilexample.com"`, true, ""},
	{`https://app\Wexample\.com`, `"https://app-example.com"`, true, ""},
	{`https://app[^/]example\.com`, `"https://appxexample.com"`, true, ""},
	// Any host, spelled otherwise.
	{`^https://.*$`, `"https://evil.invalid"`, true, ""},
	{`https?://.+`, `"https://evil.invalid"`, true, ""},
	{`[a-z]+://.*`, `"https://evil.invalid"`, true, ""},
	{`https://\S+`, `"https://evil.invalid"`, true, ""},
	{`https://[^/]+`, `"https://evil.invalid"`, true, ""},
	{`https://[^/]{0,50}`, `"https://evil.invalid"`, true, ""},
	{`https://[\w.-]+`, `"https://evil.invalid"`, true, ""},
	{`https://\pL[\pL\pN.-]*`, `"https://a.evil.invalid"`, true, ""},
	{`(?i)HTTPS://.+`, `"https://evil.invalid"`, true, ""},
	{`https://app\.example\.com.*`, `"https://app.example.com.evil.invalid"`, true, ""},
	{`https://app\.example\.com\..*`, `"https://app.example.com.evil.invalid"`, true, ""},
	{`https://app\.example\.com|.*`, `"https://evil.invalid"`, true, ""},
	{`https://(app\.example\.com|[a-z.]+)`, `"https://evil.invalid"`, true, ""},
	{`(https?://)?[^/]+`, `"https://evil.invalid"`, true, ""},
	{`[a-z.]+(:.*)?`, `"https://evil.invalid"`, true, ""}, // the scheme spelled by a run, :// by the port
	{`(?:https?)?:?/*[^@/]*\w+`, `"https://evil`, true, ""},
	{`(.*)\bexample\.(com|net).*`, `"https://a.example.com.evil.invalid"`, true, ""},
	{`(.+\.)?(www\.)?[a-z]+(:\d+)?`, `"https://a.evil"`, true, ""},
	{`https://[a-z]+\.[a-z]+`, `"https://a.evil"`, true, ""},
	{`https://([a-z0-9-]+\.)+[a-z]+(:\d+)?`, `"https://a.evil"`, true, ""},
	{`https://app\.example\.[a-z]{2,3}`, `"https://app.example.evi"`, true, ""},
	{`https://app\.example\.com(\.[a-z]+)?`, `"https://app.example.com.evil"`, true, ""},
	// Any address: no one registers an IP address, but anyone serves a
	// site on their own, over https too.
	{`https://[0-9.]+`, `"https://8.8.8.8"`, true, ""},
	{`https://(\d{1,3}\.){3}\d{1,3}(:\d+)?`, `"https://8.8.8.8"`, true, ""},
	{`https://\d+\.\d+\.\d+\.\d+:8443`, `"https://8.8.8.8:8443"`, true, ""},
	{`https://\[[0-9a-f:]+\]`, `"https://[2001:4860:4860::8888]"`, true, ""},
	{`https://[a-z]+\.example\.com|https://[0-9.]+`, `"https://8.8.8.8"`, true, ""},
	// A name run into the domain.
	{`https://.*example\.com`, `"https://evilexample.com"`, true, ""},
	{`https://.+example\.com`, `"https://evilexample.com"`, true, ""},
	{`https://(.*)example\.com`, `"https://evilexample.com"`, true, ""},
	{`https://[a-z]*\.?example\.com`, `"https://evilexample.com"`, true, ""},
	{`https://(?:[a-z0-9-]+)?example\.com`, `"https://evilexample.com"`, true, ""},
	{`https://[a-z]+-example\.com`, `"https://evil-example.com"`, true, ""},
	{`https://example[a-z0-9-]*\.com`, `"https://exampleevil.com"`, true, ""},
	{`https://(\w+[.-])*example\.com`, `"https://a-example.com"`, true, ""},
	{`https://[^/]{0,50}example\.com`, `"https://evilexample.com"`, true, ""},
	{`(?i)https://.*EXAMPLE\.COM`, `"https://evilexample.com"`, true, ""},
	{`https://[a-z]+(\.)*example\.com`, `"https://evilexample.com"`, true, ""},
	{`[^.]+example\.com`, `"https://evilexample.com"`, true, ""},
	{`.*://.*example\.com$\S*`, `"https://evilexample.com"`, true, ""},
	{`https://.*\bexample\.com`, `"https://evil-example.com"`, true, ""},
	{`https://[a-z]+[.-]example\.com`, `"https://a-example.com"`, true, ""},
	{`https://(foo|bar)[a-z]*\.com`, `"https://fooevil.com"`, true, ""},
	// Plain http.
	{`https?://app\.example\.com`, `"http://app.example.com"`, false, "dangerously_allow_insecure_origins: true"},
	{`[a-z]+://app\.example\.com`, `"http://app.example.com"`, false, "dangerously_allow_insecure_origins: true"},
	{`(http|https)://app\.example\.com(:\d+)?`, `"http://app.example.com"`, false, "dangerously_allow_insecure_origins: true"},
	{`http://(localhost|app\.example\.com)`, `"http://app.example.com"`, false, "dangerously_allow_insecure_origins: true"},
	{`http://localhost.*`, `"http://localhost`, true, ""},
	// Any site under a public suffix.
	{`https://[^.]+\.github\.io`, `"https://evil.github.io"`, false, "dangerously_allow_public_suffix_wildcards: true"},
	{`https://\w+\.herokuapp\.com`, `"https://evil.herokuapp.com"`, false, "dangerously_allow_public_suffix_wildcards: true"},
	{`https://[a-z0-9-]+\.co\.uk`, `"https://evil.co.uk"`, false, "dangerously_allow_public_suffix_wildcards: true"},
	{`https://[a-z]+\.com`, `"https://evil.com"`, false, "dangerously_allow_public_suffix_wildcards: true"},
	{`https://([a-z0-9-]+\.)?[a-z0-9-]+\.github\.io`, `"https://evil.github.io"`, false, "dangerously_allow_public_suffix_wildcards: true"},
}

// TestRegexUnsafe checks that a regex is judged by what it matches: with
// credentials every regex of unsafeRegexes is an error quoting an origin
// it matches, and the set does not load; without credentials a regex that
// matches any host or a name run into the domain is a warning quoting it,
// and the others load clean, as their origins listed would. The dangerous
// settings allow what they allow for listed origins, and nothing more.
func TestRegexUnsafe(t *testing.T) {
	for _, c := range unsafeRegexes {
		t.Run(c.re, func(t *testing.T) {
			set, diags := loadRegex(t, c.re, "allow_credentials: true")
			if set != nil || len(diags) != 1 || diags[0].Severity != policy.SeverityError ||
				diags[0].Path != "policies[0].allowed_origin_regexes[0]" || !strings.Contains(diags[0].Message, c.witness) || diags[0].Fix == "" {
				t.Errorf("with credentials: want one error at allowed_origin_regexes[0] quoting %s; got:\n%s", c.witness, testutil.Diagnostics(diags))
			}
			set, diags = loadRegex(t, c.re)
			switch {
			case set == nil:
				t.Errorf("without credentials: refused:\n%s", testutil.Diagnostics(diags))
			case c.warnWithout && (len(diags) != 1 || diags[0].Severity != policy.SeverityWarning ||
				!strings.Contains(diags[0].Message, "this also allows "+c.witness)):
				t.Errorf("without credentials: want one warning saying it also allows %s; got:\n%s", c.witness, testutil.Diagnostics(diags))
			case !c.warnWithout && len(diags) != 0:
				t.Errorf("without credentials: want no diagnostic; got:\n%s", testutil.Diagnostics(diags))
			}
			set, diags = loadRegex(t, c.re, "allow_credentials: true", "dangerously_allow_insecure_origins: true", "dangerously_allow_public_suffix_wildcards: true")
			switch {
			case c.dangerous != "" && set == nil:
				// Allowed by its own setting; the other one is
				// there to show it does not matter.
				t.Errorf("with %s: refused:\n%s", c.dangerous, testutil.Diagnostics(diags))
			case c.dangerous == "" && set != nil:
				t.Errorf("the dangerously_… settings allowed it: %s", testutil.Diagnostics(diags))
			}
			if c.dangerous != "" {
				if set, diags := loadRegex(t, c.re, "allow_credentials: true", c.dangerous); set == nil {
					t.Errorf("with %s: refused:\n%s", c.dangerous, testutil.Diagnostics(diags))
				}
			}
		})
	}
}

// TestRegexUnsafeNoACAO checks what the errors protect: the witness each
// error quotes really is let in by the regex (here without credentials,
// where the policy loads), so refusing the policy is what keeps it out.
func TestRegexUnsafeNoACAO(t *testing.T) {
	for _, c := range unsafeRegexes {
		_, diags := loadRegex(t, c.re, "allow_credentials: true")
		if len(diags) == 0 {
			continue // reported by TestRegexUnsafe
		}
		msg := diags[0].Message
		i := strings.LastIndex(msg, c.witness)
		if i < 0 {
			continue
		}
		witness, err := strconv.QuotedPrefix(msg[i:])
		if err != nil {
			t.Fatal(err)
		}
		witness, _ = strconv.Unquote(witness)
		set, _ := loadRegex(t, c.re, "dangerously_allow_insecure_origins: true")
		if set == nil {
			t.Fatalf("%q does not load without credentials", c.re)
		}
		r := get(witness)
		var d policy.Decision
		set.Decide(&r, &d)
		if acao, _ := d.Header(policy.HeaderACAO); acao != witness {
			t.Errorf("%q: the quoted witness %q is not let in (ACAO %q): the diagnostic names an origin the regex does not allow", c.re, witness, acao)
		}
	}
}

// safeRegexes are regexes that list the sites of one domain: with
// credentials they load without a diagnostic. They include every regex of
// the repository's docs, examples and tests.
var safeRegexes = []string{
	`https://(app|admin)\.example\.com`,
	`https://[a-z0-9-]+\.example\.com`,
	`https://pr-[0-9]+\.preview\.example\.com`,
	`https://10\.\d+\.\d+\.\d+(:\d+)?`,               // a network the regex names
	`https://203\.0\.113\.\d+`,                       // a network the regex names
	`https://(8\.8\.8\.8|1\.1\.1\.1|203\.0\.113\.7)`, // addresses the regex names
	`https://(.+\.)?example\.com`,
	`https://(.*\.)?example\.com`,
	`https://([a-z0-9-]+\.)*example\.com`,
	`https://.+\.example\.com`,
	`https://[^/]+\.example\.com`,
	`https://\S+\.example\.com(:\d+)?`,
	`https://(www\.)?example\.com`,
	`https://app\.example\.(com|net|org)`,
	`https://app\.example\.com:\d+`,
	`https://app\.example\.com(:[0-9]{1,5})?`,
	`https://app\.example\.co(m)?`,
	`(?i)https://APP\.EXAMPLE\.COM`,
	`https://[a-z]+\.internal`,
	`https://[a-z0-9-]+\.example\.github\.io`,
	`http://localhost(:\d+)?`,
	`https://app\.example\.com(:[0-9]+)?`, // docs/policy.md
	`http://localhost(:[0-9]+)?`,          // docs/policy.md
	`https://10\.[0-9]+\.[0-9]+\.[0-9]+`,  // docs/policy.md
	`https?://localhost:[0-9]+`,
	`http://127\.0\.0\.1(:\d+)?`,
	`http://[a-z0-9-]+\.localhost(:\d+)?`,
	`https://10\.0\.0\.[0-9]+`,
	`https://[a-z0-9-]+\.example\.org`,                          // processor/semantics_test.go
	`https://preview-[0-9]+\.example\.dev`,                      // decide_test.go
	`^https://\w+\.preview\.example\.com$`,                      // docs/migrating-from-django.md
	`^https://\w+\.example\.com$`,                               // internal/importer/django tests
	`^https://[a-z0-9-]+\.example\.org`,                         // internal/importer/django tests
	`^https://app\.example\.io\z`,                               // internal/importer/django tests
	`(?i)^https://APP\.example\.dev$`,                           // internal/importer/django tests
	`https://[a-z0-9-]+\.tenant7\.example\.(com|net)(:[0-9]+)?`, // BenchmarkCompileRegexes
}

func TestRegexSafe(t *testing.T) {
	for _, re := range safeRegexes {
		if set, diags := loadRegex(t, re, "allow_credentials: true"); set == nil || len(diags) != 0 {
			t.Errorf("%q with credentials: want no diagnostic; got:\n%s", re, testutil.Diagnostics(diags))
		}
		if set, diags := loadRegex(t, re); set == nil || len(diags) != 0 {
			t.Errorf("%q: want no diagnostic; got:\n%s", re, testutil.Diagnostics(diags))
		}
	}
}

// TestRegexNeverMatchesNull checks that a regex never lets in the opaque
// origin "null" (nor "file://", which does not parse): only an explicit
// allowed_origins entry can, under dangerously_allow_null_origin.
func TestRegexNeverMatchesNull(t *testing.T) {
	for _, re := range []string{`null`, `.*`, `(null|file://)`, `file://.*`} {
		set, _ := loadRegex(t, re, "dangerously_allow_null_origin: true")
		if set == nil {
			continue
		}
		for _, o := range []string{"null", "file://"} {
			r := get(o)
			var d policy.Decision
			set.Decide(&r, &d)
			if _, has := d.Header(policy.HeaderACAO); has {
				t.Errorf("regex %q let in %q", re, o)
			}
		}
	}
}

// TestRegexTooComplex checks the bound on the analysis: a regex with more
// choices than it tries is refused with credentials, rather than trusted.
func TestRegexTooComplex(t *testing.T) {
	var b strings.Builder
	b.WriteString("https://")
	for range 40 {
		b.WriteString(`[a-z]+(-x|_y)?`)
	}
	b.WriteString(`\.example\.com`)
	set, diags := loadRegex(t, b.String(), "allow_credentials: true")
	if set != nil || len(diags) != 1 || !strings.Contains(diags[0].Message, "more alternatives and repetitions than corsproc checks") {
		t.Errorf("want one error saying the regex is too complex; got:\n%s", testutil.Diagnostics(diags))
	}
}

// TestRegexComposed composes regexes from the pieces origin regexes are
// made of (schemes, free runs, optional labels, domains, ports, anchors,
// word boundaries, alternatives) and checks
// the invariant the analysis promises, restated by attacksOn: when a
// policy with credentials lets in one of a few usual origins, it lets in
// none of the attacker's origins resembling it; without credentials, a
// policy that loads without warnings lets in no host of the attacker's and
// no name run into a domain. The seed is fixed, so a failure reproduces.
func TestRegexComposed(t *testing.T) {
	schemes := []string{`https://`, `https?://`, `^https://`, `[a-z]+://`, ``, `(https|http)://`, `.*://`, `(?i)HTTPS://`, `\w+://`,
		`https:/+`, `https:\/\/`}
	frees := []string{`[a-z0-9-]+\.`, `(.+\.)?`, `.*`, `[^/]*`, `\w+`, `app`, `[a-z]*`, `(www\.)?`, `\.`, `-`, `[.-]`, `\W`,
		`([a-z]+\.)*`, `(app|admin)\.`, `[a-z]{2,5}`, `[^/]{0,9}`, `\S*`, `(?:[a-z0-9-]+\.)?`, `[^.]+`, `(evil)?`,
		`\pL+\.`, `[\w.-]*`, ``, `(?:.*\.)?`, `[a-z0-9]+(-[a-z0-9]+)*\.`, `.+`, `.*\.`, `(.*)`, `[^:/]+`, `[-\w]+`, `\d+`,
		`(?:[a-z]+\.)+`, `\b`, `[^/]+?`, `.*?`, `(\w+\.)?`, `[\pL\pN-]+\.`, `\S+?\.`, `(?:|.*\.)`, `(a|.*\.)`}
	domains := []string{`example\.com`, `github\.io`, `example\.co\.uk`, `[a-z]+`, `com`, `example\.(com|net)`, `example\.[a-z]+`,
		`localhost`, `127\.0\.0\.1`, `example\.com\.?`, `[a-z]+\.[a-z]+`, `[a-z.]+`, `\w+\.\w+`, `(example\.com|.*)`,
		`example\.com$`, `example\.com\b`, `example[.]com`}
	ports := []string{``, `(:\d+)?`, `.*`, `:[0-9]+`, `(\..*)?`, `\S*`, `$`, `(:.*)?`, `:?\d*`, `(/.*)?`, `/?`}
	probes := []string{"https://app.example.com", "https://example.com", "https://a.github.io", "https://x.example.co.uk",
		"https://www.example.com", "http://app.example.com", "https://a.b.example.com", "https://pr-1.example.com", "http://localhost",
		"http://127.0.0.1:8080", "https://app.example.net", "https://appexample.com", "https://evil.com", "https://a-example.com",
		"https://example.com:8443", "https://app.example.com.", "https://admin.example.com", "https://1.example.com", "https://a.example"}
	r := rand.New(rand.NewPCG(13, 1))
	pick := func(l []string) string { return l[r.IntN(len(l))] }
	// 400 keep the test quick under the race detector; batches of
	// 20,000 with other seeds pass too.
	n := 400
	if testing.Short() {
		n = 100
	}
	for range n {
		re := pick(schemes) + pick(frees) + pick(frees) + pick(domains) + pick(ports)
		if r.IntN(4) == 0 {
			re = pick(schemes) + pick(frees) + pick(domains) + "|" + pick(schemes) + pick(frees) + pick(domains)
		}
		for _, creds := range []bool{true, false} {
			var keys []string
			if creds {
				keys = append(keys, "allow_credentials: true")
			}
			set, err := policyfile.Parse("r.yaml", []byte(regexPolicy(re, keys...)))
			if err != nil {
				continue
			}
			for _, o := range probes {
				if _, has := allows(set, o); !has {
					continue
				}
				attacks := attacksOn(o)
				for _, a := range attacks {
					if a.origin == o || !creds && (len(set.Warnings()) > 0 || !a.withoutCredentials) ||
						a.glued && !creds && siblingAllowed(set, attacks) {
						continue
					}
					if _, has := allows(set, a.origin); has {
						t.Errorf("%q (allow_credentials: %v, %d warnings) lets in %q, and so %q: %s", re, creds, len(set.Warnings()), o, a.origin, a.what)
					}
				}
			}
		}
	}
}
