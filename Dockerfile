# QuNimbus node image.
#
#   docker build -t qunimbus .
#   docker run -e QUNIMBUS_ADMIN_TOKEN=... -e QUNIMBUS_INGEST_TOKEN=... \
#              -v qunimbus-data:/var/lib/qunimbus -p 8080:8080 qunimbus
#
# The container listens on 0.0.0.0:8080, so the node refuses to start with
# generated tokens: supply QUNIMBUS_ADMIN_TOKEN and QUNIMBUS_INGEST_TOKEN
# (16+ printable characters). See deploy/README.md for a whole deployment.

# ---- build ---------------------------------------------------------------
# The workspace's minimum Rust version (Cargo.toml rust-version).
ARG RUST_VERSION=1.89
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN cargo build --release --locked -p qunimbus-cli \
 && install -m 0755 target/release/qunimbus /usr/local/bin/qunimbus

# ---- runtime -------------------------------------------------------------
FROM debian:bookworm-slim
# curl for the health check; the binary itself needs only libc (SQLite is
# built in, and nothing links OpenSSL).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 qunimbus \
 && useradd --system --uid 10001 --gid qunimbus --home-dir /var/lib/qunimbus \
      --no-create-home --shell /usr/sbin/nologin qunimbus \
 && install -d -o qunimbus -g qunimbus -m 0700 /var/lib/qunimbus
COPY --from=builder /usr/local/bin/qunimbus /usr/local/bin/qunimbus
COPY qunimbus.example.toml /usr/share/doc/qunimbus/qunimbus.example.toml

# Data dir: credentials (when generated), the ledger signing key, the
# built-in TSA's keys and, without QUNIMBUS_DATABASE_URL, the SQLite
# database. Keep it on a volume: the signing key must survive restarts.
ENV QUNIMBUS_DATA_DIR=/var/lib/qunimbus \
    QUNIMBUS_LISTEN=0.0.0.0:8080 \
    QUNIMBUS_LOG_FORMAT=json
VOLUME ["/var/lib/qunimbus"]
EXPOSE 8080
USER qunimbus:qunimbus
WORKDIR /var/lib/qunimbus

# /healthz answers while the process serves; /readyz also checks the
# database and writer. (The check assumes the default port 8080.)
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1

# SIGTERM (docker stop) shuts the node down gracefully: in-flight requests
# finish and queued writes commit before it exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["qunimbus"]
CMD ["serve"]
