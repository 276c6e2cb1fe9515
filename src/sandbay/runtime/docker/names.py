"""What the platform calls things on a Docker engine: labels, container and volume
names, and where the environment agent lives inside every container."""

from typing import Any

LABEL_ENV = "sandbay.environment"
LABEL_ORG = "sandbay.org"
LABEL_INSTANCE = "sandbay.instance"
WORKSPACE = "/workspace"
#: The agent's directory inside every environment (the only extra mount), its binary,
#: and the variable that hands it the environment's token.
AGENT_DIR = "/.sandbay"
AGENT_BIN = f"{AGENT_DIR}/envd"
TOKEN_VAR = "SANDBAY_ENVD_TOKEN"  # noqa: S105 (a variable's name, not a secret)
#: Asks the agent to start the workload only once the platform releases it.
HOLD_VAR = "SANDBAY_ENVD_HOLD"
#: Exit code reported when the container is gone and its code cannot be known.
UNKNOWN_EXIT = -1
MIB = 1024 * 1024
#: What a development sandbox needs (package managers switch users, chown files);
#: everything else of Docker's default set (NET_RAW, MKNOD, SETFCAP, SYS_CHROOT, …) is
#: dropped. The README's "Isolation" section lists it; tests/security checks it.
CAPABILITIES = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "NET_BIND_SERVICE",
]


def container_name(environment_id: str) -> str:
    return f"sandbay-{environment_id}"


def volume_name(environment_id: str) -> str:
    return f"sandbay-ws-{environment_id}"


def remapped(info: dict[str, Any]) -> bool:
    """Whether the engine (its `docker info`) maps container root to an unprivileged
    host uid (`userns-remap`)."""
    return any("name=userns" in option for option in info.get("SecurityOptions") or ())


def userns_mode(runtime: str | None, engine_remapped: bool) -> str | None:
    """The container's user-namespace mode: the engine's remap, except for runsc,
    which (20221219) cannot start inside one; its workload's root is gVisor's."""
    return "host" if engine_remapped and runtime == "runsc" else None
