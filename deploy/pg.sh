#!/usr/bin/env bash
# A private Postgres cluster for development, tests and `sqlx-prepare.sh`.
#
#   deploy/pg.sh install              install the server binaries if missing (apt-get)
#   deploy/pg.sh start DIR PORT       initdb DIR/data if needed, start on 127.0.0.1:PORT
#                                     (unix socket in DIR), create database `dmc`
#   deploy/pg.sh stop DIR             stop the cluster (fast shutdown)
#   deploy/pg.sh crash DIR            stop it as a crash would (immediate: no checkpoint,
#                                     connections cut); `start DIR PORT` recovers it
#   deploy/pg.sh url DIR [PORT]       print postgres://postgres@127.0.0.1:PORT/dmc
#   deploy/pg.sh bindir               print the directory holding initdb/pg_ctl
#
# Authentication is `trust` on loopback: this is a throwaway cluster, never a
# production one. initdb refuses to run as root, so as root the cluster runs as
# the `postgres` user and DIR is chowned to it (DIR's parents must be
# traversable by that user, e.g. anything under /tmp).
set -euo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }

find_bindir() {
    if [[ -n "${PG_BINDIR:-}" && -x "$PG_BINDIR/initdb" ]]; then echo "$PG_BINDIR"; return 0; fi
    if [[ -x /usr/lib/postgresql/15/bin/initdb ]]; then echo /usr/lib/postgresql/15/bin; return 0; fi
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
        if [[ -x "$d/initdb" ]]; then echo "$d"; return 0; fi
    done
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir)"
        if [[ -x "$d/initdb" ]]; then echo "$d"; return 0; fi
    fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
    return 1
}

install_pg() {
    if find_bindir >/dev/null; then return 0; fi
    command -v apt-get >/dev/null 2>&1 || die "no Postgres server binaries and no apt-get to install them"
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    echo "pg.sh: installing the Postgres server" >&2
    $sudo apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql-15 >&2 \
        || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2 \
        || die "could not install postgresql"
    find_bindir >/dev/null || die "postgresql installed but initdb not found"
}

bindir() {
    find_bindir || { install_pg && find_bindir; }
}

# Run a command as the cluster's owner: `postgres` when we are root.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

cmd_start() {
    local dir="${1:?usage: pg.sh start DIR PORT}" port="${2:?usage: pg.sh start DIR PORT}"
    local bin; bin="$(bindir)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run the server"
        chown postgres: "$dir"
        chmod 700 "$dir"
        runuser -u postgres -- test -w "$dir" \
            || die "user postgres cannot reach $dir: its parent directories must be traversable (try a dir under /tmp)"
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    if as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        echo "pg.sh: already running in $dir" >&2
    else
        # -l: the server's output goes to a file, never to our stdout (a
        # pipe reader would otherwise wait for the server to exit).
        as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
            || { tail -n 30 "$dir/postgres.log" >&2 || true; die "pg_ctl start failed"; }
    fi
    echo "$port" >"$dir/port.tmp" && mv "$dir/port.tmp" "$dir/port" 2>/dev/null || true
    local psql="$bin/psql"
    [[ -x "$psql" ]] || psql="psql"
    if [[ "$("$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'dmc'")" != 1 ]]; then
        "$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE dmc" >/dev/null
    fi
    cmd_url "$dir" "$port"
}

cmd_stop() {
    local dir="${1:?usage: pg.sh stop DIR}"
    [[ -d "$dir/data" ]] || { echo "pg.sh: no cluster in $dir" >&2; return 0; }
    local bin; bin="$(bindir)"
    if as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
}

cmd_crash() {
    local dir="${1:?usage: pg.sh crash DIR}"
    local bin; bin="$(bindir)"
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null
}

cmd_url() {
    local dir="${1:?usage: pg.sh url DIR [PORT]}" port="${2:-}"
    if [[ -z "$port" ]]; then
        [[ -f "$dir/port" ]] || die "no PORT given and $dir/port does not exist"
        port="$(cat "$dir/port")"
    fi
    echo "postgres://postgres@127.0.0.1:$port/dmc"
}

case "${1:-}" in
    install) install_pg ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    crash) shift; cmd_crash "$@" ;;
    url) shift; cmd_url "$@" ;;
    bindir) bindir ;;
    *) die "usage: pg.sh install | start DIR PORT | stop DIR | crash DIR | url DIR [PORT] | bindir" ;;
esac
