"""Lifecycle requests decided and applied on a real database: what each request
records in each state (the desired state, the move it makes now, the stop
parameters it binds, its event), what it refuses, and how a request that loses
a compare-and-set to a concurrent one decides again."""

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.db.models import EnvironmentModel, OrganizationModel
from sandbay.domain.environments import Environment, StopRequest
from sandbay.domain.errors import InvalidTransition, NotFound, WaitTimeout, WrongState
from sandbay.domain.keys import Principal
from sandbay.domain.states import DesiredState, EnvState
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.environments.transitions import transition
from sandbay.services.events.audit import environment_events
from sandbay.services.events.bus import EventBus
from tests.support.db import race
from tests.support.records import Key, create_environment_record, create_key, create_org

pytestmark = pytest.mark.anyio

STOP_TIMEOUT = 7.5  # the grace period this platform's lifecycle was built with


@pytest.fixture
def lifecycle(sessions: async_sessionmaker[AsyncSession], bus: EventBus) -> Lifecycle:
    return Lifecycle(sessions, bus, stop_timeout=STOP_TIMEOUT)


@pytest.fixture
def principal(owner: Key) -> Principal:
    return owner.principal


async def reread(session: AsyncSession, env_id: str) -> EnvironmentModel:
    """The row as the database has it now."""
    row = await session.get(EnvironmentModel, env_id, populate_existing=True)
    assert row is not None
    return row


async def events(session: AsyncSession, principal: Principal, env_id: str) -> list[Any]:
    return list((await environment_events(session, principal, env_id, after=None, limit=100)).data)


def moves(recorded: list[Any]) -> list[tuple[str | None, str | None]]:
    return [(e.from_state, e.to_state) for e in recorded if e.type == "environment.state_changed"]


