#!/usr/bin/env bash
# A soak: continuous backups and restores on a local cluster while random
# processes (primary node, front-end, back-end, control station, Postgres)
# are killed at random instants and started again. Reports jobs run, kills,
# failures by reason and data lost (must be 0: every backup that reported
# success is restored and compared at the end). Not part of the test suite.
#
#   deploy/soak.sh [MINUTES]        default 5; DMC_SOAK_SEED=N replays a run
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-5}"
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi
export SQLX_OFFLINE=true
cargo build --release --workspace --bins >&2
exec target/release/dmc-soak "$minutes"
