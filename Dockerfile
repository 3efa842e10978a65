# One image with both binaries: `tidemark` (the worker/CLI) and `tidemark-operator`.
# librdkafka is compiled into the worker (rdkafka-sys builds it from source), so the runtime
# image only needs OpenSSL, zlib and CA certificates.

FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      libssl-dev pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY worker worker
COPY operator operator
COPY tests tests
RUN cargo build --release --locked -p tidemark -p tidemark-operator \
    && install -D -m 0755 target/release/tidemark /out/tidemark \
    && install -D -m 0755 target/release/tidemark-operator /out/tidemark-operator

FROM debian:bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="tidemark" \
      org.opencontainers.image.description="Kafka backup, restore and consumer-offset safety for Kubernetes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tidemark-dev/tidemark"
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/tidemark /out/tidemark-operator /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tidemark"]