class TestRequestStop:
    async def test_stop_of_stopped_environment_returns_it(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.STOPPED)
        before = Environment.model_validate(env)
        again = await lifecycle.request_stop(session, principal, env.id, StopRequest())
        assert Environment.model_validate(again) == before  # same object, nothing changed
        assert await events(session, principal, env.id) == []

    async def test_stop_of_running_environment_moves_it_to_stopping_with_the_bound_defaults(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.RUNNING)
        version = env.version
        stopped = await lifecycle.request_stop(session, principal, env.id, StopRequest())
        assert (stopped.state, stopped.desired_state) == (EnvState.STOPPING, DesiredState.STOPPED)
        assert stopped.version == version + 1
        row = await reread(session, env.id)
        assert (row.stop_signal, row.stop_timeout, row.stop_force) == (
            "SIGTERM",
            STOP_TIMEOUT,
            False,
        )
        [event] = await events(session, principal, env.id)
        assert (event.type, event.from_state, event.to_state) == (
            "environment.state_changed",
            "running",
            "stopping",
        )
        assert event.actor == principal.actor and event.reason == "stop requested"
        assert event.data == StopRequest().model_dump()

    async def test_stop_with_its_own_signal_and_grace_period_keeps_them(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.RUNNING)
        body = StopRequest(signal="SIGUSR1", timeout=30)
        await lifecycle.request_stop(session, principal, env.id, body)
        row = await reread(session, env.id)
        assert (row.stop_signal, row.stop_timeout, row.stop_force) == ("SIGUSR1", 30, False)

    async def test_force_stop_upgrades_a_graceful_stop_in_progress(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(
            session, org=org, state=EnvState.STOPPING, stop_signal="SIGTERM", stop_timeout=3600
        )
        version = env.version
        again = await lifecycle.request_stop(session, principal, env.id, StopRequest(force=True))
        assert (again.state, again.desired_state) == (EnvState.STOPPING, DesiredState.STOPPED)
        assert again.version == version + 1
        row = await reread(session, env.id)
        assert (row.stop_force, row.stop_timeout) == (True, 3600)
        assert row.next_attempt_at is not None  # the reconciler looks again at once
        [event] = await events(session, principal, env.id)
        assert (event.type, event.data["force"]) == ("environment.stop_requested", True)

    async def test_second_graceful_stop_while_stopping_changes_nothing(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.STOPPING)
        before = Environment.model_validate(env)
        again = await lifecycle.request_stop(session, principal, env.id, StopRequest())
        assert Environment.model_validate(again) == before
        assert await events(session, principal, env.id) == []

    @pytest.mark.parametrize("state", [EnvState.ARCHIVING, EnvState.RESTORING])
    async def test_stop_during_an_archive_or_restore_records_the_intent_only(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
        state: EnvState,
    ) -> None:
        env = await create_environment_record(session, org=org, state=state)
        again = await lifecycle.request_stop(session, principal, env.id, StopRequest())
        assert (again.state, again.desired_state) == (state, DesiredState.STOPPED)
        [event] = await events(session, principal, env.id)
        assert event.type == "environment.stop_requested"

    async def test_stop_while_deleting_is_a_409(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.DELETING)
        with pytest.raises(InvalidTransition) as refused:
            await lifecycle.request_stop(session, principal, env.id, StopRequest())
        assert refused.value.status_code == 409 and "deleting" in refused.value.message

    async def test_strict_stop_refuses_a_state_outside_the_ones_it_accepts(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.STOPPED)
        with pytest.raises(WrongState) as refused:
            await lifecycle.request_stop(
                session, principal, env.id, StopRequest(), only_from=frozenset({EnvState.RUNNING})
            )
        assert refused.value.status_code == 409 and refused.value.state == "stopped"


class TestRequestStart:
    async def test_start_of_running_environment_returns_it_unchanged(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.RUNNING)
        before = Environment.model_validate(env)
        again = await lifecycle.request_start(session, principal, env.id)
        assert Environment.model_validate(again) == before
        assert again.version == before.version

    @pytest.mark.parametrize(
        ("state", "moved_to"),
        [
            (EnvState.STOPPED, EnvState.STARTING),
            (EnvState.ERROR, EnvState.STARTING),
            (EnvState.ARCHIVED, EnvState.RESTORING),
        ],
    )
    async def test_start_moves_a_resting_environment_on_its_way(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
        state: EnvState,
        moved_to: EnvState,
    ) -> None:
        env = await create_environment_record(session, org=org, state=state)
        started = await lifecycle.request_start(session, principal, env.id)
        assert (started.state, started.desired_state) == (moved_to, DesiredState.RUNNING)
        assert moves(await events(session, principal, env.id)) == [(state.value, moved_to.value)]

    async def test_start_while_stopping_is_recorded_for_after_the_stop(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.STOPPING)
        started = await lifecycle.request_start(session, principal, env.id)
        assert (started.state, started.desired_state) == (EnvState.STOPPING, DesiredState.RUNNING)
        [event] = await events(session, principal, env.id)
        assert event.type == "environment.start_requested"

    async def test_start_while_deleting_is_a_409(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.DELETING)
        with pytest.raises(InvalidTransition) as refused:
            await lifecycle.request_start(session, principal, env.id)
        assert refused.value.status_code == 409 and "deleting" in refused.value.message


class TestRequestRestart:
    async def test_restart_of_running_environment_stops_it_meaning_to_run(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.RUNNING)
        restarted = await lifecycle.request_restart(session, principal, env.id, StopRequest())
        assert (restarted.state, restarted.desired_state) == (
            EnvState.STOPPING,
            DesiredState.RUNNING,
        )
        assert (await reread(session, env.id)).stop_timeout == STOP_TIMEOUT

    async def test_restart_of_stopped_environment_starts_it(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.STOPPED)
        restarted = await lifecycle.request_restart(session, principal, env.id, StopRequest())
        assert (restarted.state, restarted.desired_state) == (
            EnvState.STARTING,
            DesiredState.RUNNING,
        )


class TestRequestDelete:
    @pytest.mark.parametrize(
        "state", [s for s in EnvState if s not in (EnvState.DELETING, EnvState.DELETED)]
    )
    async def test_delete_from_every_state_moves_it_to_deleting(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
        state: EnvState,
    ) -> None:
        env = await create_environment_record(session, org=org, state=state)
        gone = await lifecycle.request_delete(session, principal, env.id)
        assert (gone.state, gone.desired_state) == (EnvState.DELETING, DesiredState.DELETED)
        assert moves(await events(session, principal, env.id)) == [(state.value, "deleting")]

    async def test_delete_while_deleting_returns_it_unchanged(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.DELETING)
        before = Environment.model_validate(env)
        again = await lifecycle.request_delete(session, principal, env.id)
        assert Environment.model_validate(again) == before

    async def test_a_deleted_environment_is_not_found_by_any_request(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.DELETED)
        requests: list[Callable[[], Awaitable[object]]] = [
            lambda: lifecycle.request_delete(session, principal, env.id),
            lambda: lifecycle.request_stop(session, principal, env.id, StopRequest()),
            lambda: lifecycle.request_start(session, principal, env.id),
        ]
        for request in requests:
            with pytest.raises(NotFound) as missing:
                await request()
            assert missing.value.status_code == 404


class TestWait:
    async def test_wait_times_out_naming_the_state_it_is_in(
        self,
        session: AsyncSession,
        org: OrganizationModel,
        principal: Principal,
        lifecycle: Lifecycle,
    ) -> None:
        env = await create_environment_record(session, org=org, state=EnvState.RUNNING)
        await session.commit()
        with pytest.raises(WaitTimeout) as late:
            await lifecycle.wait_for_state(principal, env.id, EnvState.STOPPED, timeout=0.05)
        assert late.value.status_code == 408 and "running" in late.value.message

    async def test_wait_answers_when_another_request_commits_the_state(
        self, committed_sessions: async_sessionmaker[AsyncSession], bus: EventBus
    ) -> None:
        async with committed_sessions() as session:
            org = await create_org(session)
            principal = (await create_key(session, org=org)).principal
            env = await create_environment_record(session, org=org, state=EnvState.STOPPING)
            await session.commit()
        lifecycle = Lifecycle(committed_sessions, bus, stop_timeout=STOP_TIMEOUT)
        answers: list[Environment] = []

        async def wait() -> None:
            waited = await lifecycle.wait_for_state(principal, env.id, EnvState.STOPPED, 30)
            answers.append(Environment.model_validate(waited))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(wait)
            await anyio.sleep(0)
            async with committed_sessions() as session:
                row = await reread(session, env.id)
                transition(session, row, EnvState.STOPPED, actor="reconciler")
                await session.commit()
        assert [a.state for a in answers] == [EnvState.STOPPED]


class TestConcurrentRequests:
    """Two requests on one environment at once, on two connections: the one whose
    compare-and-set loses reads the row again and decides on what the winner did."""

    @pytest.fixture
    async def running(
        self, committed_sessions: async_sessionmaker[AsyncSession]
    ) -> tuple[Principal, str]:
        async with committed_sessions() as session:
            org = await create_org(session)
            key = await create_key(session, org=org)
            env = await create_environment_record(session, org=org, state=EnvState.RUNNING)
            await session.commit()
        return key.principal, env.id

    async def test_force_stop_that_loses_to_a_graceful_stop_upgrades_it(
        self,
        committed_sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        running: tuple[Principal, str],
    ) -> None:
        principal, env_id = running
        lifecycle = Lifecycle(committed_sessions, bus, stop_timeout=STOP_TIMEOUT)
        raced = await race(
            committed_sessions,
            winner=lambda s: lifecycle.request_stop(s, principal, env_id, StopRequest()),
            loser=lambda s: lifecycle.request_stop(s, principal, env_id, StopRequest(force=True)),
        )
        assert raced.loser_rollbacks == 1  # it lost once, then decided again
        assert not isinstance(raced.loser, Exception)
        assert raced.loser.state == EnvState.STOPPING
        assert raced.loser.version == raced.winner.version + 1
        async with committed_sessions() as session:
            assert (await reread(session, env_id)).stop_force is True
            recorded = await events(session, principal, env_id)
        assert moves(recorded) == [("running", "stopping")]  # one move, not two
        assert [e.type for e in recorded][-1] == "environment.stop_requested"

    async def test_stop_that_loses_to_a_delete_is_refused(
        self,
        committed_sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        running: tuple[Principal, str],
    ) -> None:
        principal, env_id = running
        lifecycle = Lifecycle(committed_sessions, bus, stop_timeout=STOP_TIMEOUT)
        raced = await race(
            committed_sessions,
            winner=lambda s: lifecycle.request_delete(s, principal, env_id),
            loser=lambda s: lifecycle.request_stop(s, principal, env_id, StopRequest()),
        )
        assert raced.loser_rollbacks == 1
        assert isinstance(raced.loser, InvalidTransition)
        assert "deleting" in raced.loser.message
        async with committed_sessions() as session:
            assert moves(await events(session, principal, env_id)) == [("running", "deleting")]
