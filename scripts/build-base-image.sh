#!/usr/bin/env bash
# Builds the default environment image from the machine's own apt sources with
# mmdebstrap and imports it into Docker: no container registry is needed.
#
#   scripts/build-base-image.sh [IMAGE]
#
# Variants (scripts/build-agent-image.sh) reuse this recipe through the environment:
# SANDBAY_IMAGE_EXTRA_PACKAGES (comma-separated), SANDBAY_IMAGE_STAGE (a tree whose
# bin/ and lib/ are copied to /usr/local), SANDBAY_IMAGE_RECIPE (the recipe label)
# and SANDBAY_IMAGE_LABEL (one more `key=value` label).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${1:-sandbay-base:latest}"
RECIPE="${SANDBAY_IMAGE_RECIPE:-$(sha256sum scripts/build-base-image.sh | cut -c1-16)}"
SUITE="${SANDBAY_IMAGE_SUITE:-bookworm}"
PACKAGES="python3,bash,coreutils,procps,ca-certificates,findutils,tar,gzip,iproute2,curl,git,python3-pylsp,python3-setuptools"
PACKAGES="$PACKAGES${SANDBAY_IMAGE_EXTRA_PACKAGES:+,$SANDBAY_IMAGE_EXTRA_PACKAGES}"

command -v mmdebstrap >/dev/null 2>&1 || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
}
# Use the machine's own sources (deb822 or one-line), so a mirror the host reaches is used.
sources=()
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
  [ -s "$f" ] && grep -qE '^(URIs:|deb )' "$f" && { sources=("$f"); break; }
done
hooks=(--customize-hook='mkdir -p "$1/workspace"')
if [ -n "${SANDBAY_IMAGE_STAGE:-}" ]; then
  hooks+=(--customize-hook="cp -a '$SANDBAY_IMAGE_STAGE/bin' '$SANDBAY_IMAGE_STAGE/lib' \"\$1/usr/local/\"")
fi
labels=(--change "LABEL sandbay.recipe=$RECIPE")
[ -n "${SANDBAY_IMAGE_LABEL:-}" ] && labels+=(--change "LABEL $SANDBAY_IMAGE_LABEL")
echo "build-base-image: building $IMAGE ($SUITE: $PACKAGES)"
mmdebstrap --quiet --mode=root --variant=minbase --include="$PACKAGES" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  "${hooks[@]}" \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
  "$SUITE" - "${sources[@]}" \
| docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'WORKDIR /workspace' \
    --change 'CMD ["sleep", "infinity"]' \
    "${labels[@]}" \
    - "$IMAGE" >/dev/null
echo "build-base-image: $IMAGE is $(docker image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=iec)"
