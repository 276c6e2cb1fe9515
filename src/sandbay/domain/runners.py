"""Runners: the hosts environments run on. With Docker Swarm mode each Swarm node is
a runner (membership, health, labels and drain come from the Swarm, not from
sandbay); without it the one engine sandbay talks to is the only runner. The
values here are what the runtime reads and the API shows.

A runner's id is the Swarm node id (stable for the node's life; hostnames may
repeat), or the configured `runner_id` on one host without Swarm. An environment's
`runner_id` holds the same id; a lookup also accepts a node's hostname when only
one node has it."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from sandbay.domain.errors import Conflict, NotFound


class RunnerState(StrEnum):
    """Whether the Swarm hears from the node (its heartbeat)."""

    READY = "ready"
    DOWN = "down"
    UNKNOWN = "unknown"


class Availability(StrEnum):
    """Whether the node takes work: `drain` moves none but takes no new ones;
    `pause` keeps what it has and takes nothing new."""

    ACTIVE = "active"
    PAUSE = "pause"
    DRAIN = "drain"


@dataclass(frozen=True, slots=True)
class Runner:
    id: str
    hostname: str
    state: RunnerState
    availability: Availability
    #: Operator-set Swarm node labels (`docker node update --label-add`).
    labels: Mapping[str, str] = field(default_factory=dict)
    #: The engine's own labels (`dockerd --label`).
    engine_labels: Mapping[str, str] = field(default_factory=dict)
    nano_cpus: int = 0
    memory_bytes: int = 0
    manager: bool = False
    #: False for the single engine of a host without Swarm mode.
    swarm: bool = True
    address: str | None = None


def find_runner(runners: Sequence[Runner], ref: str) -> Runner:
    """The runner whose id is `ref`, else the one whose hostname is (404 if none,
    409 if the hostname names several)."""
    for runner in runners:
        if runner.id == ref:
            return runner
    named = [runner for runner in runners if runner.hostname == ref]
    if len(named) > 1:
        raise Conflict(f"{len(named)} runners are named {ref!r}: use the runner id")
    if not named:
        raise NotFound(f"runner {ref!r} not found")
    return named[0]


class RunnerView(BaseModel):
    """A runner as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="Swarm node id, or the runner_id of a host without Swarm")
    hostname: str
    state: RunnerState
    availability: Availability
    labels: dict[str, str] = Field(description="Swarm node labels")
    engine_labels: dict[str, str] = Field(description="The engine's own labels")
    cpus: float = Field(description="CPUs the node offers")
    memory_bytes: int
    manager: bool = Field(description="Whether the node is a Swarm manager")
    swarm: bool = Field(description="False on one host without Swarm mode")
    address: str | None = Field(None, description="The node's Swarm address")
    environments: int = Field(description="Environments (not deleted) placed on this runner")

    @classmethod
    def of(cls, runner: Runner, environments: int) -> "RunnerView":
        return cls(
            id=runner.id,
            hostname=runner.hostname,
            state=runner.state,
            availability=runner.availability,
            labels=dict(runner.labels),
            engine_labels=dict(runner.engine_labels),
            cpus=runner.nano_cpus / 1e9,
            memory_bytes=runner.memory_bytes,
            manager=runner.manager,
            swarm=runner.swarm,
            address=runner.address,
            environments=environments,
        )


class RunnerList(BaseModel):
    data: list[RunnerView]
    #: Whether the engine is a Swarm manager (False: one host, one runner).
    swarm: bool
