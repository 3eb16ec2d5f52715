#!/usr/bin/env bash
# The main job on a fresh machine: a local cluster (control station with a
# Postgres catalog, a front-end/back-end mover pair, a primary node) backs up
# a scattered logical object to a tape image and restores it onto other
# volumes through a remap and into a plain file, verified byte for byte.
#
#   bash deploy/demo.sh [--size-mib N] [--work DIR]
#
# Uses DATABASE_URL when set, else starts (and stops) a private Postgres,
# installing the server package when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi
export SQLX_OFFLINE=true
echo "== building (release)" >&2
cargo build --release --workspace --bins >&2
exec target/release/dmc-demo "$@"
