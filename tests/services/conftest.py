"""In-process service tests: the services called directly, on SQLite and on
PostgreSQL built by the real migrations (once per test session each), with the
real EventBus and KeyCache in the sessions' `info` as the platform puts them.

Every test runs on both databases (`[sqlite]`, `[postgresql]`). `session` and the
`sessions` it comes from share one connection whose transaction is rolled back
after the test, so a service's commit is real to the code (after-commit
callbacks run, the bus publishes) and still leaves nothing behind. Commit the
test's own session before calling a service that opens sessions of its own
(wait, poll, resolve_principal): their savepoints nest on the same connection.
A test that needs two connections (a real race) takes `committed_sessions`
instead, never beside `session` (on SQLite the rolled-back transaction would
hold the write lock). Test modules here are marked `pytestmark = pytest.mark.anyio`."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.db.models import OrganizationModel
from sandbay.runtime.docker.provider import DockerProvider
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.environments.service import EnvironmentsService
from sandbay.services.events.bus import EventBus
from sandbay.services.tenancy.auth import KeyCache
from sandbay.settings import default_agent_dir
from tests.support.db import KINDS, Database, migrated_database
from tests.support.records import Key, create_key, create_org
from tests.support.services import environments_service


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """One asyncio loop for the whole run: the engines' pools outlive a test."""
    return "asyncio"


@pytest.fixture(scope="session", params=KINDS)
async def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Database]:
    directory: Path = tmp_path_factory.mktemp(f"services-{request.param}")
    async with migrated_database(request.param, directory) as db:
        yield db


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def key_cache() -> KeyCache:
    return KeyCache(60.0)


@pytest.fixture
async def sessions(
    database: Database, bus: EventBus, key_cache: KeyCache
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with database.rolled_back({"bus": bus, "key_cache": key_cache}) as made:
        yield made


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as opened:
        yield opened


@pytest.fixture
async def org(session: AsyncSession) -> OrganizationModel:
    return await create_org(session)


@pytest.fixture
async def owner(session: AsyncSession, org: OrganizationModel) -> Key:
    """An organization key of `org` (every permission)."""
    return await create_key(session, org=org, name="owner")


@pytest.fixture
async def committed_sessions(
    database: Database, bus: EventBus, key_cache: KeyCache
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions that commit for real, each on a connection of its own; every row is
    deleted after the test."""
    try:
        yield database.sessionmaker({"bus": bus, "key_cache": key_cache})
    finally:
        await database.wipe()


@pytest.fixture(scope="session")
async def provider() -> AsyncIterator[DockerProvider]:
    """The real Docker provider, for the checks a create makes (host size, image)."""
    docker = DockerProvider(
        runner_id="services-tests", agent_dir=default_agent_dir(), base_url=None, threads=2
    )
    try:
        yield docker
    finally:
        await docker.close()


@pytest.fixture
def lifecycle(sessions: async_sessionmaker[AsyncSession], bus: EventBus) -> Lifecycle:
    """Lifecycle requests on `sessions`, with a 10 s default grace period."""
    return Lifecycle(sessions, bus, stop_timeout=10)


@pytest.fixture
def environments(lifecycle: Lifecycle, provider: DockerProvider) -> EnvironmentsService:
    return environments_service(lifecycle, provider)
