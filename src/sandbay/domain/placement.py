"""Choosing the runner (a Swarm node) an environment runs on: filter, score, spread.

Pure: the caller reads the nodes (state, availability, labels, resources, images) and
what it already placed on them, and acts on the decision. A decision that finds no
node says why, per reason, so a 409 (or a 503 for a pinned node that is unreachable)
can tell the user what to change.
"""

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum

#: Added to a node's score when it already holds the demanded image: no pull and no
#: cold start, worth a quarter of the node's free share (a node with the image wins
#: unless the other is markedly emptier).
IMAGE_BONUS = 0.25
#: Floating-point slack in CPU sums (0.1 + 0.2 reserved must still fit into 0.3).
_EPSILON = 1e-9


class NodeState(StrEnum):
    """Whether the engine hears from the node (Swarm's node status)."""

    READY = "ready"
    DOWN = "down"
    UNKNOWN = "unknown"


class Availability(StrEnum):
    """What the operator allows on the node (Swarm's availability): `pause` takes no
    new tasks but keeps its own; `drain` takes none and moves its tasks away."""

    ACTIVE = "active"
    PAUSE = "pause"
    DRAIN = "drain"


@dataclass(frozen=True, slots=True)
class Node:
    """A runner as the engine reports it, with what sandbay has already placed there
    (environments that are running or meant to run; stopped ones reserve nothing)."""

    id: str
    hostname: str
    state: NodeState
    availability: Availability
    cpus: float
    memory_bytes: int
    labels: Mapping[str, str] = field(default_factory=dict)
    images: frozenset[str] = frozenset()
    reserved_cpus: float = 0.0
    reserved_memory_bytes: int = 0
    environments: int = 0

    @property
    def free_cpus(self) -> float:
        return self.cpus - self.reserved_cpus

    @property
    def free_memory_bytes(self) -> int:
        return self.memory_bytes - self.reserved_memory_bytes


@dataclass(frozen=True, slots=True)
class Demand:
    """What one environment needs of a node. `key` names it (its id): ties between
    equal nodes break on a hash of it, so two replicas placing different environments
    from the same view of the cluster spread them, while one environment always gets
    the same answer. `pinned` is the node an existing environment returns to (its
    `/workspace` volume lives there)."""

    cpu: float
    memory_bytes: int
    image: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    pinned: str | None = None
    key: str = ""

    def __post_init__(self) -> None:
        if self.cpu < 0 or self.memory_bytes < 0:
            raise ValueError("a demand's CPU and memory cannot be negative")


class Reason(IntEnum):
    """Why a node was passed over, in the order the filters run (and messages list)."""

    MISSING = 0  # a pinned node the engine no longer lists
    DOWN = 1
    UNKNOWN = 2
    DRAINED = 3
    PAUSED = 4
    LABEL = 5
    CPU = 6
    MEMORY = 7
    IMAGE = 8


#: The reasons that mean "the node may come back": a pinned demand meeting one is a
#: 503 (retry later); every other reason needs someone to act (a 409).
UNREACHABLE = frozenset({Reason.DOWN, Reason.UNKNOWN})


@dataclass(frozen=True, slots=True)
class Rejection:
    node_id: str
    reason: Reason
    detail: str  # "drained", "lacks label gpu=true", "lacks 2 CPU"


@dataclass(frozen=True, slots=True)
class Placement:
    """The decision: the chosen node, or none and every node's reason."""

    node_id: str | None
    considered: int
    rejections: tuple[Rejection, ...] = ()
    pinned: str | None = None

    @property
    def placed(self) -> bool:
        return self.node_id is not None

    @property
    def unreachable(self) -> bool:
        """A pinned node that is down or silent: the environment waits for it (503)."""
        return self.node_id is None and any(r.reason in UNREACHABLE for r in self.rejections)

    def reasons(self) -> dict[str, int]:
        """Rejections counted per detail, in filter order."""
        ordered = sorted(self.rejections, key=lambda r: (r.reason, r.detail))
        return dict(Counter(r.detail for r in ordered))

    @property
    def message(self) -> str:
        """ "3 nodes: 1 drained, 1 lacks label gpu=true, 1 lacks 2 CPU"."""
        if self.node_id is not None:
            return f"placed on node {self.node_id}"
        if self.pinned is not None:
            details = "; ".join(r.detail for r in self.rejections)
            return f"its node {self.pinned}: {details}"
        if self.considered == 0:
            return "no nodes"
        counts = ", ".join(f"{n} {_plural(detail, n)}" for detail, n in self.reasons().items())
        noun = "node" if self.considered == 1 else "nodes"
        return f"{self.considered} {noun}: {counts}"


def place(demand: Demand, nodes: Sequence[Node], *, image_must_be_present: bool) -> Placement:
    """The node for `demand`: among the ready, active nodes whose labels match and whose
    free CPU and memory (after reservations) hold it, the one with the largest free
    share left after it (the mean of its CPU and memory shares: spread, as Kubernetes'
    LeastAllocated), plus `IMAGE_BONUS` if it holds the image; ties go to the node with
    fewest environments, then to a stable hash of (demand key, node id).

    `image_must_be_present` is the caller's: a Swarm worker that can pull from a
    registry may take a node without the image (only preferring those with it), but
    one that cannot pull (no registry reachable, as here) must not be chosen.

    A pinned demand is judged against its node only, by the same rules."""
    if demand.pinned is not None:
        return _place_pinned(demand, nodes, image_must_be_present)
    # Only reasons in the loop (it runs once per node per placement); their words are
    # written only when nothing fits and a message is due.
    rejected: list[tuple[Node, Reason]] = []
    best: list[Node] = []
    best_key: tuple[float, int] | None = None
    for node in nodes:
        reason = _reason(node, demand, image_must_be_present)
        if reason is not None:
            rejected.append((node, reason))
            continue
        key = (-_score(node, demand), node.environments)
        if best_key is None or key < best_key:
            best, best_key = [node], key
        elif key == best_key:
            best.append(node)
    if not best:
        rejections = tuple(_rejection(node, demand, reason) for node, reason in rejected)
        return Placement(None, len(nodes), rejections)
    chosen = best[0] if len(best) == 1 else min(best, key=lambda n: _tie(demand.key, n.id))
    return Placement(chosen.id, len(nodes))


