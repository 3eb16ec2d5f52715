#!/usr/bin/env bash
# Benchmark of several drives (issue 3): (a) drive utilisation with 8
# sources at a quarter of a drive's speed into one drive, LIFO and FIFO;
# (b) restore MB/s of one ABS over 4 tapes with 1, 2 and 4 drives, beside
# cp and raw QUIC measured in the same run.
#   bash deploy/bench-drives.sh [--drive-mbs 40] [--source-mib 40] [--restore-mib 256] [--restore-drive-mbs 20]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi
export SQLX_OFFLINE=true
cargo build --release --workspace --bins >&2
exec target/release/dmc-bench-drives "$@"
