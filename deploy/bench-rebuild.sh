#!/usr/bin/env bash
# Benchmark of the catalog rebuild (issue 14): one backup spanning 20 tapes,
# then `control-station catalog rebuild --library DIR` into a new empty
# database, beside `smapp tape inspect` of every image and `cp` of the
# images, for two tape sizes (the rebuild follows the number of tapes).
#   bash deploy/bench-rebuild.sh [--tapes 20] [--tape-mib 16,64]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi
export SQLX_OFFLINE=true
cargo build --release --workspace --bins >&2
exec target/release/dmc-bench-rebuild "$@"
