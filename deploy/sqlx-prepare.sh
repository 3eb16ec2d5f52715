#!/usr/bin/env bash
# Regenerate control-station's sqlx offline query cache (control-station/.sqlx)
# from scratch, so the crate builds with no database (SQLX_OFFLINE=true).
#
# Run after changing any query!/query_as!/query_scalar! or any migration:
#   deploy/sqlx-prepare.sh            (then commit control-station/.sqlx)
#
# It starts a private Postgres (deploy/pg.sh), applies the migrations with
# psql, rebuilds control-station with DATABASE_URL set and SQLX_OFFLINE_DIR
# pointing at the cache (sqlx's macros write one query-*.json per query
# there), stops Postgres, then checks that an offline build works.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
crate="$root/control-station"
cache="$crate/.sqlx"
pg="$root/deploy/pg.sh"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=""
for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 20000))
    if port_free "$p"; then port="$p"; break; fi
done
[[ -n "$port" ]] || { echo "sqlx-prepare: no free port" >&2; exit 1; }

dir="$(mktemp -d /tmp/dmc-sqlx-prepare.XXXXXX)"
cleanup() {
    "$pg" stop "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

url="$("$pg" start "$dir" "$port")"
bindir="$("$pg" bindir)"
psql="$bindir/psql"
[[ -x "$psql" ]] || psql="psql"

for m in $(ls "$crate/migrations"/*.sql | sort); do
    "$psql" "$url" -q -v ON_ERROR_STOP=1 -1 -f "$m" >/dev/null
done

mkdir -p "$cache"
rm -f "$cache"/query-*.json
# Cargo does not track DATABASE_URL: make it re-expand the macros.
find "$crate/src" -name '*.rs' -exec touch {} +

cd "$root"
DATABASE_URL="$url" SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$cache" \
    cargo build --release -p control-station --all-targets

n="$(ls "$cache"/query-*.json 2>/dev/null | wc -l)"
echo "sqlx-prepare: $n queries cached in ${cache#"$root"/}" >&2

"$pg" stop "$dir" >/dev/null
find "$crate/src" -name '*.rs' -exec touch {} +
env -u DATABASE_URL SQLX_OFFLINE=true cargo build --release -p control-station --all-targets
echo "sqlx-prepare: offline build OK" >&2
