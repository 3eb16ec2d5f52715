#!/usr/bin/env bash
# Benchmark: backup/restore MB/s of a scattered object (default 1 GiB)
# beside cp and one raw QUIC stream measured in the same run, with the
# CPU-seconds per GiB of every process and each process's peak memory.
#   bash deploy/bench.sh [--size-mib N]
# deploy/bench-peers.sh runs the same with Bacula beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi
export SQLX_OFFLINE=true
cargo build --release --workspace --bins >&2
exec target/release/dmc-bench "$@"
