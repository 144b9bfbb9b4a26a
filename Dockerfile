# syntax=docker/dockerfile:1
#
# corsproc's container image: a static binary on distroless, as non-root.
#
#   docker buildx build -t corsproc:dev .                       # this machine's platform
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 \
#     -t REGISTRY/corsproc:VERSION --push .                     # every platform, then deploy by digest
#   docker run --rm -p 9001:9001 -p 9002:9002 corsproc:dev
#
# The binary is `make build`'s (go build -o bin/corsproc ./cmd/corsproc),
# plus CGO_ENABLED=0 (a static binary: the runtime image has no libc) and
# -trimpath (no build machine paths in it). k8s/dockerfile_test.go checks
# that these stay in step with the Makefile, since no Docker engine runs in
# CI; docs/kubernetes.md, "The image", explains the build.
#
# Both base images are pinned by digest (the multi-platform index), so a
# rebuild gets the same bases until someone moves the pin on purpose:
#   docker buildx imagetools inspect golang:1.26.8
#   docker buildx imagetools inspect gcr.io/distroless/static-debian13:nonroot
# print the current digests.

# The build stage runs on the builder's own platform ($BUILDPLATFORM) and
# cross-compiles for the target with GOOS/GOARCH (pure Go, CGO off): no
# emulation of the target, whatever --platform asks for. The Go of go.mod's
# `go` line (the test checks the minor version); the official image sets
# GOTOOLCHAIN=local.
FROM --platform=$BUILDPLATFORM golang:1.26.8@sha256:3c3e25a4da13fd0478eed2df1eb35a0e667094a7124d3993a6a1d30f71c17e79 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again; the
# module and build caches are BuildKit cache mounts, kept between builds
# and never part of an image layer.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    go mod download
COPY . .
# Set by BuildKit from --platform (linux/arm/v7: TARGETOS=linux,
# TARGETARCH=arm, TARGETVARIANT=v7). The variant selects GOARM for arm
# (v6, v7) and GOAMD64 for amd64 (v2, v3); other architectures have none.
ARG TARGETOS TARGETARCH TARGETVARIANT
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    case "${TARGETARCH}" in \
      arm) export GOARM="${TARGETVARIANT#v}" ;; \
      amd64) [ -z "${TARGETVARIANT}" ] || export GOAMD64="${TARGETVARIANT}" ;; \
    esac && \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -o /out/corsproc ./cmd/corsproc

# Distroless static on Debian 13: no shell, no package manager, CA
# certificates and tzdata only. The nonroot variant's user is 65532, the uid
# the Kubernetes manifests run as.
FROM gcr.io/distroless/static-debian13:nonroot@sha256:1c2c046bc09ed40fad370b599a0b1ae7987f55b01e247cf27a7c27cd97e5bbc7
COPY --from=build /out/corsproc /usr/local/bin/corsproc
USER 65532:65532
# 9001: ext_proc gRPC (and gRPC health); 9002: admin HTTP (/metrics,
# /healthz, /readyz, /debug/policy).
EXPOSE 9001 9002
ENTRYPOINT ["/usr/local/bin/corsproc"]
# In a container corsproc must listen on every interface; without --policy it
# enforces its embedded development policy (localhost origins only).
CMD ["serve", "--listen", "0.0.0.0:9001", "--admin", "0.0.0.0:9002", "--log-format", "json"]
