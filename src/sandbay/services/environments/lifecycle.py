"""Lifecycle requests: start, stop, restart, delete, wait. Each records the desired
state (and, where the table allows, the immediate move such as running → stopping),
then the reconciler does the engine work. Concurrent requests race through a
compare-and-set on `version`; the loser re-reads and decides again."""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sandbay.db.cas import commit_or_conflict, with_cas_retry
from sandbay.db.models import EnvironmentModel
from sandbay.db.queries.environments import environment_from_model
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.environments import Environment, EnvironmentKind, StopRequest
from sandbay.domain.errors import Conflict, NotFound, WaitTimeout, WrongState
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.states import (
    Decision,
    DesiredState,
    EnvState,
    decide_archive,
    decide_delete,
    decide_pause,
    decide_restart,
    decide_resume,
    decide_start,
    decide_stop,
)
from sandbay.services.environments.activity import record_activity
from sandbay.services.environments.records import get_environment
from sandbay.services.environments.transitions import set_desired, transition
from sandbay.services.events.bus import EventBus
from sandbay.services.events.record import record_environment_event
from sandbay.services.tenancy.quotas import admit

_POLL_SECONDS = 1.0  # `wait` re-reads at least this often (changes made by other replicas)
#: What a settled stop or delete waits beyond the grace period: the engine's own work
#: (removing a container, a volume) and the reconciler's next pass.
SETTLE_MARGIN_S = 30.0
#: Where a stop has finished (an `autoDeleteInterval: 0` sandbox goes on to deletion).
STOP_SETTLED = frozenset({EnvState.STOPPED, EnvState.ERROR, EnvState.DELETING, EnvState.DELETED})
DELETE_SETTLED = frozenset({EnvState.DELETED, EnvState.ERROR})


def _apply(
    session: AsyncSession,
    env: EnvironmentModel,
    decision: Decision,
    principal: Principal,
    *,
    request: str,
    data: dict[str, Any] | None = None,
) -> None:
    reason = f"{request} requested"
    if decision.move_to is not None:
        transition(
            session, env, decision.move_to, actor=principal.actor, reason=reason, data=data,
            desired=decision.desired,
        )  # fmt: skip
    else:
        set_desired(env, decision.desired)
        record_environment_event(
            session, env, f"environment.{request}_requested", actor=principal.actor, data=data
        )


#: What a request does to the row before it is applied (stop options, quota admission).
Prepare = Callable[[EnvironmentModel, Decision], Awaitable[None]]

#: How a refusal names each request ("it cannot be stopped now").
_PAST = {
    "start": "started",
    "stop": "stopped",
    "restart": "restarted",
    "archive": "archived",
    "pause": "paused",
    "resume": "resumed",
    "delete": "deleted",
}


def _require_state(env: EnvironmentModel, only_from: frozenset[EnvState] | None, verb: str) -> None:
    """Strict surfaces (some dialects) refuse what the native API does leniently."""
    if only_from is not None and env.state not in only_from:
        raise WrongState(f"environment is {env.state}; it cannot be {verb} now", state=env.state)


