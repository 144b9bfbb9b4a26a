# corsproc developer tasks. `make help` lists them.

GO ?= go

# protoc-gen-go is pinned to the google.golang.org/protobuf version in go.mod,
# so the generated code matches the runtime it is compiled against. Bump both
# together; `make proto` refuses to run when they differ.
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC ?= protoc
BIN := $(CURDIR)/bin

BENCHCOUNT ?= 6
FUZZTIME ?= 10s

.DEFAULT_GOAL := help

.PHONY: help test test-browser browser-deps vet build proto bench fuzz lint clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: browser-deps ## go vet, then every test with the race detector in shuffled order
	$(GO) vet ./...
	$(GO) test -race -shuffle=on ./...
	$(MAKE) --no-print-directory test-manifests
	$(MAKE) --no-print-directory test-bench

.PHONY: test-manifests test-bench
test-bench: ## vet and test the bench module (message counts, swap under load; no timings asserted)
	cd bench && $(GO) vet ./... && $(GO) test -shuffle=on ./...

test-manifests: ## vet and test the Kubernetes manifests (the k8s/ module: kustomize render, strict decoding, cross-checks)
	cd k8s && $(GO) vet ./... && $(GO) test -shuffle=on ./...

test-browser: browser-deps ## only the headless-Chromium end-to-end tests (envoy/browser), verbose
	$(GO) test -race -v ./envoy/browser/

# The browser tests in envoy/browser drive a real headless Chromium. Install it
# when it is missing and we are root; otherwise warn and go on: the tests then
# skip (CI sets CORSPROC_REQUIRE_BROWSER=1, which makes them fail instead).
browser-deps: ## install Chromium for the browser tests (apt-get, root only)
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
	{ [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	echo "!!!!! LOUD WARNING: chromium unavailable (not root, or apt-get failed); the browser tests in envoy/browser will be SKIPPED !!!!!" >&2

vet: ## go vet only
	$(GO) vet ./...

build: ## build bin/corsproc
	$(GO) build -o bin/corsproc ./cmd/corsproc

# The stamp file records which version is installed in ./bin, so changing
# PROTOC_GEN_GO_VERSION reinstalls it.
$(BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	@want=$$($(GO) list -m -f '{{.Version}}' google.golang.org/protobuf); \
	if [ "$$want" != "$(PROTOC_GEN_GO_VERSION)" ]; then \
		echo "go.mod requires google.golang.org/protobuf $$want but PROTOC_GEN_GO_VERSION is $(PROTOC_GEN_GO_VERSION): update the Makefile" >&2; \
		exit 1; \
	fi
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	rm -f $(BIN)/.protoc-gen-go-*
	touch $@

proto: $(BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION) ## regenerate proto/corsproc/v1/policy.pb.go (needs protoc: apt-get install protobuf-compiler)
	$(PROTOC) --plugin=protoc-gen-go=$(BIN)/protoc-gen-go \
		--proto_path=proto --go_out=proto --go_opt=paths=source_relative \
		corsproc/v1/policy.proto

# The bench module (bench/go.mod) compares corsproc with rs/cors and
# jub0bs/cors and measures scale and ext_proc message cost; its own module
# keeps those peers out of the server's dependencies. The load generator
# against a no-op ext_proc server takes minutes and is run on its own:
# cd bench && go run ./cmd/loadgen (docs/performance.md; with -tags vtprotobuf the vt option set marshals with vtprotobuf).
bench: ## benchmarks of policy, processor and the bench module (peers, scale, messages), BENCHCOUNT runs each (for benchstat)
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./policy/ ./processor/
	cd bench && $(GO) vet ./... && $(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./...

# Every package with Fuzz targets. A failing input is written to the
# package's testdata/fuzz/FuzzXxx/: commit it with the fix, as a regression
# test that every `go test` runs.
FUZZPKGS ?= ./policy/ ./policy/policyfile/ ./internal/origins/ ./internal/importer/django/ ./internal/importer/nginx/ ./internal/importer/envoy/ ./processor/ ./internal/curlreq/ ./internal/importer/istio/ ./internal/importer/gatewayapi/ ./internal/importer/kubecors/

fuzz: ## run every Fuzz target in FUZZPKGS for FUZZTIME each (default 10s; CI: 5s)
	@for pkg in $(FUZZPKGS); do \
		targets=$$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz') || continue; \
		for t in $$targets; do \
			echo "== $$pkg $$t"; \
			GO="$(GO)" bash .ci/fuzz-one $$pkg $$t $(FUZZTIME) || exit 1; \
		done; \
	done

lint: ## gofmt check and go vet
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "not gofmt'ed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

clean: ## remove bin/
	rm -rf bin
