#!/usr/bin/env bash
# Builds the environment agent (docs/envd.md) into build/envd/envd: one static Go
# binary, standard library only, no network. The platform bind-mounts build/envd at
# /.sandbay in every environment. Rebuilds only when the sources' hash differs from
# build/envd/.stamp; installs Debian's golang-go when `go` is missing.
#
#   scripts/build-envd.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/envd
HASH="$(sha256sum envd/*.go envd/go.mod envd/shim/*.c | sha256sum | cut -c1-64)"
VERSION="${HASH:0:12}"

if [ -x "$OUT/envd" ] && [ "$(cat "$OUT/.stamp" 2>/dev/null || true)" = "$HASH" ]; then
  echo "envd $VERSION: up to date ($OUT/envd)"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "envd: go is missing; install golang-go (as root: apt-get install golang-go)" >&2
    exit 1
  fi
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go; } >/dev/null
fi
# Without HOME, go has nowhere for its build cache: keep it outside the mounted $OUT.
if [ -z "${GOCACHE:-}" ] && [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ]; then
  export GOCACHE="$PWD/build/.gocache"
fi
mkdir -p "$OUT"
(
  cd envd
  CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off go build -trimpath -tags osusergo,netgo \
    -ldflags "-s -w -X main.version=$VERSION" -o "../$OUT/envd.new" .
)
# The statx shim envd preloads where the kernel refuses AT_NO_AUTOMOUNT (gVisor's,
# envd/shim/nomount.c): x86_64, no libc linked; Debian's gcc is installed if missing.
if [ "$(uname -m)" = x86_64 ]; then
  if ! command -v gcc >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc; } >/dev/null
  fi
  gcc -O2 -fPIC -shared -nostdlib -fno-stack-protector -o "$OUT/nomount.so.new" envd/shim/nomount.c
  mv -f "$OUT/nomount.so.new" "$OUT/nomount.so"
fi
# A rename, so running environments keep the binary they started with.
mv -f "$OUT/envd.new" "$OUT/envd"
echo "$HASH" >"$OUT/.stamp"
echo "envd $VERSION: built $OUT/envd ($(du -k "$OUT/envd" | cut -f1) KiB)"
