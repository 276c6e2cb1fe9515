"""Lifecycle requests decided and applied on a real database: what each request
records in each state (the desired state, the move it makes now, the stop
parameters it binds, its event), what it refuses, and how a request that loses
a compare-and-set to a concurrent one decides again."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


async def reread(session: AsyncSession, env_id: str) -> EnvironmentModel:
    """The row as the database has it now."""
    row = await session.get(EnvironmentModel, env_id, populate_existing=True)
    assert row is not None
    return row


async def events(session: AsyncSession, principal: Principal, env_id: str) -> list[Any]:
    return list((await environment_events(session, principal, env_id, after=None, limit=100)).data)


def moves(recorded: list[Any]) -> list[tuple[str | None, str | None]]:
    return [(e.from_state, e.to_state) for e in recorded if e.type == "environment.state_changed"]


@dataclass
class Caller:
    """The organization's owner making lifecycle requests on the test's session."""

    session: AsyncSession
    org: OrganizationModel
    principal: Principal
    lifecycle: Lifecycle

    async def environment(self, state: EnvState, **fields: Any) -> EnvironmentModel:
        """An environment of the organization found in `state`."""
        return await create_environment_record(self.session, org=self.org, state=state, **fields)

    async def stop(self, env_id: str, body: StopRequest | None = None, **kw: Any) -> Environment:
        """A stop request (graceful, with the bound defaults, unless `body` says otherwise)."""
        body = body or StopRequest()
        return await self.lifecycle.request_stop(self.session, self.principal, env_id, body, **kw)

    async def start(self, env_id: str) -> Environment:
        return await self.lifecycle.request_start(self.session, self.principal, env_id)

    async def restart(self, env_id: str) -> Environment:
        return await self.lifecycle.request_restart(
            self.session, self.principal, env_id, StopRequest()
        )

    async def delete(self, env_id: str) -> Environment:
        return await self.lifecycle.request_delete(self.session, self.principal, env_id)

    async def request(self, verb: str, env_id: str) -> Environment:
        """`stop`, `start`, `restart` or `delete`, by name."""
        requests = {
            "stop": self.stop,
            "start": self.start,
            "restart": self.restart,
            "delete": self.delete,
        }
        return await requests[verb](env_id)

    async def reread(self, env_id: str) -> EnvironmentModel:
        return await reread(self.session, env_id)

    async def events(self, env_id: str) -> list[Any]:
        return await events(self.session, self.principal, env_id)


@pytest.fixture
def lifecycle(sessions: async_sessionmaker[AsyncSession], bus: EventBus) -> Lifecycle:
    return Lifecycle(sessions, bus, stop_timeout=STOP_TIMEOUT)


@pytest.fixture
def caller(
    session: AsyncSession, org: OrganizationModel, owner: Key, lifecycle: Lifecycle
) -> Caller:
    return Caller(session, org, owner.principal, lifecycle)


class TestRequestsOfEveryKind:
    @pytest.mark.parametrize(
        ("verb", "state"),
        [
            pytest.param("stop", EnvState.STOPPED, id="stop-of-stopped"),
            pytest.param("stop", EnvState.STOPPING, id="second-graceful-stop-while-stopping"),
            pytest.param("start", EnvState.RUNNING, id="start-of-running"),
            pytest.param("delete", EnvState.DELETING, id="delete-while-deleting"),
        ],
    )
    async def test_a_request_with_nothing_to_do_returns_the_environment_unchanged(
        self, caller: Caller, verb: str, state: EnvState
    ) -> None:
        env = await caller.environment(state)
        before = Environment.model_validate(env)
        again = await caller.request(verb, env.id)
        assert Environment.model_validate(again) == before  # same object, nothing changed
        assert again.version == before.version
        assert await caller.events(env.id) == []

    @pytest.mark.parametrize("verb", ["stop", "start"])
    async def test_a_request_while_deleting_is_a_409(self, caller: Caller, verb: str) -> None:
        env = await caller.environment(EnvState.DELETING)
        with pytest.raises(InvalidTransition) as refused:
            await caller.request(verb, env.id)
        assert refused.value.status_code == 409 and "deleting" in refused.value.message

    async def test_a_deleted_environment_is_not_found_by_any_request(self, caller: Caller) -> None:
        env = await caller.environment(EnvState.DELETED)
        for verb in ("delete", "stop", "start"):
            with pytest.raises(NotFound) as missing:
                await caller.request(verb, env.id)
            assert missing.value.status_code == 404


class TestRequestStop:
    async def test_stop_of_running_environment_moves_it_to_stopping_with_the_bound_defaults(
        self, caller: Caller
    ) -> None:
        env = await caller.environment(EnvState.RUNNING)
        version = env.version
        stopped = await caller.stop(env.id)
        assert (stopped.state, stopped.desired_state) == (EnvState.STOPPING, DesiredState.STOPPED)
        assert stopped.version == version + 1
        row = await caller.reread(env.id)
        assert (row.stop_signal, row.stop_timeout, row.stop_force) == (
            "SIGTERM",
            STOP_TIMEOUT,
            False,
        )
        [event] = await caller.events(env.id)
        assert (event.type, event.from_state, event.to_state) == (
            "environment.state_changed",
            "running",
            "stopping",
        )
        assert event.actor == caller.principal.actor and event.reason == "stop requested"
        assert event.data == StopRequest().model_dump()

    async def test_stop_with_its_own_signal_and_grace_period_keeps_them(
        self, caller: Caller
    ) -> None:
        env = await caller.environment(EnvState.RUNNING)
        await caller.stop(env.id, StopRequest(signal="SIGUSR1", timeout=30))
        row = await caller.reread(env.id)
        assert (row.stop_signal, row.stop_timeout, row.stop_force) == ("SIGUSR1", 30, False)

    async def test_force_stop_upgrades_a_graceful_stop_in_progress(self, caller: Caller) -> None:
        env = await caller.environment(EnvState.STOPPING, stop_signal="SIGTERM", stop_timeout=3600)
        version = env.version
        again = await caller.stop(env.id, StopRequest(force=True))
        assert (again.state, again.desired_state) == (EnvState.STOPPING, DesiredState.STOPPED)
        assert again.version == version + 1
        row = await caller.reread(env.id)
        assert (row.stop_force, row.stop_timeout) == (True, 3600)
        assert row.next_attempt_at is not None  # the reconciler looks again at once
        [event] = await caller.events(env.id)
        assert (event.type, event.data["force"]) == ("environment.stop_requested", True)

    @pytest.mark.parametrize("state", [EnvState.ARCHIVING, EnvState.RESTORING])
    async def test_stop_during_an_archive_or_restore_records_the_intent_only(
        self, caller: Caller, state: EnvState
    ) -> None:
        env = await caller.environment(state)
        again = await caller.stop(env.id)
        assert (again.state, again.desired_state) == (state, DesiredState.STOPPED)
        [event] = await caller.events(env.id)
        assert event.type == "environment.stop_requested"

    async def test_strict_stop_refuses_a_state_outside_the_ones_it_accepts(
        self, caller: Caller
    ) -> None:
        env = await caller.environment(EnvState.STOPPED)
        with pytest.raises(WrongState) as refused:
            await caller.stop(env.id, only_from=frozenset({EnvState.RUNNING}))
        assert refused.value.status_code == 409 and refused.value.state == "stopped"


class TestRequestStart:
    @pytest.mark.parametrize(
        ("state", "moved_to"),
        [
            (EnvState.STOPPED, EnvState.STARTING),
            (EnvState.ERROR, EnvState.STARTING),
            (EnvState.ARCHIVED, EnvState.RESTORING),
        ],
    )
    async def test_start_moves_a_resting_environment_on_its_way(
        self, caller: Caller, state: EnvState, moved_to: EnvState
    ) -> None:
        env = await caller.environment(state)
        started = await caller.start(env.id)
        assert (started.state, started.desired_state) == (moved_to, DesiredState.RUNNING)
        assert moves(await caller.events(env.id)) == [(state.value, moved_to.value)]

    async def test_start_while_stopping_is_recorded_for_after_the_stop(
        self, caller: Caller
    ) -> None:
        env = await caller.environment(EnvState.STOPPING)
        started = await caller.start(env.id)
        assert (started.state, started.desired_state) == (EnvState.STOPPING, DesiredState.RUNNING)
        [event] = await caller.events(env.id)
        assert event.type == "environment.start_requested"


class TestRequestRestart:
    async def test_restart_of_running_environment_stops_it_meaning_to_run(
        self, caller: Caller
    ) -> None:
        env = await caller.environment(EnvState.RUNNING)
        restarted = await caller.restart(env.id)
        assert (restarted.state, restarted.desired_state) == (
            EnvState.STOPPING,
            DesiredState.RUNNING,
        )
        assert (await caller.reread(env.id)).stop_timeout == STOP_TIMEOUT

    async def test_restart_of_stopped_environment_starts_it(self, caller: Caller) -> None:
        env = await caller.environment(EnvState.STOPPED)
        restarted = await caller.restart(env.id)
        assert (restarted.state, restarted.desired_state) == (
            EnvState.STARTING,
            DesiredState.RUNNING,
        )


class TestRequestDelete:
    @pytest.mark.parametrize(
        "state", [s for s in EnvState if s not in (EnvState.DELETING, EnvState.DELETED)]
    )
    async def test_delete_from_every_state_moves_it_to_deleting(
        self, caller: Caller, state: EnvState
    ) -> None:
        env = await caller.environment(state)
        gone = await caller.delete(env.id)
        assert (gone.state, gone.desired_state) == (EnvState.DELETING, DesiredState.DELETED)
        assert moves(await caller.events(env.id)) == [(state.value, "deleting")]


@dataclass
class Committed:
    """An environment committed for real, for the tests on two connections: the
    sessions that commit, a lifecycle on them, and an organization key's caller."""

    sessions: async_sessionmaker[AsyncSession]
    lifecycle: Lifecycle
    principal: Principal
    env_id: str

    async def recorded(self) -> list[Any]:
        async with self.sessions() as session:
            return await events(session, self.principal, self.env_id)


