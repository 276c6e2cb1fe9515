"""sandbay over a throw-away Swarm (tests/support/swarm.py) as docs/scaling.md lays it
out: control-plane replicas (`sandbay serve`) on the manager, one runner (`sandbay
reconciler`) on each worker, every process on its own node's engine through the
node's local socket, one PostgreSQL database, one secrets key and one archive store
(a shared directory here, as NFS or S3 would be) for all.

    with start_swarm(3, reachable=True) as swarm, sandbay_on(swarm, base) as cluster:
        cluster.replicas[0].client().post("/v1/environments", ...)
"""

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from tests.support.postgres import create_database, drop_database
from tests.support.server import LiveServer, remove_engine_objects
from tests.support.swarm import Swarm, SwarmNode


@dataclass
class SandbayCluster:
    swarm: Swarm
    #: The control-plane replicas (on the manager's engine).
    replicas: list[LiveServer]
    #: One runner per worker node, by node index.
    runners: dict[int, LiveServer]


@contextlib.contextmanager
def sandbay_on(
    swarm: Swarm, base: Path, *, replicas: int = 2, extra_env: Mapping[str, str] | None = None
) -> Iterator[SandbayCluster]:
    """Start the processes (the Swarm must be `reachable`); stop them and remove
    what they made on exit."""
    url = create_database()
    instance, key = f"test-{uuid.uuid4().hex[:10]}", "sbk_org_" + uuid.uuid4().hex
    shared = {
        "SANDBAY_SECRETS_KEY": Fernet.generate_key().decode(),
        "SANDBAY_ARCHIVE__DIR": str(base / "archives"),
        "SANDBAY_DISK_LIMITS": "false",
        **(extra_env or {}),
    }

    def process(node: SwarmNode, role: str) -> LiveServer:
        return LiveServer(
            data_dir=base / f"{node.name}-{uuid.uuid4().hex[:6]}",
            instance=instance, key=key, database_url=url, role=role,
            extra_env={"SANDBAY_DOCKER_HOST": node.url, **shared},
        )  # fmt: skip

    started: list[LiveServer] = []
    try:
        control = [process(swarm.manager, "serve") for _ in range(replicas)]
        runners = {node.index: process(node, "reconciler") for node in swarm.workers}
        started.append(control[0].start())  # the first runs the migrations
        with ThreadPoolExecutor(4) as pool:
            started += pool.map(LiveServer.start, [*control[1:], *runners.values()])
        yield SandbayCluster(swarm, control, runners)
    finally:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(LiveServer.stop, started))
        remove_engine_objects(instance)
        for node in swarm.nodes:  # what the processes left on the nodes' engines
            if node.running:
                _remove_on(node, instance)
        drop_database(url)


def _remove_on(node: SwarmNode, instance: str) -> None:
    label = f"label=sandbay.instance={instance}"
    containers = node.docker("ps", "-aq", "--filter", label, check=False).split()
    if containers:
        node.docker("rm", "-f", *containers, check=False)
    volumes = node.docker("volume", "ls", "-q", "--filter", label, check=False).split()
    if volumes:
        node.docker("volume", "rm", "-f", *volumes, check=False)
