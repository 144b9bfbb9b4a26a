package django_test

import (
	"strings"
	"testing"

	"github.com/corsproc/corsproc/internal/importer/django"
	"github.com/corsproc/corsproc/policy"
	"github.com/corsproc/corsproc/policy/policyfile"
)

// TestEnvironmentExtendedOriginsKept checks that a list of origins the file
// spells out and extends with what the environment holds keeps every
// literal origin, marks the environment's part in the YAML, says in a
// LeftOut warning which origins were kept and what to add by hand, and
// makes the import incomplete (exit 1).
func TestEnvironmentExtendedOriginsKept(t *testing.T) {
	const head = "import os\nimport environ\nfrom decouple import config, Csv\nenv = environ.Env()\n"
	for _, tt := range []struct {
		name     string
		settings string
		kept     []string // allowed by the policy
		defaults []string // kept as the default of a lookup, marked so
		lookups  []string // named in the YAML and the warning
	}{
		{
			name: "plus_equals_split",
			settings: `CORS_ALLOWED_ORIGINS = [
    "https://app.example.com",
    "https://admin.example.com",
]
CORS_ALLOWED_ORIGINS += os.environ.get("EXTRA_ORIGINS", "").split(",")
`,
			kept:    []string{"https://app.example.com", "https://admin.example.com"},
			lookups: []string{`os.environ.get("EXTRA_ORIGINS") (line 9)`},
		},
		{
			name: "extend_env_list",
			settings: `CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
CORS_ALLOWED_ORIGINS.extend(env.list("MORE_ORIGINS", default=["https://b.example.com"]))
`,
			kept:     []string{"https://app.example.com"},
			defaults: []string{"https://b.example.com"},
			lookups:  []string{`env.list("MORE_ORIGINS") (line 6)`},
		},
		{
			name:     "env_list_default",
			settings: `CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=["https://app.example.com", "http://localhost:3000"])` + "\n",
			defaults: []string{"https://app.example.com", "http://localhost:3000"},
			lookups:  []string{`env.list("CORS_ALLOWED_ORIGINS") (line 5)`},
		},
		{
			name:     "decouple_csv",
			settings: `CORS_ALLOWED_ORIGINS = config("CORS_ALLOWED_ORIGINS", default="https://app.example.com, https://b.example.com", cast=Csv())` + "\n",
			defaults: []string{"https://app.example.com", "https://b.example.com"},
			lookups:  []string{`config("CORS_ALLOWED_ORIGINS") (line 5)`},
		},
		{
			name: "element_and_concatenation",
			settings: `CORS_ALLOWED_ORIGINS = [
    "https://app.example.com",
    os.getenv("FRONTEND_URL", "http://localhost:3000"),
] + env.list("EXTRA")
CORS_ALLOWED_ORIGINS.append(os.environ["ADMIN_ORIGIN"])
`,
			kept:     []string{"https://app.example.com"},
			defaults: []string{"http://localhost:3000"},
			lookups:  []string{`os.getenv("FRONTEND_URL") (line 7)`, `env.list("EXTRA") (line 8)`, `os.environ["ADMIN_ORIGIN"] (line 9)`},
		},
		{
			name: "star_and_variable",
			settings: `BASE = ["https://base.example.com"]
CORS_ALLOWED_ORIGINS = [*env.list("EXTRA", default=[]), "https://app.example.com", FRONTEND]
`,
			kept:    []string{"https://app.example.com"},
			lookups: []string{`env.list("EXTRA") (line 6)`, "the value at line 6, which refers to the variable FRONTEND"},
		},
		{
			name: "tuple",
			settings: `CORS_ALLOWED_ORIGINS = ("https://app.example.com",)
CORS_ALLOWED_ORIGINS += ("https://admin.example.com", os.environ["ADMIN2"])
CORS_ALLOWED_ORIGINS += env.tuple("MORE", default=("https://b.example.com",))
`,
			kept:     []string{"https://app.example.com", "https://admin.example.com"},
			defaults: []string{"https://b.example.com"},
			lookups:  []string{`os.environ["ADMIN2"] (line 6)`, `env.tuple("MORE") (line 7)`},
		},
		{
			name: "debug_branch",
			settings: `CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
if DEBUG:
    CORS_ALLOWED_ORIGINS += ["http://localhost:3000"]
CORS_ALLOWED_ORIGINS += os.environ.get("EXTRA", "").split(",")
`,
			kept:    []string{"https://app.example.com"},
			lookups: []string{`os.environ.get("EXTRA") (line 8)`},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := django.Import("settings.py", []byte(head+tt.settings))
			if err != nil {
				t.Fatal(err)
			}
			if res.LoadError != nil {
				t.Fatalf("LoadError %v\n%s", res.LoadError, res.YAML)
			}
			if !res.Incomplete() {
				t.Errorf("Incomplete() is false: the import must exit 1")
			}
			set, err := policyfile.Parse("cors.yaml", res.YAML)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range append(append([]string(nil), tt.kept...), tt.defaults...) {
				var d policy.Decision
				set.Decide(&policy.Request{Method: "GET", Origin: o, Path: "/"}, &d)
				if d.Outcome != policy.OutcomeAllowed {
					t.Errorf("%s: %v %v, want allowed\n%s", o, d.Outcome, d.Reason, res.YAML)
				}
			}
			yaml := string(res.YAML)
			for _, o := range tt.defaults {
				if !strings.Contains(yaml, "- "+o+"  # default of ") {
					t.Errorf("the YAML does not mark %s as a default:\n%s", o, yaml)
				}
			}
			var w *django.Warning
			for i := range res.Warnings {
				if res.Warnings[i].Setting == "CORS_ALLOWED_ORIGINS" && res.Warnings[i].LeftOut {
					w = &res.Warnings[i]
				}
			}
			if w == nil {
				t.Fatalf("no LeftOut warning on CORS_ALLOWED_ORIGINS: %v", res.Warnings)
			}
			for _, o := range append(append([]string(nil), tt.kept...), tt.defaults...) {
				if !strings.Contains(w.Message, `"`+o+`"`) {
					t.Errorf("the warning does not name the kept %s: %s", o, w)
				}
			}
			for _, l := range tt.lookups {
				if !strings.Contains(w.Message, l) {
					t.Errorf("the warning does not name %s: %s", l, w)
				}
				if !strings.Contains(yaml, "# + ") || !strings.Contains(yaml, l) {
					t.Errorf("the YAML does not mark where %s belongs:\n%s", l, yaml)
				}
			}
			if !strings.Contains(w.Fix, "add to allowed_origins by hand") {
				t.Errorf("the fix does not say what to add by hand: %s", w.Fix)
			}
		})
	}
}

