#!/usr/bin/env bash
# One idempotent set-up for `make run`, `make test` and CI on a fresh Debian 12 machine:
# a virtualenv at .venv, a Docker engine that answers, the environment agent (envd) and
# the default base image (plus the agent image when SANDBAY_AGENTS=1).
# Each step checks first and does nothing when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
IMAGE="${SANDBAY_DEFAULT_IMAGE:-sandbay-base:latest}"
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
is_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
  # apt_install PKG... : install Debian packages that are missing (root only).
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! is_root; then
    say "need Debian packages ${missing[*]}: run as root or install them yourself"; exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# 1. Python virtualenv, reinstalled only when pyproject.toml changes.
stamp="$VENV/.sandbay-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  [ -x "$VENV/bin/python" ] || { say "creating $VENV"; python3 -m venv "$VENV"; }
  say "installing Python dependencies"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[dev]'
  rm -f "$VENV"/.sandbay-installed-*
  touch "$stamp"
fi

# 2. System tools the platform and its tests use (iptables and nsenter enforce network
#    policies; the OpenSSH client is what the SSH gateway's tests log in with; the
#    test suite (SANDBAY_BROWSER=1) opens previews in Debian's Chromium; busybox-static
#    is the whole of the test image with no shell and no python3; rsync copies a running
#    environment's snapshot again while it is frozen, changes only; archives are zstd).
apt_install ca-certificates iproute2 procps wrk iptables util-linux e2fsprogs openssh-client busybox-static rsync zstd
if [ "${SANDBAY_BROWSER:-0}" = 1 ]; then apt_install chromium; fi

# 3. A Docker engine that answers, with container root mapped to an unprivileged host
#    uid (`userns-remap`, docs/isolation.md). The remap is turned on for an engine that
#    holds no sandbay environment yet (it moves the engine to a new data root, which
#    would hide existing ones), or always with SANDBAY_USERNS_REMAP=1; never with 0.
docker_ok() { timeout 10 docker info >/dev/null 2>&1; }
daemon_conf() {
  # daemon_conf KEY JSON: set one key of /etc/docker/daemon.json; status 0 if it changed.
  python3 - "$1" "$2" <<'PY'
import json, os, sys
path = "/etc/docker/daemon.json"
conf = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
key, want = sys.argv[1], json.loads(sys.argv[2])
head = conf
*parents, leaf = key.split(".")
for part in parents:
    head = head.setdefault(part, {})
if head.get(leaf) == want:
    sys.exit(1)
head[leaf] = want
os.makedirs("/etc/docker", exist_ok=True)
with open(path + ".tmp", "w") as f:
    json.dump(conf, f, indent=2)
os.replace(path + ".tmp", path)
PY
}
start_dockerd() {
  say "starting dockerd (log: /var/log/sandbay-dockerd.log)"
  rm -f /var/run/docker.pid
  nohup setsid dockerd >/var/log/sandbay-dockerd.log 2>&1 </dev/null &
  for _ in $(seq 1 60); do docker_ok && break; sleep 1; done
  docker_ok || { say "dockerd did not come up; see /var/log/sandbay-dockerd.log"; exit 1; }
}
holds_environments() {
  [ -n "$(docker ps -aq --filter label=sandbay.instance 2>/dev/null)" ] \
    || [ -n "$(docker volume ls -q --filter label=sandbay.instance 2>/dev/null)" ]
}
remap="${SANDBAY_USERNS_REMAP:-auto}"
if ! docker_ok; then
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  if ! docker_ok; then
    is_root || { say "Docker is not answering and starting dockerd needs root: start it yourself"; exit 1; }
    [ "$remap" = 0 ] || daemon_conf userns-remap '"default"' || true
    start_dockerd
  fi
elif [ "$remap" != 0 ] && is_root && ! docker info -f '{{json .SecurityOptions}}' | grep -q userns; then
  if [ "$remap" = 1 ] || ! holds_environments; then
    say "restarting dockerd with userns-remap (container root becomes an unprivileged host uid)"
    daemon_conf userns-remap '"default"' || true
    pkill -x dockerd || true
    for _ in $(seq 1 60); do pgrep -x dockerd >/dev/null || break; sleep 1; done
    start_dockerd
  else
    say "the engine holds environments: userns-remap left off (SANDBAY_USERNS_REMAP=1 forces it; docs/isolation.md)"
  fi
fi

# 3b. gVisor (`runtime: runsc`): Debian's runsc registered with the engine. Its network
#     mode is `host`, i.e. the gVisor kernel uses the container's own network namespace
#     (the one Docker made): its netstack mode refuses to start on this kernel (it takes
#     any namespace with net.core.rmem_default for the host's) and would bypass the
#     namespace's iptables, where network policies are enforced. docs/isolation.md.
if [ "${SANDBAY_SKIP_RUNSC:-0}" != 1 ] && is_root; then
  apt_install runsc
  if daemon_conf runtimes.runsc '{"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]}'
  then
    say "registering runsc (gVisor) with the engine"
    pkill -HUP -x dockerd || true  # the engine reloads its runtimes on SIGHUP
    for _ in $(seq 1 20); do docker info -f '{{json .Runtimes}}' 2>/dev/null | grep -q runsc && break; sleep 0.5; done
  fi
fi

# 4. PostgreSQL for the test suite (the platform defaults to SQLite; point
#    SANDBAY_DATABASE_URL at PostgreSQL for several replicas). Role sandbay/sandbay.
if [ "${SANDBAY_SKIP_POSTGRES:-0}" != 1 ]; then
  apt_install postgresql
  if ! pg_lsclusters -h | grep -q .; then
    ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
    say "creating PostgreSQL cluster $ver/main"
    pg_createcluster "$ver" main >/dev/null
  fi
  read -r pg_ver pg_name _ pg_status _ < <(pg_lsclusters -h | head -1)
  if [ "$pg_status" != online ]; then
    say "starting PostgreSQL $pg_ver/$pg_name"
    pg_ctlcluster "$pg_ver" "$pg_name" start
  fi
  if ! su postgres -c "psql -tAc \"select 1 from pg_roles where rolname='sandbay'\"" | grep -q 1; then
    su postgres -c "psql -qc \"create role sandbay login createdb password 'sandbay'\""
  fi
fi

# 5. The environment agent (envd, docs/envd.md): one static binary that every
#    environment runs as its PID 1, built from envd/ with Debian's Go when it changes.
scripts/build-envd.sh

# 6. The default base image, built locally (no registry is reachable).
if ! docker image inspect "$IMAGE" >/dev/null 2>&1 \
   || [ "$(docker image inspect -f '{{index .Config.Labels "sandbay.recipe"}}' "$IMAGE" 2>/dev/null)" \
        != "$(sha256sum scripts/build-base-image.sh | cut -c1-16)" ]; then
  scripts/build-base-image.sh "$IMAGE"
fi
# 7. With agents enabled (SANDBAY_AGENTS=1, or `make agents-image`): the agent image
#    (Node 24 and the Claude Code, Codex and OpenClaw CLIs); the default image stays small.
if [ "${SANDBAY_AGENTS:-0}" = 1 ]; then
  scripts/build-agent-image.sh --if-stale
fi
# 8. The dashboard's front-end files (xterm.js; axe-core for its browser tests), from
#    the npm registry by web-vendor/package-lock.json, copied where the server serves them.
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
scripts/web-vendor.sh
say "ready: $VENV/bin/sandbay, Docker $(docker version -f '{{.Server.Version}}'), image $IMAGE"