def _set_stop(env: EnvironmentModel, body: StopRequest, default_timeout: float) -> None:
    env.stop_force = body.force
    env.stop_signal = body.signal or "SIGTERM"
    env.stop_timeout = body.timeout if body.timeout is not None else default_timeout


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """The lifecycle requests with their defaults bound once (the stop grace period
    is decided here and nowhere else)."""

    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    stop_timeout: float

    def _stopping(self, body: StopRequest, *, upgrade: bool = False) -> Prepare:
        """Before a request that may stop: how it stops (signal, grace period, force);
        with `upgrade`, a forced stop turns a graceful one in progress into a kill."""

        async def prepare(env: EnvironmentModel, decision: Decision) -> None:
            if decision.move_to is EnvState.STOPPING:
                _set_stop(env, body, self.stop_timeout)
            elif upgrade and env.state is EnvState.STOPPING and body.force:
                env.stop_force = True

        return prepare

    async def _request(
        self,
        session: AsyncSession,
        principal: Principal,
        id_or_name: str,
        *,
        request: str,
        decide: Callable[[EnvironmentModel], Decision],
        before: Prepare | None = None,
        permission: Permission = Permission.ENVIRONMENTS_LIFECYCLE,
        only_from: frozenset[EnvState] | None = None,
        data: dict[str, Any] | None = None,
        noop_answers: bool = True,
    ) -> Environment:
        """Every lifecycle request: read the environment (with `permission`), refuse
        outside `only_from` (strict surfaces), decide (pure), prepare the row
        (`before`), record the desired state and the move, flush; the loser of a
        compare-and-set re-reads and decides again."""

        async def attempt() -> EnvironmentModel:
            env = await get_environment(session, principal, id_or_name, permission)
            _require_state(env, only_from, _PAST[request])
            decision = decide(env)
            if decision.noop and noop_answers:
                return env
            if before is not None:
                await before(env, decision)
            _apply(session, env, decision, principal, request=request, data=data)
            await session.flush()
            return env

        return environment_from_model(await with_cas_retry(session, attempt))

    async def request_start(
        self,
        session: AsyncSession,
        principal: Principal,
        id_or_name: str,
        *,
        only_from: frozenset[EnvState] | None = None,
    ) -> Environment:
        """Start; `only_from` makes it refuse (WrongState) outside those states. A
        start of an environment that was not meant to run is admitted by the quotas."""

        async def admit_start(env: EnvironmentModel, _decision: Decision) -> None:
            if (
                env.desired_state is not DesiredState.RUNNING
                and env.kind is EnvironmentKind.MANAGED
            ):
                await admit(session, env.org_id, cpu=env.cpu, memory_mb=env.memory_mb)

        return await self._request(
            session, principal, id_or_name, request="start", only_from=only_from,
            decide=lambda env: decide_start(env.state, env.desired_state), before=admit_start,
        )  # fmt: skip

    async def request_stop(
        self,
        session: AsyncSession,
        principal: Principal,
        id_or_name: str,
        body: StopRequest,
        *,
        only_from: frozenset[EnvState] | None = None,
    ) -> Environment:
        """Stop; `only_from` makes it refuse (WrongState) outside those states. A
        forced stop upgrades a graceful one in progress to a kill."""

        return await self._request(
            session, principal, id_or_name, request="stop", only_from=only_from,
            decide=lambda env: decide_stop(env.state, env.desired_state, force=body.force),
            before=self._stopping(body, upgrade=True), data=body.model_dump(),
        )  # fmt: skip

    async def request_restart(
        self,
        session: AsyncSession,
        principal: Principal,
        id_or_name: str,
        body: StopRequest,
    ) -> Environment:
        """Stop (as `request_stop` does, with the same options), then start again."""

        return await self._request(
            session, principal, id_or_name, request="restart", noop_answers=False,
            decide=lambda env: decide_restart(env.state), before=self._stopping(body),
            data=body.model_dump(),
        )  # fmt: skip

    async def request_archive(
        self, session: AsyncSession, principal: Principal, id_or_name: str
    ) -> Environment:
        """Archive: the workspace and root filesystem go to the archive store and the
        container and volume are freed; a later start restores them."""

        def decide(env: EnvironmentModel) -> Decision:
            if env.kind is EnvironmentKind.SELF_HOSTED:
                raise Conflict("a self-hosted environment has nothing to archive")
            return decide_archive(env.state, env.desired_state)

        return await self._request(
            session, principal, id_or_name, request="archive", decide=decide,
            before=self._stopping(StopRequest()),
        )  # fmt: skip

    async def request_pause(
        self, session: AsyncSession, principal: Principal, id_or_name: str
    ) -> Environment:
        """Pause: freeze the running workload in place (its memory is kept, it gets no
        CPU); a resume thaws it where it was."""

        def decide(env: EnvironmentModel) -> Decision:
            if env.kind is EnvironmentKind.SELF_HOSTED:
                raise Conflict(
                    "a self-hosted environment runs on its own worker: it cannot be paused"
                )
            return decide_pause(env.state, env.desired_state)

        return await self._request(session, principal, id_or_name, request="pause", decide=decide)

    async def request_resume(
        self, session: AsyncSession, principal: Principal, id_or_name: str
    ) -> Environment:
        """Resume a paused environment (a start does too, and also starts stopped ones)."""
        return await self._request(
            session, principal, id_or_name, request="resume",
            decide=lambda env: decide_resume(env.state, env.desired_state),
        )  # fmt: skip

    async def request_delete(
        self,
        session: AsyncSession,
        principal: Principal,
        id_or_name: str,
        *,
        only_from: frozenset[EnvState] | None = None,
    ) -> Environment:
        """Delete; `only_from` makes it refuse (WrongState) outside those states."""
        return await self._request(
            session, principal, id_or_name, request="delete", only_from=only_from,
            permission=Permission.ENVIRONMENTS_WRITE, decide=lambda env: decide_delete(env.state),
        )  # fmt: skip

    async def keep_alive(
        self, session: AsyncSession, principal: Principal, id_or_name: str
    ) -> Environment:
        """Push back the idle auto-stop (not `max_lifetime`): counts as activity."""
        env = await get_environment(
            session, principal, id_or_name, Permission.ENVIRONMENTS_LIFECYCLE
        )
        if env.state is not EnvState.RUNNING:
            raise Conflict(f"environment is {env.state}; only a running one can be kept alive")
        # A Core update (no version bump: activity is not a state change), then re-read.
        await record_activity(session, env.id, force=True)
        return environment_from_model(await get_environment(session, principal, env.id))

    async def wait_for_state(
        self,
        principal: Principal,
        id_or_name: str,
        state: EnvState,
        timeout: float,
    ) -> Environment:
        """Block until the environment is in `state` (Fly Machines' wait). Each check
        uses a short session, so waiting holds no database connection."""
        deadline = time.monotonic() + timeout
        async with self.sessions() as session:
            env = await get_environment(session, principal, id_or_name, include_deleted=True)
        with self.bus.subscribe(environment_id=env.id) as sub:
            while True:
                async with self.sessions() as session:
                    # By id from here on: the name may be reused once this one is deleted.
                    env = await get_environment(session, principal, env.id, include_deleted=True)
                current = env.state
                if current is state:
                    return environment_from_model(env)
                if current is EnvState.DELETED:
                    raise NotFound(f"environment {id_or_name!r} was deleted")
                if current is EnvState.ERROR:
                    raise Conflict(f"environment is in error: {env.error_message or 'unknown'}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(
                        f"environment is {current.value} after {timeout:g}s; "
                        f"it did not reach {state.value}"
                    )
                await sub.next(min(remaining, _POLL_SECONDS))

    async def settle(
        self,
        principal: Principal,
        env_id: str,
        until: frozenset[EnvState],
        timeout: float,
    ) -> Environment:
        """Wait until the environment is in one of `until` or `timeout` passes, then
        answer it as it is, whatever that is: for surfaces whose answer states an
        outcome ("stopped"), which must then be true or say what is instead."""
        deadline = time.monotonic() + timeout
        with self.bus.subscribe(environment_id=env_id) as sub:
            while True:
                async with self.sessions() as session:
                    env = await get_environment(session, principal, env_id, include_deleted=True)
                remaining = deadline - time.monotonic()
                if env.state in until or remaining <= 0:
                    return environment_from_model(env)
                await sub.next(min(remaining, _POLL_SECONDS))

    async def stop_settled(
        self,
        principal: Principal,
        id_or_name: str,
        body: StopRequest,
        *,
        only_from: frozenset[EnvState] | None = None,
        margin: float = SETTLE_MARGIN_S,
    ) -> Environment:
        """Stop (committed at once, so the reconciler starts on it), then answer once
        it is stopped, bounded by its grace period plus `margin`: a client may start
        it again right after the answer."""
        async with self.sessions() as session:
            env = await self.request_stop(session, principal, id_or_name, body, only_from=only_from)
            await commit_or_conflict(session)
        grace = body.timeout if body.timeout is not None else self.stop_timeout
        grace = 0.0 if body.force else grace
        return await self.settle(principal, env.id, STOP_SETTLED, grace + margin)

    async def delete_settled(
        self,
        principal: Principal,
        id_or_name: str,
        *,
        only_from: frozenset[EnvState] | None = None,
        timeout: float = SETTLE_MARGIN_S,
    ) -> Environment:
        """Delete (committed at once), then answer once it is gone, bounded by
        `timeout`; the answer says `deleting` if it is not gone by then."""
        async with self.sessions() as session:
            env = await self.request_delete(session, principal, id_or_name, only_from=only_from)
            await commit_or_conflict(session)
        return await self.settle(principal, env.id, DELETE_SETTLED, timeout)
