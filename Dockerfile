# syntax=docker/dockerfile:1
#
# corsproc's container image: a static binary on distroless, as non-root.
#
#   docker build -t corsproc:dev .
#   docker run --rm -p 9001:9001 -p 9002:9002 corsproc:dev
#
# The binary is `make build`'s (go build -o bin/corsproc ./cmd/corsproc),
# plus CGO_ENABLED=0 (a static binary: the runtime image has no libc) and
# -trimpath (no build machine paths in it). k8s/dockerfile_test.go checks
# that these stay in step with the Makefile, since no Docker engine runs in
# CI. k8s/base/kustomization.yaml names the image the manifests use.

# The Go of go.mod's `go` line (the test checks the minor version).
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Set by BuildKit for `docker buildx build --platform ...`; empty (the
# builder's own platform) otherwise.
ARG TARGETOS TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -o /out/corsproc ./cmd/corsproc

# Distroless static: no shell, no package manager, CA certificates and
# tzdata only. The nonroot variant's user is 65532, the uid the Kubernetes
# manifests run as.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/corsproc /usr/local/bin/corsproc
USER 65532:65532
# 9001: ext_proc gRPC (and gRPC health); 9002: admin HTTP (/metrics,
# /healthz, /readyz, /debug/policy).
EXPOSE 9001 9002
ENTRYPOINT ["/usr/local/bin/corsproc"]
# In a container corsproc must listen on every interface; without --policy it
# enforces its embedded development policy (localhost origins only).
CMD ["serve", "--listen", "0.0.0.0:9001", "--admin", "0.0.0.0:9002", "--log-format", "json"]
