"""Shared fixtures: one live server for the session (tests that crash or
reconfigure a server start their own), and engine clean-up after every server."""

from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from tests.support.factories import delete
from tests.support.postgres import create_database, drop_database
from tests.support.server import LiveServer, new_server, remove_engine_objects
from tests.support.work import env_name, self_hosted_env


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Every server-backed test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield None
        return
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, database_url: str | None
) -> Iterator[LiveServer]:
    live = new_server(tmp_path_factory.mktemp("servers"), database_url=database_url).start()
    try:
        yield live
    finally:
        live.stop()
        remove_engine_objects(live.instance)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Start extra servers (own database, own instance label); all are cleaned up."""
    started: list[LiveServer] = []
    databases: list[str] = []

    def make(*, postgres: bool = False, **kwargs: object) -> LiveServer:
        if postgres and "database_url" not in kwargs:
            kwargs["database_url"] = create_database()
            databases.append(str(kwargs["database_url"]))
        live = new_server(tmp_path, **kwargs)
        started.append(live)
        return live

    yield make
    for live in started:
        live.stop()
        remove_engine_objects(live.instance)
    for url in databases:
        drop_database(url)


@pytest.fixture(scope="module")
def sqlite_only(request: pytest.FixtureRequest, database_url: str | None) -> None:
    """For a module that exercises the engine rather than the database
    (`pytest.mark.usefixtures("sqlite_only")`): its PostgreSQL run is skipped, before
    a server starts. Every database path it touches runs on both elsewhere."""
    if database_url is not None:
        pytest.skip(f"{request.module.__name__} exercises the engine, not the database")


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="session")
def lease_server(
    tmp_path_factory: pytest.TempPathFactory, database_url: str | None
) -> Iterator[LiveServer]:
    """A server whose work-item leases may be as short as 1 s and are swept every
    0.2 s, so heartbeat timeouts can be shown without waiting the default 10 s. On
    PostgreSQL it gets a database of its own: one database is one installation."""
    own_url = create_database() if database_url else None
    live = new_server(
        tmp_path_factory.mktemp("lease-servers"),
        database_url=own_url,
        extra_env={
            "SANDBAY_WORK_MIN_TTL_SECONDS": "1",
            "SANDBAY_WORK_DEFAULT_TTL_SECONDS": "2",
            "SANDBAY_WORK_LEASE_INTERVAL": "0.2",
        },
    ).start()
    try:
        yield live
    finally:
        live.stop()
        remove_engine_objects(live.instance)
        if own_url:
            drop_database(own_url)


@pytest.fixture
def lease_api(lease_server: LiveServer) -> Iterator[httpx.Client]:
    with lease_server.client() as client:
        yield client


@pytest.fixture
def lease_env(lease_api: httpx.Client, request: pytest.FixtureRequest) -> Iterator[str]:
    """The id of a self-hosted environment on the lease server, for this test only."""
    created = self_hosted_env(lease_api, name=env_name("lease", request))
    yield created["id"]
    delete(lease_api, created["id"])
