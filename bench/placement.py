"""Issue 18's placement cost: 1,000 environments placed one at a time (each reserved
before the next, as a caller placing many at once does) over simulated Swarm nodes
(10, 100 and 1,000), the time of each placement beside a trivial first-fit over the
same nodes and demands, in the same run. No engine, no server: `sandbay.domain.placement`
is pure, and its cost grows with the nodes it scores, not with the environments placed.

`python -m bench.placement` runs this part alone and prints its rows."""

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.harness import Samples
from sandbay.domain.placement import Availability, Demand, Node, NodeState, place, reserve

GIB = 1 << 30
ENVIRONMENTS = 1000
NODE_COUNTS = (10, 100, 1000)
IMAGES = ("sandbay-base:latest", "python:3.12", "node:22", "golang:1.23", "rust:1.83")
REGIONS = ("eu", "us", "ap")
#: (CPU, GiB of memory) of the demands, drawn uniformly.
SIZES = ((0.25, 0.5), (0.5, 1), (1, 2), (1, 4), (2, 4), (4, 8))
#: Total node capacity over total demand: room for all, not much to spare.
HEADROOM = 1.5

Chooser = Callable[[Demand, Sequence[Node]], str | None]


def demands(count: int, rng: random.Random) -> list[Demand]:
    """Mixed sizes; a fifth ask for a region, one in fifty for a GPU; five images."""
    out = []
    for i in range(count):
        cpu, gib = rng.choice(SIZES)
        labels = {"region": rng.choice(REGIONS)} if rng.random() < 0.2 else {}
        if rng.random() < 0.02:
            labels["gpu"] = "true"
        out.append(Demand(cpu=cpu, memory_bytes=int(gib * GIB), image=rng.choice(IMAGES),
                          labels=labels, key=f"env-{i}"))  # fmt: skip
    return out


def cluster(count: int, wanted: Sequence[Demand], rng: random.Random) -> list[Node]:
    """`count` nodes of mixed sizes (8, 16 or 32 CPUs, 4 GiB each, at least) holding
    HEADROOM times the demands' CPU and memory;
    regions in turn, a GPU on every fifth, the base image everywhere and some others;
    one in fifty drained, one in a hundred down (none of either below 50 nodes)."""
    weights = [rng.choice((1, 2, 4)) for _ in range(count)]
    cpu = max(HEADROOM * sum(d.cpu for d in wanted) / sum(weights), 8.0)
    memory = max(HEADROOM * sum(d.memory_bytes for d in wanted) / sum(weights), 32.0 * GIB)
    nodes = []
    for i, weight in enumerate(weights):
        extra = rng.sample(IMAGES[1:], k=rng.randint(0, len(IMAGES) - 1))
        nodes.append(Node(
            id=f"node-{i}", hostname=f"worker-{i}",
            state=NodeState.DOWN if i % 100 == 99 else NodeState.READY,
            availability=Availability.DRAIN if i % 50 == 49 else Availability.ACTIVE,
            cpus=round(weight * cpu, 2), memory_bytes=int(weight * memory),
            labels={"region": REGIONS[i % 3], **({"gpu": "true"} if i % 5 == 0 else {})},
            images=frozenset({IMAGES[0], *extra}),
        ))  # fmt: skip
    return nodes


def first_fit(demand: Demand, nodes: Sequence[Node]) -> str | None:
    """The floor: the first ready, active node whose labels match and that has room."""
    for node in nodes:
        if (
            node.state is NodeState.READY
            and node.availability is Availability.ACTIVE
            and all(node.labels.get(k) == v for k, v in demand.labels.items())
            and node.free_cpus + 1e-9 >= demand.cpu
            and node.free_memory_bytes >= demand.memory_bytes
        ):
            return node.id
    return None


def spread(demand: Demand, nodes: Sequence[Node]) -> str | None:
    """sandbay's placement (images preferred, not required: the simulated nodes pull)."""
    return place(demand, nodes, image_must_be_present=False).node_id


def _run(choose: Chooser, wanted: Sequence[Demand], nodes: list[Node]) -> dict[str, Any]:
    """Each demand placed and reserved in turn, each step timed."""
    samples, unplaced = Samples(), 0
    started = time.perf_counter()
    for demand in wanted:
        t0 = time.perf_counter()
        node_id = choose(demand, nodes)
        if node_id is not None:
            nodes = reserve(nodes, node_id, demand)
        samples.add(time.perf_counter() - t0)
        unplaced += node_id is None
    total = time.perf_counter() - started
    used = [n.reserved_cpus / n.cpus for n in nodes if n.environments]
    us = [v * 1000 for v in samples.values]
    metrics = {
        "p50_us": samples.pct(50) * 1000,
        "p99_us": samples.pct(99) * 1000,
        "last_100_p50_us": Samples(us[-100:]).pct(50),
        "total_ms": total * 1000,
        "unplaced": float(unplaced),
        "busiest_cpu_share": max(used, default=0.0),
    }
    return {"samples": samples, "metrics": metrics}


def placement(environments: int = ENVIRONMENTS, node_counts: Sequence[int] = NODE_COUNTS
              ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """placement_<n>_nodes: sandbay's placement vs first-fit, per placement (µs, p50
    and p99, and p50 of the last 100 as the count nears `environments`), the total,
    what did not fit, and the busiest node's CPU share (spread shows here)."""
    pairs: dict[str, dict[str, Any]] = {}
    for count in node_counts:
        rng = random.Random(count)  # the same cluster and demands every run
        wanted = demands(environments, rng)
        nodes = cluster(count, wanted, rng)
        base = _run(first_fit, wanted, nodes)
        ours = _run(spread, wanted, nodes)
        pairs[f"placement_{count}_nodes"] = {
            "sandbay": ours["samples"], "baseline": base["samples"],
            "baseline_name": "first-fit", "metrics": ours["metrics"],
            "baseline_metrics": base["metrics"],
        }  # fmt: skip
    return pairs


def main() -> None:
    from bench.__main__ import _pair, evaluate, show

    results = {name: _pair(pair) for name, pair in placement().items()}
    show(evaluate(results, 0))


if __name__ == "__main__":
    main()
