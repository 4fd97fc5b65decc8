# syntax=docker/dockerfile:1
#
# The `tern` image that `tern export k8s` and `tern export compose` reference: one binary that
# runs every process (`tern meta`, `tern replica`, `tern proxy`) and every operator command.
#
#   docker build -t tern:0.1.0 .            # the tag the exports use by default: tern:VERSION
#
# Stage 1 builds `tern` in release mode. Unlike scripts/env.sh, which links a RocksDB prebuilt
# once per machine, it compiles RocksDB's C++ from source (librocksdb-sys, with the snappy and
# lz4 features of the root Cargo.toml): that needs a C++ compiler (in the rust image), and
# libclang for bindgen. Expect ~20 minutes on 2 cores the first time; the cache mounts keep the
# registry and the target directory between builds. No cmake is needed: librocksdb-sys builds
# with the cc crate. See docs/build.md and docs/topology.md ("Beyond one machine").
ARG RUST_VERSION=1.95
ARG DEBIAN=trixie

FROM rust:${RUST_VERSION}-${DEBIAN} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The target directory is a cache mount, so the binary is copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tern \
 && install -D -m 0755 target/release/tern /out/tern

# Stage 2: a slim runtime with the binary, its C++ runtime (RocksDB) and CA certificates (S3
# backups over https), running as an unprivileged user whose data lives in /var/lib/tern (the
# volume the manifests mount; uid 10001 matches their securityContext).
FROM debian:${DEBIAN}-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 tern \
 && useradd --uid 10001 --gid tern --no-create-home --home-dir /var/lib/tern tern \
 && install -d -o tern -g tern /var/lib/tern /etc/tern
COPY --from=builder /out/tern /usr/local/bin/tern
USER 10001:10001
WORKDIR /var/lib/tern
# Meta server, replica server, proxy, Redis gateway, metrics (the defaults of the exports).
EXPOSE 34601 34801 34700 6379 9100
ENTRYPOINT ["tern"]
CMD ["--help"]
