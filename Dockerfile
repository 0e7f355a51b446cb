# syntax=docker/dockerfile:1.7
# One image for the whole mesh: every container runs the same `agora` binary with a different
# command (`agora serve auth`, `agora serve gateway`, `agora migrate order`, `agora health ...`).
#
# Stages: `chef` (toolchain + cargo-chef), `planner` (the dependency recipe from the manifests
# only), `builder` (dependencies first, cached in their own layer until a Cargo.toml or Cargo.lock
# changes, then the sources), `runtime` (distroless, non-root, nothing but the binary).

ARG RUST_VERSION=1.90
ARG CHEF_VERSION=0.1.78

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused as long as no manifest or the lock file changes.
RUN cargo chef cook --release --locked --recipe-path recipe.json --package agora
COPY . .
RUN cargo build --release --locked --package agora \
    && install -D -m 0555 target/release/agora /out/agora

# glibc and libgcc, no shell, no package manager; runs as uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="agora" \
      org.opencontainers.image.description="Agora: a gRPC-first service mesh for a shop (auth, user, product, inventory, order, REST edge gateway)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://example.invalid/agora"
COPY --from=builder /out/agora /usr/local/bin/agora
# No shell and no wget: probes that are not native to the runtime run the binary itself,
# `agora health <addr> <service>` (gRPC) and `agora health --http <url>` (the edge).
# Containers listen on every interface; everything else comes from the environment. The root
# filesystem can be read-only: the only writable path a service may need is its data directory
# (embedded SQLite when no database URL is given), which deployments mount as a volume at /data.
ENV AGORA_HOST=0.0.0.0 \
    AGORA_DATA_DIR=/data \
    AGORA_LOG__FORMAT=json
WORKDIR /data
USER 65532:65532
EXPOSE 50051 50052 50053 50054 50055 8080
ENTRYPOINT ["/usr/local/bin/agora"]
CMD ["--help"]