// TestEveryWarningAsksForADecision imports every settings file of the
// import tests and checks that each warning says what to do: a warning that
// only says all is well is noise that hides the ones that matter.
func TestEveryWarningAsksForADecision(t *testing.T) {
	for _, tt := range importTests {
		res, err := django.Import("settings.py", []byte(tt.settings))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, w := range res.Warnings {
			if w.Fix == "" {
				t.Errorf("%s: a warning without a decision: %s", tt.name, w)
			}
		}
	}
}

// TestRemovedSettings checks that the settings DCH removed get a warning
// naming DCH's own system check and what to do instead, and that a
// negative CORS_PREFLIGHT_MAX_AGE cites the check that refuses it, E004.
func TestRemovedSettings(t *testing.T) {
	res, err := django.Import("settings.py", []byte(`CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
CORS_MODEL = "app.CorsOrigin"
CORS_REPLACE_HTTPS_REFERER = True
CORS_PREFLIGHT_MAX_AGE = -1
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]string{
		2: {"CORS_MODEL", "corsheaders.E012", "allowed_origins"},
		3: {"CORS_REPLACE_HTTPS_REFERER", "corsheaders.E013", "CSRF_TRUSTED_ORIGINS"},
		4: {"CORS_PREFLIGHT_MAX_AGE", "corsheaders.E004"},
	}
	for _, w := range res.Warnings {
		for _, s := range want[w.Line] {
			if !strings.Contains(w.String(), s) {
				t.Errorf("line %d: %q lacks %q", w.Line, w, s)
			}
		}
		delete(want, w.Line)
	}
	for line := range want {
		t.Errorf("no warning at line %d: %v", line, res.Warnings)
	}
}

// TestEnvironmentOnlyUnderDebug checks that a lookup only DEBUG adds makes
// the profiles differ: the development policy marks it and the import is
// incomplete, instead of the one policy of a file whose profiles look
// alike once the lookups are ignored.
func TestEnvironmentOnlyUnderDebug(t *testing.T) {
	src := []byte(`CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
if DEBUG:
    CORS_ALLOWED_ORIGINS += env.list("DEV_ORIGINS")
`)
	res, err := django.Import("settings.py", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Policies) != 2 || !res.Incomplete() {
		t.Fatalf("policies %q, Incomplete %t; want django and django-debug, incomplete\n%s", res.Policies, res.Incomplete(), res.YAML)
	}
	_, debug, _ := strings.Cut(string(res.YAML), "- name: django-debug")
	if !strings.Contains(debug, `# + what env.list("DEV_ORIGINS") (line 3) holds where Django runs`) {
		t.Errorf("the debug policy does not mark DEV_ORIGINS:\n%s", res.YAML)
	}
	prod, err := django.ImportWith("settings.py", src, django.Options{Profile: django.ProductionProfile})
	if err != nil {
		t.Fatal(err)
	}
	if prod.Incomplete() || strings.Contains(string(prod.YAML), "DEV_ORIGINS") {
		t.Errorf("the production profile lacks nothing:\n%s%v", prod.YAML, prod.Warnings)
	}
}
