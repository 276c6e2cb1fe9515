"""Recording events: appended in the caller's transaction, published on the bus
only once that transaction commits, and never when it rolls back."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import OrganizationModel
from sandbay.domain.environments import Event, StopRequest
from sandbay.domain.states import EnvState
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.events.bus import EventBus, Subscription
from sandbay.services.events.record import record_event
from tests.support.records import Key, create_environment_record

pytestmark = pytest.mark.anyio


def drained(sub: Subscription) -> list[Event]:
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait())
    return out


async def test_an_event_is_published_only_after_its_transaction_commits(
    session: AsyncSession, bus: EventBus, org: OrganizationModel
) -> None:
    await session.commit()
    heard: list[Event] = []
    bus.add_listener(heard.append)
    with bus.subscribe(org_id=org.id) as sub:
        recorded = record_event(session, org_id=org.id, type="key.created", actor="admin")
        await session.flush()
        assert drained(sub) == [] and heard == []  # flushed is not committed
        await session.commit()
        [event] = drained(sub)
    assert event == Event.model_validate(recorded) and heard == [event]
    assert (event.type, event.actor, event.org_id) == ("key.created", "admin", org.id)


async def test_an_event_rolled_back_is_never_published(
    session: AsyncSession, bus: EventBus, org: OrganizationModel
) -> None:
    await session.commit()
    org_id = org.id  # the rollback below expires every loaded row
    with bus.subscribe(org_id=org_id) as sub:
        record_event(session, org_id=org_id, type="key.created", actor="admin")
        await session.flush()
        await session.rollback()
        record_event(session, org_id=org_id, type="key.revoked", actor="admin")
        await session.commit()
        assert [e.type for e in drained(sub)] == ["key.revoked"]


async def test_a_lifecycle_request_is_heard_by_its_environments_subscribers_on_commit(
    session: AsyncSession, lifecycle: Lifecycle, bus: EventBus, org: OrganizationModel, owner: Key
) -> None:
    env = await create_environment_record(session, org=org, state=EnvState.RUNNING)
    other = await create_environment_record(session, org=org, state=EnvState.RUNNING)
    await session.commit()
    with bus.subscribe(environment_id=env.id) as sub:
        await lifecycle.request_stop(session, owner.principal, env.id, StopRequest())
        await lifecycle.request_stop(session, owner.principal, other.id, StopRequest())
        assert drained(sub) == []
        await session.commit()
        [event] = drained(sub)
    assert (event.environment_id, event.from_state, event.to_state) == (
        env.id,
        "running",
        "stopping",
    )
