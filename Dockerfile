# The cluster's four programs in one image (control-station, data-mover,
# primary-node, smapp); deploy/compose.yaml runs a whole cluster from it.
#
#   docker build -t dmc .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The catalog's queries are checked against the committed .sqlx cache: no
# database needed to build.
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked -p control-station -p data-mover -p primary-node -p smapp-client \
 && install -D -t /out target/release/control-station target/release/data-mover \
        target/release/primary-node target/release/smapp

FROM debian:bookworm-slim
# pg_dump/pg_restore for catalog backups; CA certificates for an https webhook.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/dmc --create-home --uid 990 dmc
COPY --from=build /out/ /usr/local/bin/
USER dmc
WORKDIR /var/lib/dmc
ENTRYPOINT ["/usr/local/bin/control-station"]
