#!/usr/bin/env bash
# Benchmark of copy versions (issue 15): one version of 3 volumes (default
# 256 MiB each) copied node to node, whole and then with 1% of the tracks
# changed, MB/s beside cp and raw QUIC measured in the same run, with
# CPU-seconds per GiB and peak RSS.
#   bash deploy/bench-versions.sh [--size-mib 256]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi
command -v qemu-io >/dev/null 2>&1 || { sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"; $sudo apt-get install -y -qq qemu-utils >&2; }
export SQLX_OFFLINE=true
cargo build --release --workspace --bins >&2
exec target/release/dmc-bench-versions "$@"
