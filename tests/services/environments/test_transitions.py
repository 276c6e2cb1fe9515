"""`transition`, the one door for an environment's state: it refuses what the table
does not allow, stamps the move, records its event, and closes a run into the
usage ledger, cut at month boundaries."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel, OrganizationModel, UsageModel
from sandbay.domain.errors import InvalidTransition
from sandbay.domain.quotas import period_of
from sandbay.domain.states import EnvState
from sandbay.kit.clock import utcnow
from sandbay.services.environments.transitions import transition
from sandbay.services.events.audit import environment_events
from sandbay.services.tenancy.quotas import organization_usage
from tests.support.records import Key, create_environment_record

pytestmark = pytest.mark.anyio


async def usage_rows(session: AsyncSession, env_id: str) -> list[UsageModel]:
    """The ledger as the database has it."""
    query = select(UsageModel).where(UsageModel.environment_id == env_id)
    query = query.order_by(UsageModel.started_at).execution_options(populate_existing=True)
    return list((await session.execute(query)).scalars())


async def test_transition_refuses_a_move_the_table_does_not_allow(
    session: AsyncSession, org: OrganizationModel, owner: Key
) -> None:
    env = await create_environment_record(session, org=org, state=EnvState.STOPPED)
    version = env.version
    with pytest.raises(InvalidTransition) as refused:
        transition(session, env, EnvState.RUNNING, actor="test")
    assert refused.value.status_code == 409 and refused.value.error_type == "conflict_error"
    assert refused.value.message == "environment is stopped; it cannot move to running"
    await session.flush()
    row = await session.get(EnvironmentModel, env.id, populate_existing=True)
    assert row is not None and (row.state, row.version) == (EnvState.STOPPED, version)
    page = await environment_events(session, owner.principal, env.id, after=None, limit=10)
    assert page.data == []


async def test_a_move_is_stamped_recorded_and_makes_the_environment_due(
    session: AsyncSession, org: OrganizationModel, owner: Key
) -> None:
    env = await create_environment_record(
        session, org=org, state=EnvState.STARTING, error_message="exited with code 1"
    )
    version = env.version
    transition(session, env, EnvState.RUNNING, actor="reconciler", reason="started")
    await session.flush()
    assert (env.state, env.version, env.error_message) == (EnvState.RUNNING, version + 1, None)
    assert env.started_at == env.state_changed_at == env.last_activity_at == env.next_attempt_at
    page = await environment_events(session, owner.principal, env.id, after=None, limit=10)
    [event] = page.data
    assert (event.type, event.from_state, event.to_state, event.actor, event.reason) == (
        "environment.state_changed",
        "starting",
        "running",
        "reconciler",
        "started",
    )
    assert await usage_rows(session, env.id) == []  # a run is counted when it ends


async def test_leaving_running_accrues_the_run_into_usage_rows_split_by_month(
    session: AsyncSession, org: OrganizationModel, owner: Key
) -> None:
    month_start = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    started = month_start - timedelta(hours=2)
    env = await create_environment_record(
        session, org=org, state=EnvState.RUNNING, started_at=started, cpu=0.5, memory_mb=256
    )
    transition(session, env, EnvState.STOPPING, actor="test")
    await session.flush()
    last_month, this_month = await usage_rows(session, env.id)
    assert (last_month.period, last_month.started_at, last_month.ended_at) == (
        period_of(started),
        started,
        month_start,
    )
    assert last_month.seconds == 2 * 3600
    assert (this_month.period, this_month.started_at) == (period_of(month_start), month_start)
    assert this_month.ended_at == env.state_changed_at
    assert this_month.seconds == (this_month.ended_at - month_start).total_seconds()
    assert env.running_seconds == pytest.approx(last_month.seconds + this_month.seconds)
    for row in (last_month, this_month):
        assert (row.org_id, row.cpu, row.memory_mb) == (org.id, 0.5, 256)
    # This month's hours are the closed piece; the open run ended with it.
    usage = (await organization_usage(session, owner.principal)).usage
    assert usage.running_seconds_this_month == pytest.approx(this_month.seconds)
