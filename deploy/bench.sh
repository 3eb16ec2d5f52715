#!/usr/bin/env bash
# Benchmark: backup/restore MB/s of a 1 GiB object beside cp and raw QUIC
# measured in the same run, and each process's peak memory.
#   bash deploy/bench.sh [--size-mib N]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi
export SQLX_OFFLINE=true
cargo build --release --workspace --bins >&2
exec target/release/dmc-bench "$@"
