"""Quota admission on a real database: what counts as running, the arithmetic of
each limit, the hours of this month, who may set quotas, and that a refused
create or start leaves nothing behind."""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import OrganizationModel
from sandbay.domain.environments import EnvironmentCreate, EnvironmentKind
from sandbay.domain.errors import PermissionDenied, QuotaExceeded
from sandbay.domain.keys import Principal
from sandbay.domain.quotas import Quotas
from sandbay.domain.states import DesiredState, EnvState
from sandbay.kit.clock import utcnow
from sandbay.services.environments.records import environment_page
from sandbay.services.environments.service import EnvironmentsService
from sandbay.services.tenancy.auth import check_secret
from sandbay.services.tenancy.quotas import admit, organization_usage, set_quotas
from tests.support.records import Key, create_environment_record

pytestmark = pytest.mark.anyio

OPERATOR_KEY = "operator-secret"


@pytest.fixture
def operator() -> Principal:
    """The operator (admin) key's principal."""
    principal = check_secret(OPERATOR_KEY, admin_key=OPERATOR_KEY)
    assert principal is not None and principal.is_admin
    return principal


def refused_for_quota(error: QuotaExceeded) -> str:
    """The refusal as the API renders it: 400 invalid_request_error, quota_exceeded."""
    assert (error.status_code, error.error_type) == (400, "invalid_request_error")
    assert "quota_exceeded" in error.message
    return error.message


async def test_cpu_memory_and_hours_quotas(
    session: AsyncSession,
    environments: EnvironmentsService,
    operator: Principal,
    org: OrganizationModel,
    owner: Key,
) -> None:
    await set_quotas(
        session, operator, org.id, Quotas(max_running_memory_mb=256, max_running_cpu=1)
    )
    for body in (
        EnvironmentCreate(name="q-mem", memory_mb=512),
        EnvironmentCreate(name="q-cpu", cpu=1.5, memory_mb=64),
    ):
        with pytest.raises(QuotaExceeded) as refused:
            await environments.create(session, owner.principal, body)
        refused_for_quota(refused.value)
    await set_quotas(session, operator, org.id, Quotas(max_running_hours_per_month=0))
    with pytest.raises(QuotaExceeded) as refused:
        await environments.create(session, owner.principal, EnvironmentCreate(name="q-hours"))
    assert "hours" in refused_for_quota(refused.value)
    page = await environment_page(
        session, owner.principal, states=None, labels=None, limit=100, cursor=None
    )
    assert page.data == []


async def test_only_the_operator_sets_quotas(
    session: AsyncSession, org: OrganizationModel, owner: Key
) -> None:
    with pytest.raises(PermissionDenied) as refused:
        await set_quotas(session, owner.principal, org.id, Quotas(max_running_environments=1))
    assert (refused.value.status_code, refused.value.error_type) == (403, "permission_error")


async def test_only_environments_meant_to_run_and_holding_compute_count(
    session: AsyncSession, org: OrganizationModel
) -> None:
    org.max_running_environments = 1
    found: list[tuple[EnvState, dict[str, Any]]] = [
        (EnvState.STOPPED, {}),
        (EnvState.STOPPING, {}),
        (EnvState.ARCHIVED, {}),
        (EnvState.ERROR, {}),  # meant to run, but it holds nothing
        (EnvState.DELETING, {}),
        (EnvState.RUNNING, {"kind": EnvironmentKind.SELF_HOSTED, "runner_id": None}),
        (EnvState.RUNNING, {"pool_key": "pool-unclaimed"}),  # a warm-pool member
    ]
    for state, fields in found:
        await create_environment_record(session, org=org, state=state, **fields)
    await admit(session, org.id, cpu=1, memory_mb=512)

    await create_environment_record(
        session, org=org, state=EnvState.STARTING, desired=DesiredState.RUNNING
    )
    with pytest.raises(QuotaExceeded) as refused:
        await admit(session, org.id, cpu=1, memory_mb=512)
    assert refused_for_quota(refused.value).endswith("1 of 1 running environments already in use")


async def test_cpu_and_memory_limits_add_the_new_environment_to_what_runs(
    session: AsyncSession, org: OrganizationModel
) -> None:
    org.max_running_cpu, org.max_running_memory_mb = 1.0, 512
    await create_environment_record(session, org=org, cpu=0.5, memory_mb=256)
    await admit(session, org.id, cpu=0.5, memory_mb=256)  # exactly at both limits
    with pytest.raises(QuotaExceeded) as cpu:
        await admit(session, org.id, cpu=0.6, memory_mb=16)
    assert refused_for_quota(cpu.value).endswith("0.5 + 0.6 CPUs exceeds the limit of 1")
    with pytest.raises(QuotaExceeded) as memory:
        await admit(session, org.id, cpu=0.1, memory_mb=257)
    assert refused_for_quota(memory.value).endswith("256 + 257 MB exceeds the limit of 512 MB")


async def test_hours_this_month_count_an_open_run_from_the_first_of_the_month(
    session: AsyncSession, org: OrganizationModel, owner: Key
) -> None:
    now = utcnow()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    await create_environment_record(session, org=org, started_at=month_start - timedelta(days=1))
    hours = (now - month_start).total_seconds() / 3600
    usage = (await organization_usage(session, owner.principal)).usage
    assert hours <= usage.running_seconds_this_month / 3600 < hours + 1

    org.max_running_hours_per_month = hours + 1
    await admit(session, org.id, cpu=1, memory_mb=512)
    org.max_running_hours_per_month = hours
    with pytest.raises(QuotaExceeded) as refused:
        await admit(session, org.id, cpu=1, memory_mb=512)
    assert "running hours used this month" in refused_for_quota(refused.value)


async def test_an_organization_without_quotas_admits_without_taking_its_lock(
    session: AsyncSession, org: OrganizationModel
) -> None:
    await admit(session, org.id, cpu=1, memory_mb=512)
    await session.refresh(org)
    assert org.quota_version == 0
    org.max_running_environments = 10
    await admit(session, org.id, cpu=1, memory_mb=512)
    await session.refresh(org)
    assert org.quota_version == 1  # the admission took the row lock


async def test_start_past_the_quota_is_refused_and_leaves_the_environment_stopped(
    session: AsyncSession,
    environments: EnvironmentsService,
    org: OrganizationModel,
    owner: Key,
) -> None:
    org.max_running_environments = 1
    stopped = await create_environment_record(session, org=org, state=EnvState.STOPPED)
    await create_environment_record(session, org=org, state=EnvState.RUNNING)
    with pytest.raises(QuotaExceeded) as refused:
        await environments.lifecycle.request_start(session, owner.principal, stopped.id)
    refused_for_quota(refused.value)
    await session.refresh(stopped)
    assert (stopped.state, stopped.desired_state) == (EnvState.STOPPED, DesiredState.STOPPED)
    usage = await organization_usage(session, owner.principal)
    assert usage.quotas.max_running_environments == 1
    assert usage.usage.running_environments == 1
