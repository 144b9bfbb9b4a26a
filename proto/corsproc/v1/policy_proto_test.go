package corsprocv1_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	corsprocv1 "github.com/corsproc/corsproc/proto/corsproc/v1"
)

// These tests fail when policy.pb.go no longer matches policy.proto, without
// needing protoc: the .proto is compiled in pure Go by protocompile and
// compared with the descriptor embedded in the generated code.

const (
	protoRoot  = "../.." // proto/, the --proto_path of make proto
	protoFile  = "corsproc/v1/policy.proto"
	goFile     = "policy.pb.go"
	goMod      = "../../../go.mod"
	regenerate = "policy.pb.go is stale: run make proto and commit the result"
)

// compileProto compiles policy.proto with its comments.
func compileProto(t *testing.T) linker.File {
	t.Helper()
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{protoRoot}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	files, err := c.Compile(t.Context(), protoFile)
	if err != nil {
		t.Fatalf("compiling %s: %v", protoFile, err)
	}
	return files[0]
}

// TestGeneratedDescriptorIsCurrent compares the schema itself: messages,
// fields, numbers, types, enums, options.
func TestGeneratedDescriptorIsCurrent(t *testing.T) {
	t.Parallel()
	want := normalise(protodesc.ToFileDescriptorProto(compileProto(t)))
	got := normalise(protodesc.ToFileDescriptorProto(corsprocv1.File_corsproc_v1_policy_proto))
	if !proto.Equal(got, want) {
		t.Errorf("%s\nThe descriptor in %s differs from %s (- generated, + .proto):\n%s",
			regenerate, goFile, protoFile, lineDiff(prototext.Format(got), prototext.Format(want)))
	}
}

// normalise drops what legitimately differs between the descriptor protoc
// gave protoc-gen-go and the one protocompile builds, and nothing else:
//   - source_code_info: protoc-gen-go strips it before embedding the
//     descriptor (comments are checked by TestGeneratedCommentsAreCurrent);
//   - json_name when it is the default lowerCamelCase of the field name:
//     protoc fills the default in for plugins, other compilers may leave it
//     unset, and both mean the same. An explicit json_name option stays.
func normalise(fd *descriptorpb.FileDescriptorProto) *descriptorpb.FileDescriptorProto {
	fd.SourceCodeInfo = nil
	var walk func([]*descriptorpb.DescriptorProto)
	walk = func(msgs []*descriptorpb.DescriptorProto) {
		for _, m := range msgs {
			for _, f := range append(m.GetField(), m.GetExtension()...) {
				if f.GetJsonName() == jsonName(f.GetName()) {
					f.JsonName = nil
				}
			}
			walk(m.GetNestedType())
		}
	}
	walk(fd.GetMessageType())
	for _, f := range fd.GetExtension() {
		if f.GetJsonName() == jsonName(f.GetName()) {
			f.JsonName = nil
		}
	}
	return fd
}

// jsonName is protoc's default JSON name: underscores dropped, the letter
// after each one upper-cased.
func jsonName(name string) string {
	var b strings.Builder
	upper := false
	for _, r := range name {
		switch {
		case r == '_':
			upper = true
		case upper && 'a' <= r && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
			upper = false
		default:
			b.WriteRune(r)
			upper = false
		}
	}
	return b.String()
}

// TestGeneratedCommentsAreCurrent checks that every comment the .proto
// attaches to a message, field, enum or value (and the file header) appears
// in the generated Go, which carries them as doc comments. It catches
// comments added or changed in the .proto since the last make proto.
func TestGeneratedCommentsAreCurrent(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(goFile)
	if err != nil {
		t.Fatal(err)
	}
	fd := compileProto(t)
	locs := fd.SourceLocations()
	check := func(what string, comments ...string) {
		for _, c := range comments {
			for line := range strings.Lines(c) {
				line = strings.TrimRight(line, "\n")
				if !bytes.Contains(src, []byte("//"+line)) {
					t.Errorf("%s\nThe comment line %q of %s is not in %s.", regenerate, line, what, goFile)
				}
			}
		}
	}
	// The file header: comments before the syntax statement (field 12 of
	// FileDescriptorProto).
	syntax := locs.ByPath(protoreflect.SourcePath{12})
	check("the file header", syntax.LeadingDetachedComments...)

	forDesc := func(d protoreflect.Descriptor) {
		l := locs.ByDescriptor(d)
		check(string(d.FullName()), l.LeadingComments, l.TrailingComments)
	}
	var walkEnums func(protoreflect.EnumDescriptors)
	walkEnums = func(es protoreflect.EnumDescriptors) {
		for i := range es.Len() {
			e := es.Get(i)
			forDesc(e)
			for j := range e.Values().Len() {
				forDesc(e.Values().Get(j))
			}
		}
	}
	var walkMessages func(protoreflect.MessageDescriptors)
	walkMessages = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			forDesc(m)
			for j := range m.Fields().Len() {
				forDesc(m.Fields().Get(j))
			}
			walkEnums(m.Enums())
			walkMessages(m.Messages())
		}
	}
	walkMessages(fd.Messages())
	walkEnums(fd.Enums())
}

// TestGeneratorVersionIsPinned checks that policy.pb.go was generated by the
// protoc-gen-go of the google.golang.org/protobuf version that go.mod
// requires, the one make proto installs. (Test binaries carry no module
// versions, so go.mod is read.)
func TestGeneratorVersionIsPinned(t *testing.T) {
	t.Parallel()
	mod, err := os.ReadFile(goMod)
	if err != nil {
		t.Fatal(err)
	}
	var version string
	for line := range strings.Lines(string(mod)) {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "require" {
			f = f[1:]
		}
		if len(f) >= 2 && f[0] == "google.golang.org/protobuf" {
			version = f[1]
		}
	}
	if version == "" {
		t.Fatalf("%s does not require google.golang.org/protobuf", goMod)
	}
	src, err := os.ReadFile(goFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("// \tprotoc-gen-go %s\n", version); !bytes.Contains(src, []byte(want)) {
		t.Errorf("%s was not generated by protoc-gen-go %s, the version go.mod requires: run make proto", goFile, version)
	}
}

// lineDiff is a small line diff of a and b (longest common subsequence),
// showing changed lines with - and + and a few lines of context.
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	// lcs[i][j] is the length of the longest common subsequence of x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		mark byte
		line string
	}
	var ops []op
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			ops = append(ops, op{' ', x[i]})
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', x[i]})
			i++
		default:
			ops = append(ops, op{'+', y[j]})
			j++
		}
	}
	// Show context lines within diffContext of a change: enough to see
	// which field a changed line belongs to.
	const diffContext = 4
	near := func(k int) bool {
		for d := -diffContext; d <= diffContext; d++ {
			if k+d >= 0 && k+d < len(ops) && ops[k+d].mark != ' ' {
				return true
			}
		}
		return false
	}
	var out strings.Builder
	skipped := false
	for k, o := range ops {
		if !near(k) {
			skipped = true
			continue
		}
		if skipped {
			out.WriteString("   ...\n")
			skipped = false
		}
		fmt.Fprintf(&out, " %c %s\n", o.mark, o.line)
	}
	return out.String()
}
