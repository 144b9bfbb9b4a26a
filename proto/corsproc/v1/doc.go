// Package corsprocv1 is the schema of corsproc's policy file, generated
// from policy.proto: the YAML keys of a policy file are the snake_case
// names of its fields. Package policy decodes files into these types; the
// reference for users is docs/policy.md.
package corsprocv1
