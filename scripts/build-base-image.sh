#!/usr/bin/env bash
# Builds the default environment image from the machine's own apt sources with
# mmdebstrap and imports it into Docker: no container registry is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${1:-sandbay-base:latest}"
RECIPE="$(sha256sum scripts/build-base-image.sh | cut -c1-16)"
SUITE="${SANDBAY_IMAGE_SUITE:-bookworm}"
PACKAGES="python3,bash,coreutils,procps,ca-certificates,findutils,tar,gzip,iproute2,curl"

command -v mmdebstrap >/dev/null 2>&1 || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
}
# Use the machine's own sources (deb822 or one-line), so a mirror the host reaches is used.
sources=()
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
  [ -s "$f" ] && grep -qE '^(URIs:|deb )' "$f" && { sources=("$f"); break; }
done
echo "build-base-image: building $IMAGE ($SUITE: $PACKAGES)"
mmdebstrap --quiet --mode=root --variant=minbase --include="$PACKAGES" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='mkdir -p "$1/workspace"' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
  "$SUITE" - "${sources[@]}" \
| docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'WORKDIR /workspace' \
    --change 'CMD ["sleep", "infinity"]' \
    --change "LABEL sandbay.recipe=$RECIPE" \
    - "$IMAGE" >/dev/null
echo "build-base-image: $IMAGE is $(docker image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=iec)"
