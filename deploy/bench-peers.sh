#!/usr/bin/env bash
# Benchmark beside the peer we must outrun: the same bytes (default 4 GiB)
# backed up and restored by this cluster and by Bacula 9.6 from Debian's
# packages, in one run, on this machine; MB/s, CPU-seconds per GiB of every
# process, peak RSS and the ratios, side by side.
#   bash deploy/bench-peers.sh [--size-mib N]
# Installs what is missing: Debian's bacula packages (director with the
# Postgres catalog, storage and file daemons, console; no service is
# started) and the Postgres server.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"
if ! [[ -x /usr/sbin/bacula-dir && -x /usr/sbin/bacula-sd && -x /usr/sbin/bacula-fd && -x /usr/sbin/bconsole ]]; then
    echo "bench-peers.sh: installing Bacula from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2 || true
    $sudo apt-get install -y -qq debconf-utils >&2
    # No database set-up by dbconfig (the benchmark makes its own catalog).
    $sudo debconf-set-selections <<'SEL'
bacula-director-pgsql bacula-director-pgsql/dbconfig-install boolean false
bacula-director-pgsql bacula-director-pgsql/dbconfig-upgrade boolean false
bacula-director-pgsql bacula-director-pgsql/dbconfig-reinstall boolean false
bacula-director bacula-director/dbconfig-install boolean false
SEL
    # Keep the packages from starting their services while installing.
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    $sudo apt-get install -y -qq -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        bacula-director bacula-director-pgsql bacula-sd bacula-fd bacula-console bacula-common-pgsql >&2
    if [[ "$made_policy" == 1 ]]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
fi
if [[ -z "${DATABASE_URL:-}" ]]; then
    bash deploy/pg.sh install
fi
export SQLX_OFFLINE=true
cargo build --release --workspace --bins >&2
exec target/release/dmc-bench --bacula "$@"
