#!/usr/bin/env bash
# Print the Secrets of a `control-station pki init` directory as YAML (one
# per component, holding only that component's files; never the CA key).
#
#   bash deploy/k8s/make-secrets.sh PKI_DIR | kubectl apply -f -
set -euo pipefail
dir="${1:?usage: make-secrets.sh PKI_DIR}"
for comp in "$dir"/*/; do
    name="$(basename "$comp")"
    [[ "$name" == ca ]] && continue
    echo "---"
    echo "apiVersion: v1"
    echo "kind: Secret"
    echo "metadata:"
    echo "  name: dmc-pki-$name"
    echo "  namespace: dmc"
    echo "type: Opaque"
    echo "data:"
    for f in "$comp"*; do
        [[ -f "$f" ]] || continue
        echo "  $(basename "$f"): $(base64 -w0 "$f")"
    done
done