def reserve(nodes: Iterable[Node], node_id: str, demand: Demand) -> list[Node]:
    """`nodes` with `demand` reserved on `node_id` (its image now present: it is there
    or pulled by the time the environment runs), so that a caller placing several
    environments at once accounts each. Refuses to reserve past a node's capacity."""
    updated: list[Node] = []
    found = False
    for node in nodes:
        if node.id == node_id:
            if not _fits(node, demand):
                raise ValueError(f"node {node_id} cannot hold {_size(demand)}")
            images = node.images | {demand.image} if demand.image else node.images
            node = replace(
                node,
                reserved_cpus=node.reserved_cpus + demand.cpu,
                reserved_memory_bytes=node.reserved_memory_bytes + demand.memory_bytes,
                environments=node.environments + 1,
                images=images,
            )
            found = True
        updated.append(node)
    if not found:
        raise ValueError(f"no node {node_id}")
    return updated


def _place_pinned(demand: Demand, nodes: Sequence[Node], image_required: bool) -> Placement:
    pinned = demand.pinned
    assert pinned is not None
    node = next((n for n in nodes if n.id == pinned), None)
    if node is None:
        missing = Rejection(pinned, Reason.MISSING, _WORDS[Reason.MISSING])
        return Placement(None, 0, (missing,), pinned=pinned)
    reason = _reason(node, demand, image_required)
    if reason is not None:
        return Placement(None, 1, (_rejection(node, demand, reason),), pinned=pinned)
    return Placement(node.id, 1, pinned=pinned)


def _reason(node: Node, demand: Demand, image_required: bool) -> Reason | None:
    """The first filter `node` fails for `demand`, or None if it may take it."""
    if node.state is not NodeState.READY:
        return Reason.DOWN if node.state is NodeState.DOWN else Reason.UNKNOWN
    if node.availability is not Availability.ACTIVE:
        return Reason.DRAINED if node.availability is Availability.DRAIN else Reason.PAUSED
    if demand.labels and _missing_label(node, demand) is not None:
        return Reason.LABEL
    if not _fits(node, demand):
        return (
            Reason.CPU if node.cpus - node.reserved_cpus + _EPSILON < demand.cpu else Reason.MEMORY
        )
    if image_required and demand.image and demand.image not in node.images:
        return Reason.IMAGE
    return None


def _rejection(node: Node, demand: Demand, reason: Reason) -> Rejection:
    """`reason` in words, for the message a refused placement carries."""
    match reason:
        case Reason.LABEL:
            name, value = _missing_label(node, demand) or ("", "")
            detail = f"lacks label {name}={value}"
        case Reason.CPU:
            detail = f"lacks {demand.cpu:g} free CPU"
        case Reason.MEMORY:
            detail = f"lacks {_bytes(demand.memory_bytes)} free"
        case Reason.IMAGE:
            detail = f"lacks image {demand.image}"
        case _:
            detail = _WORDS[reason]
    return Rejection(node.id, reason, detail)


_WORDS = {
    Reason.MISSING: "is no longer in the cluster",
    Reason.DOWN: "down",
    Reason.UNKNOWN: "unreachable",
    Reason.DRAINED: "drained",
    Reason.PAUSED: "paused",
}


def _missing_label(node: Node, demand: Demand) -> tuple[str, str] | None:
    for name, value in demand.labels.items():
        if node.labels.get(name) != value:
            return name, value
    return None


def _fits(node: Node, demand: Demand) -> bool:
    return (
        node.cpus - node.reserved_cpus + _EPSILON >= demand.cpu
        and node.memory_bytes - node.reserved_memory_bytes >= demand.memory_bytes
    )


def _score(node: Node, demand: Demand) -> float:
    """The node's free share once `demand` is on it (0..1), plus the image bonus;
    rounded so that float noise does not break a tie between equal nodes."""
    cpus, memory = node.cpus, node.memory_bytes  # (no properties: once per node per call)
    cpu_left = (cpus - node.reserved_cpus - demand.cpu) / cpus if cpus > 0 else 0.0
    used = node.reserved_memory_bytes + demand.memory_bytes
    memory_left = (memory - used) / memory if memory > 0 else 0.0
    bonus = IMAGE_BONUS if demand.image and demand.image in node.images else 0.0
    return round((cpu_left + memory_left) / 2 + bonus, 9)


def _tie(key: str, node_id: str) -> bytes:
    """A stable (per-process-independent, unlike `hash`) order of equal nodes."""
    return hashlib.blake2b(f"{key}\0{node_id}".encode(), digest_size=8).digest()


def _plural(detail: str, count: int) -> str:
    """ "lacks 2 free CPU" said of several nodes: "lack 2 free CPU"."""
    return (
        "lack" + detail.removeprefix("lacks")
        if count > 1 and detail.startswith("lacks ")
        else detail
    )


def _size(demand: Demand) -> str:
    return f"{demand.cpu:g} CPU and {_bytes(demand.memory_bytes)}"


def _bytes(n: int) -> str:
    """1073741824 → "1 GiB", 536870912 → "512 MiB"."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} B"
