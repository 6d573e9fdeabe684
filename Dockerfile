# syntax=docker/dockerfile:1
# The NovaCron operator image: the release `operator` binary alone on a distroless base, run as
# a non-root user (65532, "nonroot"). Build from the repository root:
#
#   docker build -t novacron/operator:0.1.0 .
#
# Stage 1 builds with the workspace's toolchain (rust-version 1.95). Cargo loads every workspace
# member, so the whole source tree is copied (.dockerignore leaves out target/, results/ and .git);
# cache mounts keep the registry and the target directory between builds. The dependencies are
# pure Rust plus ring's C, which the rust image's gcc compiles (TLS is rustls, so no OpenSSL).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p operator --bin operator \
    && install -D -m 0755 target/release/operator /out/operator

# Stage 2: glibc and libgcc, CA certificates, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/operator /usr/local/bin/operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/operator"]
CMD ["run"]
