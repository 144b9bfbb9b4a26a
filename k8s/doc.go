// Package k8s holds the tests of corsproc's Kubernetes manifests: the
// kustomize base and overlays in the directories beside this file.
//
// It is a module of its own (github.com/corsproc/corsproc/k8s) so that the
// heavy, test-only dependencies it needs (kustomize, the Kubernetes, Istio,
// Gateway API and Envoy Gateway API types, BuildKit's Dockerfile parser) stay
// out of corsproc's go.mod. It imports corsproc's policy package from the
// checkout above it (a replace directive), so a policy in a ConfigMap is
// validated by the same code that serves it.
//
// No cluster, kubectl or kustomize binary is needed:
//
//	cd k8s && go test ./...
//
// renders every overlay with kustomize's Go API and checks the result; see
// docs/kubernetes.md for what is checked and what is not.
package k8s
