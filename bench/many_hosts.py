"""Issue 18: create → running on a remote Swarm node vs on the control plane's own
engine, on a two-node Swarm built here (tests/support/swarm.py, tests/support/
cluster.py): one `sandbay serve` on the manager, one `sandbay reconciler` on the
worker, PostgreSQL, the settings' default intervals. Each figure sits beside the
raw engine of the same node (`docker run -d` of the same image there), measured in
the same run.

Rows: `swarm_create_local` (the manager's node, vs docker run there) and
`swarm_create_remote` (the worker, vs docker run there); `metrics` carry the other
side, so the remote-vs-local difference reads off one row."""

import tempfile
import uuid
from pathlib import Path
from typing import Any

import docker
from tests.support.cluster import sandbay_on
from tests.support.images import static_image
from tests.support.swarm import SwarmNode, start_swarm

from bench.harness import Api, Samples, timed
from bench.ops import DOCKER_RUN


def _raw_runs(node: SwarmNode, image: str, n: int) -> Samples:
    """`docker run -d` of `image` on `node`'s engine, `n` times (each removed after)."""
    samples = Samples()
    client = node.client()
    try:
        for _ in range(n):
            box: dict[str, Any] = {}

            def run(box: dict[str, Any] = box) -> None:
                box["c"] = client.containers.run(
                    image, ["/bin/busybox", "sleep", "600"], detach=True,
                    name=f"bench-raw-{uuid.uuid4().hex[:8]}",
                )  # fmt: skip

            samples.add(timed(run))
            box["c"].remove(force=True)
    finally:
        client.close()
    return samples


def _creates(api: Api, image: str, labels: dict[str, str], n: int) -> Samples:
    samples = Samples()
    for _ in range(n):
        env: dict[str, Any] = {}

        def create(env: dict[str, Any] = env) -> None:
            env.update(api.create(image=image, runner_labels=labels))
            api.wait(env["id"], "running")

        samples.add(timed(create))
        api.delete(env["id"])
    return samples


#: Node labels that pin a create to the manager's node (local) or the worker (remote).
SIDES = {"local": {"bench": "local"}, "remote": {"bench": "remote"}}


def many_hosts(n: int) -> dict[str, dict[str, Any]]:
    local = docker.from_env()
    try:
        image = static_image(local)
    finally:
        local.close()
    labels = {0: SIDES["local"], 1: SIDES["remote"]}
    with (
        tempfile.TemporaryDirectory(prefix="sandbay-bench-swarm-") as tmp,
        start_swarm(2, reachable=True, labels=labels) as swarm,
    ):
        Path(tmp).chmod(0o755)
        swarm.load_image(image)
        with sandbay_on(swarm, Path(tmp), replicas=1) as cluster:
            api = Api(cluster.replicas[0])
            for side in SIDES.values():  # warm both paths once
                _creates(api, image, side, 1)
            ours = {name: _creates(api, image, side, n) for name, side in SIDES.items()}
        nodes = {"local": swarm.manager, "remote": swarm.workers[0]}
        raw = {name: _raw_runs(node, image, n) for name, node in nodes.items()}
    rows: dict[str, dict[str, Any]] = {}
    for name, other in (("local", "remote"), ("remote", "local")):
        rows[f"swarm_create_{name}"] = {
            "sandbay": ours[name],
            "baseline": raw[name],
            "baseline_name": f"{DOCKER_RUN} on that node",
            "metrics": {"p50_ms": ours[name].pct(50), f"{other}_p50_ms": ours[other].pct(50)},
        }
    return rows


def main() -> None:
    from bench.__main__ import _pair, evaluate, show

    results = {name: _pair(pair) for name, pair in many_hosts(10).items()}
    show(evaluate(results, 0))


if __name__ == "__main__":
    main()
