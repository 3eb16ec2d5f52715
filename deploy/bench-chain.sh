#!/usr/bin/env bash
# Benchmark of backup chains: full, two 1% incrementals, the synthetic full
# merged on the movers, restores of the chain and of the synthetic full,
# beside cp and raw QUIC in one run.
#   bash deploy/bench-chain.sh [--size-mib 256]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi
command -v qemu-io >/dev/null 2>&1 || { sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"; $sudo apt-get install -y -qq qemu-utils >&2; }
export SQLX_OFFLINE=true
cargo build --release --workspace --bins >&2
exec target/release/dmc-bench-chain "$@"
