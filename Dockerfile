# syntax=docker/dockerfile:1
# One image with both binaries: `tidemark` (the worker and CLI, the entrypoint) and
# `tidemark-operator` (the operator's Deployment runs /usr/local/bin/tidemark-operator run).
#
# librdkafka is compiled from source by rdkafka-sys and linked statically into `tidemark`
# (features ssl, zstd and the default libz; not dynamic-linking); zstd is built in as well.
# OpenSSL and zlib are the system's: libssl-dev and zlib1g-dev to build, libssl3 and zlib1g at
# run time. The operator uses rustls and needs neither; it links the task contract (task/), not
# the worker, so it is built without librdkafka or object_store. tests/tests/dockerfile.rs checks that
# what is built, copied and installed here matches the workspace.
#
#   docker build -t tidemark:dev --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .

ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Every workspace member is copied: cargo reads all their manifests.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY task task
COPY worker worker
COPY operator operator
COPY tests tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tidemark -p tidemark-operator \
    && install -D -s -m 0755 target/release/tidemark /out/tidemark \
    && install -D -s -m 0755 target/release/tidemark-operator /out/tidemark-operator

FROM debian:bookworm-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tidemark" \
      org.opencontainers.image.description="Kafka backup, restore and consumer-offset safety for Kubernetes: the tidemark worker/CLI and the tidemark-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tidemark-dev/tidemark" \
      org.opencontainers.image.url="https://github.com/tidemark-dev/tidemark"
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/tidemark /out/tidemark-operator /usr/local/bin/
# The non-root user the operator's pods and worker Jobs run as (runAsUser/runAsGroup 65532).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tidemark"]
