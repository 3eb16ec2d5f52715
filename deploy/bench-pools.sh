#!/usr/bin/env bash
# Benchmark of copy storage pools (issue 13): pool backup (tape to tape)
# MB/s of one object, and restore MB/s with no segment and with 10% of the
# segments served from the copy, beside cp and raw QUIC measured in the
# same run, with CPU-seconds per GiB and peak RSS.
#   bash deploy/bench-pools.sh [--size-mib 1024]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi
export SQLX_OFFLINE=true
cargo build --release --workspace --bins >&2
exec target/release/dmc-bench-pools "$@"
