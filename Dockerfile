# For users who build with Docker (CI builds the same image without Docker: make image).
# Multi-stage: a static release binary, then only that binary and the CA bundle on an empty,
# non-root base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu --bin durablejob \
 && cp target/x86_64-unknown-linux-gnu/release/durablejob /durablejob

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /durablejob /durablejob
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /
ENTRYPOINT ["/durablejob"]
CMD ["operator"]