@pytest.fixture
def commit_environment(
    committed_sessions: async_sessionmaker[AsyncSession], bus: EventBus
) -> Callable[[EnvState], Awaitable[Committed]]:
    async def commit(state: EnvState) -> Committed:
        async with committed_sessions() as session:
            org = await create_org(session)
            principal = (await create_key(session, org=org)).principal
            env = await create_environment_record(session, org=org, state=state)
            await session.commit()
        lifecycle = Lifecycle(committed_sessions, bus, stop_timeout=STOP_TIMEOUT)
        return Committed(committed_sessions, lifecycle, principal, env.id)

    return commit


class TestWait:
    async def test_wait_times_out_naming_the_state_it_is_in(self, caller: Caller) -> None:
        env = await caller.environment(EnvState.RUNNING)
        await caller.session.commit()
        with pytest.raises(WaitTimeout) as late:
            await caller.lifecycle.wait_for_state(
                caller.principal, env.id, EnvState.STOPPED, timeout=0.05
            )
        assert late.value.status_code == 408 and "running" in late.value.message

    async def test_wait_answers_when_another_request_commits_the_state(
        self, commit_environment: Callable[[EnvState], Awaitable[Committed]]
    ) -> None:
        stopping = await commit_environment(EnvState.STOPPING)
        answers: list[Environment] = []

        async def wait() -> None:
            waited = await stopping.lifecycle.wait_for_state(
                stopping.principal, stopping.env_id, EnvState.STOPPED, 30
            )
            answers.append(Environment.model_validate(waited))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(wait)
            await anyio.sleep(0)
            async with stopping.sessions() as session:
                row = await reread(session, stopping.env_id)
                transition(session, row, EnvState.STOPPED, actor="reconciler")
                await session.commit()
        assert [a.state for a in answers] == [EnvState.STOPPED]


