#!/usr/bin/env bash
# Benchmark of host I/O through the primary node: 4 KiB random write latency
# (p50, p99) through NBD with and without a backup running, beside qemu-io
# straight on the image file, in one run.
#   bash deploy/bench-hostio.sh [--writes 1500] [--size-mib 128]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi
command -v qemu-io >/dev/null 2>&1 || { sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"; $sudo apt-get install -y -qq qemu-utils >&2; }
export SQLX_OFFLINE=true
cargo build --release --workspace --bins >&2
exec target/release/dmc-bench-hostio "$@"
