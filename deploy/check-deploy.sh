#!/usr/bin/env bash
# Check the deployment files with the tools that read them, offline:
#   - systemd units: `systemd-analyze verify` (directives, ExecStart
#     binaries: the release build's) and `systemd-analyze security` (each
#     unit's exposure must stay "OK": at most 2.0 of 10);
#   - deploy/compose.yaml: `docker-compose config` (installed from Debian's
#     docker-compose when missing; no Docker engine needed);
#   - deploy/k8s/*.yaml: `kubernetes-validate --strict` against the
#     Kubernetes 1.32 schemas it ships (from PyPI, in a private venv).
# Needs target/release binaries (cargo build --release --workspace --bins).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
work="$(mktemp -d /tmp/dmc-check-deploy.XXXXXX)"
trap 'rm -rf "$work"' EXIT
sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"

apt_install() {
    $sudo apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

echo "check-deploy: systemd units" >&2
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
for f in deploy/systemd/*.service; do
    sed "s|/usr/local/bin/|$root/target/release/|" "$f" > "$work/$(basename "$f")"
done
cp "$work/dmc-data-mover@.service" "$work/dmc-data-mover@be1.service"
units=(dmc-control-station.service dmc-primary-node.service dmc-data-mover@be1.service)
(cd "$work" && systemd-analyze verify "${units[@]}")
for u in "${units[@]}"; do
    level="$(systemd-analyze security --offline=true "$work/$u" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')"
    [[ -n "$level" ]] || { echo "check-deploy: no exposure level for $u" >&2; exit 1; }
    awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || { echo "check-deploy: $u exposure $level > 2.0" >&2; exit 1; }
    echo "  $u: exposure $level" >&2
done

echo "check-deploy: compose" >&2
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
docker-compose -f deploy/compose.yaml config -q
echo "  services: $(docker-compose -f deploy/compose.yaml config --services | tr '\n' ' ')" >&2

echo "check-deploy: kubernetes manifests" >&2
venv="${DMC_TOOLS_VENV:-/tmp/dmc-tools-venv}"
if [[ ! -x "$venv/bin/kubernetes-validate" ]]; then
    rm -rf "$venv"
    # Debian's python3 makes venvs only with python3-venv.
    python3 -m venv "$venv" >&2 2>/dev/null || { rm -rf "$venv"; apt_install python3-venv; python3 -m venv "$venv" >&2; }
    "$venv/bin/pip" install -q kubernetes-validate >&2
fi
"$venv/bin/kubernetes-validate" --quiet -k 1.32.0 --strict deploy/k8s/*.yaml
bash deploy/k8s/make-secrets.sh "$(mktemp -d "$work/pki.XXXX")" > /dev/null
echo "check-deploy: ok" >&2
