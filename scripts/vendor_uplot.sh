#!/usr/bin/env bash
# Refresh the vendored uPlot (the dashboard's charts) from the npm registry's released tarball.
# No Node needed: the tarball holds the built files. Usage: scripts/vendor_uplot.sh [VERSION]
# It writes rebalancerd/web/vendor/VERSION (version, URL, integrity); commit the result.
set -euo pipefail
version="${1:-1.6.32}"
# The registry's published integrity of that tarball (sha512, base64): refuse anything else.
declare -A INTEGRITY=(
    [1.6.32]="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
)
dest="$(cd "$(dirname "$0")/.." && pwd)/rebalancerd/web/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
url="https://registry.npmjs.org/uplot/-/uplot-${version}.tgz"
curl -fsSL "$url" -o "$tmp/uplot.tgz"
expected="${INTEGRITY[$version]:-$(curl -fsSL "https://registry.npmjs.org/uplot/$version" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["dist"]["integrity"])')}"
actual="sha512-$(openssl dgst -sha512 -binary "$tmp/uplot.tgz" | base64 -w0)"
if [ "$actual" != "$expected" ]; then
    echo "integrity mismatch for uplot $version: $actual != $expected" >&2
    exit 1
fi
tar -xzf "$tmp/uplot.tgz" -C "$tmp"
install -d "$dest"
install -m 0644 "$tmp/package/dist/uPlot.iife.min.js" "$dest/uPlot.iife.min.js"
install -m 0644 "$tmp/package/dist/uPlot.min.css" "$dest/uPlot.min.css"
install -m 0644 "$tmp/package/LICENSE" "$dest/uPlot.LICENSE"
printf 'uplot %s\n%s\n%s\n' "$version" "$url" "$expected" > "$dest/VERSION"
echo "vendored uplot $version into $dest"
