"""Reads of environments (one by id or by name, a page of the listing): read from the
table's columns, they answer the same `Environment` the ORM row maps to, and refuse
what the row lookup refuses (another organization's, a deleted one, a warm-pool
member, one outside a scoped key's list: not found; a key without the read
permission: forbidden)."""

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.db.models import EnvironmentModel, OrganizationModel
from sandbay.db.queries.environments import environment_from_model
from sandbay.domain.environments import Environment
from sandbay.domain.errors import SandbayError
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.states import EnvState
from sandbay.kit.clock import utcnow
from sandbay.services.environments.records import get_environment, read_environment
from sandbay.services.environments.service import EnvironmentsService
from tests.support.records import Key, create_environment_record, create_key, create_org

pytestmark = pytest.mark.anyio


async def detailed(session: AsyncSession, org: OrganizationModel) -> EnvironmentModel:
    """An environment with every kind of column filled in: JSON objects and lists,
    a shell string, enums, timestamps and a metrics sample."""
    now = utcnow()
    return await create_environment_record(
        session,
        org=org,
        name="detailed",
        labels={"team": "a", "tier": "db"},
        env={"K": "V"},
        command=["sleep", "infinity"],
        pre_stop="echo bye",
        network_allow_list=["example.com", "10.0.0.0/8"],
        auto_stop_interval=15.0,
        max_lifetime=120.0,
        container_id="c0ffee",
        exit_code=3,
        last_activity_at=now - timedelta(seconds=30),
        metrics={
            "timestamp": now.isoformat(),
            "online": True,
            "uptime_seconds": 60,
            "cpu_percent": 12.5,
            "memory_bytes": 1 << 20,
            "memory_limit_bytes": 1 << 29,
            "network_rx_bytes": 10,
            "network_tx_bytes": 20,
            "pids": 3,
        },
    )


async def test_a_read_answers_what_the_row_maps_to(
    session: AsyncSession, environments: EnvironmentsService, org: OrganizationModel, owner: Key
) -> None:
    row = await detailed(session, org)
    expected = environment_from_model(row)
    await session.commit()  # the reads open sessions of their own

    assert expected.auto_stop_at is not None and expected.metrics is not None
    assert await environments.read(owner.principal, row.id) == expected
    assert await environments.read(owner.principal, "detailed") == expected
    page = await environments.page(
        owner.principal, states=None, labels=["tier=db"], limit=10, cursor=None
    )
    assert page.data == [expected] and not page.has_more


async def outcome(
    session: AsyncSession, principal: Principal, id_or_name: str, *, include_deleted: bool = False
) -> tuple[str, Environment | int]:
    """What the column read answers, and checks it against the ORM row's answer."""
    try:
        read: tuple[str, Environment | int] = (
            "found",
            await read_environment(session, principal, id_or_name, include_deleted=include_deleted),
        )
    except SandbayError as exc:
        read = (exc.error_type, exc.status_code)
    try:
        row = await get_environment(session, principal, id_or_name, include_deleted=include_deleted)
        orm: tuple[str, Environment | int] = ("found", environment_from_model(row))
    except SandbayError as exc:
        orm = (exc.error_type, exc.status_code)
    assert read == orm
    return read


async def test_a_read_refuses_what_the_row_lookup_refuses(
    sessions: async_sessionmaker[AsyncSession],
    session: AsyncSession,
    org: OrganizationModel,
    owner: Key,
) -> None:
    mine = await create_environment_record(session, org=org, name="mine")
    gone = await create_environment_record(session, org=org, state=EnvState.DELETED, name="gone")
    pooled = await create_environment_record(session, org=org, pool_key="pool-key")
    theirs = await create_environment_record(session, org=await create_org(session))
    scoped = await create_key(
        session, org=org, permissions=[Permission.ENVIRONMENTS_READ], environment_ids=[mine.id]
    )
    no_read = await create_key(session, org=org, permissions=[Permission.ENVIRONMENTS_WRITE])
    await session.commit()

    not_found = ("not_found_error", 404)
    async with sessions() as reading:
        assert (await outcome(reading, owner.principal, mine.id))[0] == "found"
        assert (await outcome(reading, owner.principal, "mine"))[0] == "found"
        for missing in (theirs.id, gone.id, "gone", pooled.id, "no-such-name", "env_00"):
            assert await outcome(reading, owner.principal, missing) == not_found
        # The audit log reads deleted environments by id (not by name).
        assert (await outcome(reading, owner.principal, gone.id, include_deleted=True))[
            0
        ] == "found"
        assert await outcome(reading, owner.principal, "gone", include_deleted=True) == not_found
        assert (await outcome(reading, scoped.principal, mine.id))[0] == "found"
        assert await outcome(reading, scoped.principal, gone.id, include_deleted=True) == not_found
        assert await outcome(reading, no_read.principal, mine.id) == ("permission_error", 403)
