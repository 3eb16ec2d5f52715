#!/usr/bin/env bash
# The whole test suite: formatting, lints, build, unit/property/golden tests
# and the integration tests with real processes and a real Postgres.
# Installs what it needs (Postgres server, simh's mtdump, qemu-utils' qemu-io,
# Chromium for the web console's browser test) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mtdump >/dev/null 2>&1 || need_apt+=(simh)
command -v qemu-io >/dev/null 2>&1 || need_apt+=(qemu-utils)
[[ -n "${DMC_CHROMIUM:-}" ]] || command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if ((${#need_apt[@]})); then
    echo "test.sh: installing ${need_apt[*]}" >&2
    sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >&2
fi
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi

# The catalog's queries are checked against the committed .sqlx cache.
export SQLX_OFFLINE=true
export CARGO_TERM_COLOR=never

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings
echo "== unused dependencies"
cargo run --release --quiet -p dmc-tests --bin dmc-unused-deps
echo "== cargo build"
cargo build --release --workspace --all-targets
echo "== deployment files"
bash deploy/check-deploy.sh
echo "== cargo test"
cargo test --release --workspace --no-fail-fast -- --test-threads="${DMC_TEST_THREADS:-2}"