class TestConcurrentRequests:
    """Two requests on one environment at once, on two connections: the one whose
    compare-and-set loses reads the row again and decides on what the winner did."""

    @pytest.fixture
    async def running(
        self, commit_environment: Callable[[EnvState], Awaitable[Committed]]
    ) -> Committed:
        return await commit_environment(EnvState.RUNNING)

    async def test_force_stop_that_loses_to_a_graceful_stop_upgrades_it(
        self, running: Committed
    ) -> None:
        stop, principal, env_id = running.lifecycle.request_stop, running.principal, running.env_id
        raced = await race(
            running.sessions,
            winner=lambda s: stop(s, principal, env_id, StopRequest()),
            loser=lambda s: stop(s, principal, env_id, StopRequest(force=True)),
        )
        assert raced.loser_rollbacks == 1  # it lost once, then decided again
        assert not isinstance(raced.loser, Exception)
        assert raced.loser.state == EnvState.STOPPING
        assert raced.loser.version == raced.winner.version + 1
        async with running.sessions() as session:
            assert (await reread(session, env_id)).stop_force is True
        recorded = await running.recorded()
        assert moves(recorded) == [("running", "stopping")]  # one move, not two
        assert [e.type for e in recorded][-1] == "environment.stop_requested"

    async def test_stop_that_loses_to_a_delete_is_refused(self, running: Committed) -> None:
        lifecycle, principal, env_id = running.lifecycle, running.principal, running.env_id
        raced = await race(
            running.sessions,
            winner=lambda s: lifecycle.request_delete(s, principal, env_id),
            loser=lambda s: lifecycle.request_stop(s, principal, env_id, StopRequest()),
        )
        assert raced.loser_rollbacks == 1
        assert isinstance(raced.loser, InvalidTransition)
        assert "deleting" in raced.loser.message
        assert moves(await running.recorded()) == [("running", "deleting")]
