package policyfile

import (
	_ "embed"

	"github.com/corsproc/corsproc/policy"
)

//go:embed development.yaml
var developmentYAML []byte

// DevelopmentSource is the Source of the embedded development policy set.
const DevelopmentSource = "embedded development policy"

// Development returns the embedded development policy set: every route,
// origins http://localhost:*, http://127.0.0.1:* and http://[::1]:* only.
func Development() *policy.Set {
	s, err := Parse(DevelopmentSource, developmentYAML)
	if err != nil {
		panic("corsproc: the embedded development policy is invalid: " + err.Error())
	}
	return s
}

// DevelopmentYAML returns the embedded development policy file.
func DevelopmentYAML() []byte { return append([]byte(nil), developmentYAML...) }
