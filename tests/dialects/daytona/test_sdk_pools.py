"""Daytona's SDK, unchanged, manages warm pools on real Docker: a pool is filled with
started sandboxes, a plain create is served by one of them (its container existed
before the create was asked for) and the pool fills up again; resizing to 0 drains
it, deleting it removes its waiting members; what sandbay cannot map is a 400."""

import asyncio
from collections.abc import Callable, Iterator

import docker
import httpx
import pytest
from daytona import AsyncDaytona, CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig

# The SDK's warm-pool service passes the generated client's errors on as they are.
from daytona_api_client.exceptions import (
    BadRequestException,
    ConflictException,
    NotFoundException,
)

from tests.support.factories import delete
from tests.support.polling import eventually
from tests.support.server import LiveServer

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]


@pytest.fixture
def snapshot(server: LiveServer) -> str:
    """The default snapshot (what a create that names none gets)."""
    with server.client() as api:
        return str(api.get("/config").json()["defaultSnapshot"])


@pytest.fixture
def made(
    daytona: Daytona, server: LiveServer, docker_client: docker.DockerClient
) -> Iterator[list[str]]:
    """Sandboxes the test made, deleted afterwards; every pool is deleted too and
    its waiting members with it, until no container the test made is left."""
    before = set(_containers(docker_client, server))
    ids: list[str] = []
    yield ids
    for pool in daytona.warm_pool.list():
        daytona.warm_pool.delete(pool.id)
    with server.client() as api:
        for sandbox_id in ids:
            delete(api, sandbox_id)
    eventually(
        lambda: set(_containers(docker_client, server)) <= before,
        what="the test's containers gone",
        timeout=120,
    )


def _containers(docker_client: docker.DockerClient, server: LiveServer) -> dict[str, str]:
    """Environment id -> container id of every container of this server."""
    rows = docker_client.api.containers(
        all=True, filters={"label": f"sandbay.instance={server.instance}"}
    )
    return {r["Labels"]["sandbay.environment"]: r["Id"] for r in rows}


def _ready(daytona: Daytona, pool_id: str) -> int:
    return next(int(p.current_size) for p in daytona.warm_pool.list() if p.id == pool_id)


def test_a_create_is_served_from_the_warm_pool_which_refills(
    daytona: Daytona,
    snapshot: str,
    made: list[str],
    server: LiveServer,
    docker_client: docker.DockerClient,
) -> None:
    pool = daytona.warm_pool.create(snapshot, pool=2)
    assert (pool.snapshot, pool.pool, pool.target, pool.os_user) == (snapshot, 2, "local", "root")
    assert (pool.cpu, pool.mem, pool.disk, pool.env) == (1, 1, 3, {})
    assert pool.organization_id and pool.error_reason is None
    eventually(lambda: _ready(daytona, pool.id) == 2, what="the pool filled", timeout=120)
    with server.client() as api:
        native = api.get("/v1/pools").json()
    assert [(p["image"], p["size"], p["ready"]) for p in native] == [(snapshot, 2, 2)]

    waiting = _containers(docker_client, server)
    sandbox = daytona.create(
        CreateSandboxFromSnapshotParams(env_vars={"MINE": "yes"}, labels={"a": "b"})
    )
    made.append(sandbox.id)
    # One of the pool's members, container and all: no new container was made for it.
    assert sandbox.id in waiting
    assert _containers(docker_client, server)[sandbox.id] == waiting[sandbox.id]
    assert sandbox.state == "started" and sandbox.labels["a"] == "b"
    assert sandbox.process.exec("echo $MINE").result.strip() == "yes"
    assert sandbox.id in {s.id for s in daytona.list()}
    eventually(lambda: _ready(daytona, pool.id) == 2, what="the pool refilled", timeout=120)

    # A create the pool cannot serve (its own network policy) gets a container of its own.
    before = _containers(docker_client, server)
    own = daytona.create(CreateSandboxFromSnapshotParams(network_block_all=True))
    made.append(own.id)
    assert own.id not in before


def test_resizing_to_zero_drains_and_deleting_removes_members(
    daytona: Daytona,
    snapshot: str,
    made: list[str],
    server: LiveServer,
    docker_client: docker.DockerClient,
) -> None:
    existing = set(_containers(docker_client, server))
    pool = daytona.warm_pool.create(snapshot, pool=1)
    eventually(lambda: _ready(daytona, pool.id) == 1, what="the pool filled", timeout=120)
    member = next(iter(set(_containers(docker_client, server)) - existing))

    drained = daytona.warm_pool.update(pool.id, pool=0)
    assert drained.pool == 0
    eventually(lambda: member not in _containers(docker_client, server), what="drained")
    assert _ready(daytona, pool.id) == 0

    daytona.warm_pool.update(pool.id, pool=1)
    eventually(lambda: _ready(daytona, pool.id) == 1, what="the pool refilled", timeout=120)
    daytona.warm_pool.delete(pool.id)
    assert daytona.warm_pool.list() == []
    eventually(lambda: set(_containers(docker_client, server)) <= existing, what="members deleted")
    with pytest.raises(NotFoundException):
        daytona.warm_pool.update(pool.id, pool=2)
    with pytest.raises(NotFoundException):
        daytona.warm_pool.delete(pool.id)


def test_what_cannot_be_mapped_is_refused(
    daytona: Daytona, snapshot: str, made: list[str], server: LiveServer
) -> None:
    with pytest.raises(BadRequestException, match="target 'eu' is not available"):
        daytona.warm_pool.create(snapshot, pool=1, target="eu")
    with pytest.raises(BadRequestException, match="not found on the runner"):
        daytona.warm_pool.create("no-such-image:never", pool=1)
    daytona.warm_pool.create(snapshot, pool=1)
    with pytest.raises(ConflictException, match="already exists"):
        daytona.warm_pool.create(snapshot, pool=1)
    with server.client() as api:
        for body in ({"snapshot": snapshot, "pool": 0}, {"snapshot": "", "pool": 1}, {}):
            answer = api.post("/warm-pools", json=body)
            assert answer.status_code == 400 and answer.json()["statusCode"] == 400
        assert api.patch("/warm-pools/x", json={"pool": 1001}).status_code == 400
    with httpx.Client() as anon:
        assert anon.get(f"{server.url}/warm-pools").status_code == 401


def test_async_sdk_manages_warm_pools(
    async_config: Callable[[], DaytonaConfig], snapshot: str, made: list[str]
) -> None:
    async def body() -> tuple[int, int, int, int]:
        async with AsyncDaytona(async_config()) as daytona:
            pool = await daytona.warm_pool.create(snapshot, pool=1)
            listed = len(await daytona.warm_pool.list())
            grown = await daytona.warm_pool.update(pool.id, pool=2)
            await daytona.warm_pool.delete(pool.id)
            return pool.pool, listed, grown.pool, len(await daytona.warm_pool.list())

    assert asyncio.run(body()) == (1, 1, 2, 0)
