package k8s_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	istioapinetworking "istio.io/api/networking/v1alpha3"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	sigsjson "sigs.k8s.io/json"
)

// scheme knows every kind the manifests may hold, with its Go API type.
// A kind outside it is a failure: add its types here first.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme,
		appsv1.AddToScheme,
		autoscalingv2.AddToScheme,
		policyv1.AddToScheme,
		networkingv1.AddToScheme,
		egv1a1.AddToScheme,
		// The Prometheus Operator's PodMonitor and PrometheusRule
		// (k8s/components/monitoring), with its own Go API types.
		monitoringv1.AddToScheme,
		gwapiv1beta1.Install,
		gwapiv1.Install, // HTTPRoute, in docs/envoy-gateway.md
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strictSerializer decodes the way a strict `kubectl apply
// --validate=strict` (the server's strict field validation) would: an
// unknown field, a field in the wrong case and a field given twice are all
// errors. It is apimachinery's own JSON serializer in strict mode
// (case-sensitive sigs.k8s.io/json underneath).
var strictSerializer = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
	kjson.SerializerOptions{Strict: true})

var envoyFilterGVK = istionetworking.SchemeGroupVersion.WithKind("EnvoyFilter")

// decode decodes o strictly into its Go API type and sets o.typed.
func decode(r *report, o *object) {
	gv, err := schema.ParseGroupVersion(o.apiVersion)
	if err != nil {
		r.add(o, "apiVersion %q: %v", o.apiVersion, err)
		return
	}
	gvk := gv.WithKind(o.kind)
	if gvk == envoyFilterGVK {
		o.typed = decodeEnvoyFilter(r, o)
		return
	}
	if !scheme.Recognizes(gvk) {
		r.add(o, "no Go API type known for %s: a typo in apiVersion or kind, or a new kind the tests must learn (decode_test.go)", gvk)
		return
	}
	obj, _, err := strictSerializer.Decode(o.data, &gvk, nil)
	if err != nil {
		r.add(o, "does not decode strictly as %s: %v", gvk, err)
	}
	// A strict decoding error (an unknown or duplicate field) still yields
	// the object: the cross-checks go on with it, so that one typo does not
	// also report every Service selecting its pods.
	if err == nil || runtime.IsStrictDecodingError(err) {
		o.typed = obj
	}
}

// decodeEnvoyFilter decodes an Istio EnvoyFilter into istio.io/client-go's
// type. Its spec is a protobuf message whose generated UnmarshalJSON allows
// unknown fields (Istio's jsonpb shim), so the spec is decoded here with
// protojson, strictly, and its keys are checked to be the lowerCamelCase
// JSON names: protojson also accepts the proto names (workload_selector),
// which the API server's structural schema would prune or reject.
func decodeEnvoyFilter(r *report, o *object) *istionetworking.EnvoyFilter {
	var top struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              json.RawMessage `json:"spec"`
	}
	strict, err := sigsjson.UnmarshalStrict(o.data, &top)
	if err != nil {
		r.add(o, "does not decode as an EnvoyFilter: %v", err)
		return nil
	}
	for _, e := range strict {
		r.add(o, "does not decode strictly as an EnvoyFilter: %v", e)
	}
	ef := &istionetworking.EnvoyFilter{TypeMeta: top.TypeMeta, ObjectMeta: top.ObjectMeta}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(top.Spec, &ef.Spec); err != nil {
		r.add(o, "spec does not decode strictly as istio.networking.v1alpha3.EnvoyFilter: %v", err)
		return nil
	}
	var spec any
	if err := json.Unmarshal(top.Spec, &spec); err == nil {
		for _, e := range jsonNameErrors(spec, (&istioapinetworking.EnvoyFilter{}).ProtoReflect().Descriptor(), "spec") {
			r.add(o, "%s", e)
		}
	}
	return ef
}

// jsonNameErrors reports the keys of v, a JSON value of message md, that are
// not the lowerCamelCase JSON name of their field. google.protobuf.Struct,
// Value and Any hold free-form JSON and are not looked into.
func jsonNameErrors(v any, md protoreflect.MessageDescriptor, path string) []string {
	switch md.FullName() {
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any":
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	var errs []string
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByTextName(k)
		}
		if fd == nil {
			continue // protojson already refused it
		}
		p := path + "." + k
		if k != fd.JSONName() {
			errs = append(errs, fmt.Sprintf("%s: write %q: Kubernetes knows the field by its JSON name only, and drops or refuses %q", p, fd.JSONName(), k))
		}
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() && fd.MapValue().Kind() != protoreflect.MessageKind {
			continue
		}
		sub := fd.Message()
		if fd.IsMap() {
			sub = fd.MapValue().Message()
			if mv, ok := m[k].(map[string]any); ok {
				for mk, e := range mv {
					errs = append(errs, jsonNameErrors(e, sub, fmt.Sprintf("%s[%q]", p, mk))...)
				}
			}
			continue
		}
		if fd.IsList() {
			if l, ok := m[k].([]any); ok {
				for i, e := range l {
					errs = append(errs, jsonNameErrors(e, sub, fmt.Sprintf("%s[%d]", p, i))...)
				}
			}
			continue
		}
		errs = append(errs, jsonNameErrors(m[k], sub, p)...)
	}
	return errs
}

// typed returns the objects of objs decoded as T.
func typed[T any](objs []*object) []*object {
	var out []*object
	for _, o := range objs {
		if _, ok := o.typed.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

// as returns o's decoded value as T.
func as[T any](o *object) T {
	v, _ := o.typed.(T)
	return v
}

// protoJSON renders a decoded protobuf message, for messages that compare
// values.
func protoJSON(m proto.Message) string {
	b, _ := protojson.MarshalOptions{}.Marshal(m)
	return strings.TrimSpace(string(b))
}
