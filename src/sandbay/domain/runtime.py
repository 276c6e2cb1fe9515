"""Shapes the runtime providers take and return: domain values, never ORM rows."""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator


class Runtime(StrEnum):
    """The container runtime: `runc` (namespaces and cgroups on the host kernel) or
    `runsc` (gVisor: a user-space kernel between the workload and the host's)."""

    RUNC = "runc"
    RUNSC = "runsc"


#: Under gVisor the engine's pids limit counts the sandbox's own host threads (on its
#: ptrace platform about 60 at rest and some 10 for each process inside), and reaching
#: it ends the whole sandbox rather than failing a fork: below this the agent and a
#: few commands already reach it.
RUNSC_MIN_PIDS_LIMIT = 512


def recorded_runtime(value: str | None) -> Runtime:
    """An environment's recorded runtime: rows from before runtimes were recorded
    ran under runc."""
    return Runtime(value or Runtime.RUNC)


RecordedRuntime = Annotated[Runtime, BeforeValidator(recorded_runtime)]


@dataclass(frozen=True, slots=True)
class HostResources:
    """What one runner can give; create requests are checked against it."""

    runner_id: str
    cpus: float
    memory_bytes: int
    gpus: int = 0
    #: Container runtimes the engine has registered (`runsc` once set-up installed it).
    runtimes: frozenset[str] = frozenset({Runtime.RUNC})


@dataclass(frozen=True, slots=True)
class NetworkRules:
    """What an environment's workload may reach: nothing (`block_all`), only the
    CIDRs in `allow`, or anything (neither set). With `proxied`, every other TCP
    connection and DNS query goes through the platform's egress proxy and resolver,
    which decide by name (`sandbay.domain.egress`)."""

    block_all: bool = False
    allow: tuple[str, ...] = ()
    proxied: bool = False

    @property
    def unrestricted(self) -> bool:
        return not self.block_all and not self.allow and not self.proxied


@dataclass(frozen=True, slots=True)
class SharedMount:
    """A shared volume of the organization mounted into the container: all of it,
    or its directory `subpath`."""

    volume_id: str
    path: str
    subpath: str | None = None


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """Everything a provider needs to create an environment's container."""

    environment_id: str
    org_id: str
    instance: str
    image: str
    argv: list[str]
    #: argv replaces the image's entrypoint and command (empty: no workload at all,
    #: the environment agent alone keeps the environment alive).
    keep_alive: bool = False
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    hostname: str | None = None
    cpu: float = 1.0
    memory_mb: int = 1024
    #: Root layer and /workspace together, where the provider can enforce it.
    disk_gb: int = 3
    pids_limit: int = 4096
    #: Enforced after every start (and on updates while it runs); see runtime.access.
    network: NetworkRules = NetworkRules()
    mounts: tuple[SharedMount, ...] = ()
    runtime: Runtime = Runtime.RUNC


class ContainerStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    EXITED = "exited"
    DEAD = "dead"
    REMOVING = "removing"


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """What the engine says about one environment's container."""

    container_id: str
    environment_id: str
    org_id: str
    status: ContainerStatus
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    created: float | None = None  # unix seconds
    #: `host:port` where its agent answers from other hosts (a runner in a Swarm
    #: publishes it on the node's address); None where only this host reaches it.
    agent_endpoint: str | None = None

    @property
    def running(self) -> bool:
        """Its workload's processes exist (a frozen container's too)."""
        return self.status in (
            ContainerStatus.RUNNING, ContainerStatus.RESTARTING, ContainerStatus.PAUSED
        )  # fmt: skip

    @property
    def paused(self) -> bool:
        return self.status is ContainerStatus.PAUSED


@dataclass(frozen=True, slots=True)
class HookResult:
    """Outcome of a short command run inside a workload (e.g. a pre-stop hook)."""

    exit_code: int | None
    output: str
    timed_out: bool


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    environment_id: str
    name: str
    created: float | None = None  # unix seconds
