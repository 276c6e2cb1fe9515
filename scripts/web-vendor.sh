#!/usr/bin/env bash
# The dashboard's front-end files (xterm.js and its fit add-on; axe-core for the
# browser tests), installed from the npm registry by the committed lock file and
# copied where the server serves them (src/sandbay/web/static/vendor/, not in git).
# Idempotent: does nothing when the copies match the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."
out=src/sandbay/web/static/vendor
stamp="$out/.lock-$(sha256sum web-vendor/package-lock.json | cut -c1-16)"
[ -f "$stamp" ] && exit 0
npm ci --prefix web-vendor --no-audit --no-fund --silent
mods=web-vendor/node_modules
mkdir -p "$out"
rm -f "$out"/.lock-*
cp "$mods/@xterm/xterm/lib/xterm.js" "$mods/@xterm/xterm/css/xterm.css" \
   "$mods/@xterm/addon-fit/lib/addon-fit.js" "$mods/axe-core/axe.min.js" "$out/"
touch "$stamp"
