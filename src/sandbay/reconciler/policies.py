"""Lifecycle policies, checked every few seconds: idle auto-pause and auto-stop, maximum lifetime,
auto-archive, auto-delete, TTLs (delete at a time whatever the state), the hang
detector, and activity of open sessions.
Policies act through the same services as users do (as `system:<policy>`), so
they are idempotent and safe to run in every replica at once."""

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from sandbay.db.models import EnvironmentModel
from sandbay.db.queries import environments as queries
from sandbay.db.queries.search import ttl_expired
from sandbay.domain.environments import EnvironmentKind, StopRequest, auto_stop_deadline
from sandbay.domain.errors import SandbayError
from sandbay.domain.keys import Principal
from sandbay.domain.states import TRANSIENT, DesiredState, EnvState, deadline_seconds
from sandbay.kit.clock import utcnow
from sandbay.kit.loops import PeriodicLoop
from sandbay.services.environments.activity import ActivityHolds
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.environments.transitions import transition

log = logging.getLogger(__name__)


def _pause_due(env: EnvironmentModel, now: datetime) -> bool:
    """Idle past `auto_pause_interval` while running (and running is what it should be)."""
    return (
        env.state is EnvState.RUNNING
        and env.desired_state is DesiredState.RUNNING
        and env.auto_pause_interval > 0
        and env.last_activity_at is not None
        and env.last_activity_at + timedelta(minutes=env.auto_pause_interval) <= now
    )


class PolicyLoop(PeriodicLoop):
    name = "policies"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        holds: ActivityHolds,
        interval: float,
        deadline_scale: float,
        lifecycle: Lifecycle,
    ) -> None:
        self._sessions = sessions
        self._holds = holds
        super().__init__(interval)
        self._deadline_scale = deadline_scale
        self._lifecycle = lifecycle

    async def sweep(self) -> None:
        now = utcnow()
        await self._touch_held(now)
        await self._auto_stop(now)
        await self._auto_archive_and_delete(now)
        await self._ttl(now)
        await self._hangs(now)

    async def _touch_held(self, now: datetime) -> None:
        held = self._holds.held()
        if held:
            async with self._sessions() as session:
                await queries.touch_activity_many(session, held, now)
                await session.commit()

    async def _request(
        self,
        env: EnvironmentModel,
        policy: str,
        call: Callable[[AsyncSession, Principal], Awaitable[object]],
    ) -> None:
        """Act as `system:<policy>` in the environment's org; a lost race is fine."""
        principal = Principal.for_system(env.org_id, policy)
        try:
            async with self._sessions() as session:
                await call(session, principal)
                await session.commit()
        except SandbayError as exc:
            log.info("%s of %s skipped: %s", policy, env.id, exc.message)

    async def _auto_stop(self, now: datetime) -> None:
        async with self._sessions() as session:
            rows = await queries.running_with_timers(session)
        for env in rows:
            if env.id in self._holds.held():
                continue
            deadline = auto_stop_deadline(
                last_activity_at=env.last_activity_at,
                auto_stop_interval=env.auto_stop_interval,
                started_at=env.started_at,
                max_lifetime=env.max_lifetime,
            )
            if deadline is None or deadline > now:
                if _pause_due(env, now):
                    await self._request(
                        env,
                        "auto-pause",
                        functools.partial(self._lifecycle.request_pause, id_or_name=env.id),
                    )
                continue
            lifetime = (
                env.max_lifetime > 0
                and env.started_at is not None
                and (env.started_at + timedelta(minutes=env.max_lifetime) <= now)
            )
            policy = "max-lifetime" if lifetime else "auto-stop"
            await self._request(
                env,
                policy,
                functools.partial(
                    self._lifecycle.request_stop, id_or_name=env.id, body=StopRequest()
                ),
            )

    async def _auto_archive_and_delete(self, now: datetime) -> None:
        async with self._sessions() as session:
            rows = await queries.stopped_with_timers(session)
        for env in rows:
            stopped_at = env.stopped_at or env.state_changed_at or env.updated_at
            idle = (now - stopped_at).total_seconds() / 60
            if env.auto_delete_interval >= 0 and idle >= env.auto_delete_interval:
                await self._request(
                    env,
                    "auto-delete",
                    functools.partial(self._lifecycle.request_delete, id_or_name=env.id),
                )
            elif (
                env.state is EnvState.STOPPED
                and env.kind is EnvironmentKind.MANAGED
                and env.auto_archive_interval > 0
                and idle >= env.auto_archive_interval
            ):
                await self._request(
                    env,
                    "auto-archive",
                    functools.partial(self._lifecycle.request_archive, id_or_name=env.id),
                )

    async def _ttl(self, now: datetime) -> None:
        """Past its TTL an environment is deleted, running or not."""
        async with self._sessions() as session:
            rows = await ttl_expired(session, now)
        for env in rows:
            await self._request(
                env, "ttl", functools.partial(self._lifecycle.request_delete, id_or_name=env.id)
            )

    async def _hangs(self, now: datetime) -> None:
        """No stuck states: past its deadline a transient state becomes `error` with a
        message saying what happened; stop and delete still work from there."""
        async with self._sessions() as session:
            rows = await queries.in_states(session, sorted(TRANSIENT))
        for env in rows:
            limit = deadline_seconds(
                env.state,
                stop_timeout=env.stop_timeout or self._lifecycle.stop_timeout,
                scale=self._deadline_scale,
            )
            since = env.state_changed_at or env.updated_at
            if limit is None or (now - since).total_seconds() < limit:
                continue
            await self._mark_stuck(env.id, env.version, limit)

    async def _mark_stuck(self, env_id: str, version: int, limit: float) -> None:
        async with self._sessions() as session:
            env = await session.get(EnvironmentModel, env_id, populate_existing=True)
            if env is None or env.version != version:
                return
            reason = f"stuck in {env.state} for more than {limit:g}s"
            if env.attempts:
                reason += f" after {env.attempts} failed attempts"
            transition(session, env, EnvState.ERROR, actor="system:hang-detector", reason=reason)
            try:
                await session.commit()
            except StaleDataError:
                await session.rollback()
