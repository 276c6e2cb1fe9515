"""The desired-state reconciler: claims due environments under a lease, acts on the
engine outside any transaction, and applies each outcome only if the row has not
changed since it was read (compare-and-set on `version`). Level-triggered: after a
crash, rows with `next_attempt_at` set are simply picked up again once their lease
expires."""

import asyncio
import contextlib
import functools
import logging
import os
import random
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from sandbay.db import environments as queries
from sandbay.db.models import EnvironmentModel
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.errors import ImageNotFound, RuntimeFailure
from sandbay.domain.states import Action, DesiredState, EnvState, plan
from sandbay.reconciler.actions import Outcome, Work, perform
from sandbay.runtime.provider import RuntimeProvider
from sandbay.services.bus import EventBus
from sandbay.services.environments import container_spec
from sandbay.services.events import record_environment_event, transition, utcnow

log = logging.getLogger(__name__)

ACTOR = "reconciler"
Change = Callable[[AsyncSession, EnvironmentModel], object]
_MAX_STEPS = 12
#: Create/start failures past this many attempts put the environment in `error`.
_MAX_ATTEMPTS = 5


class Reconciler:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        provider: RuntimeProvider,
        bus: EventBus,
        instance: str,
        interval: float,
        concurrency: int,
        lease_seconds: float,
        default_stop_timeout: float,
    ) -> None:
        self._sessions = sessions
        self._provider = provider
        self._instance = instance
        self._interval = interval
        self._concurrency = concurrency
        self._lease = lease_seconds
        self._default_stop_timeout = default_stop_timeout
        self._owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        bus.add_listener(lambda _event: self.wake())

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reconciler")

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._inflight.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Give the leases back so a restarted server resumes at once.
        async with self._sessions() as session:
            await queries.release_owner(session, self._owner)
            await session.commit()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sweep()
            except Exception:
                log.exception("reconciler sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)

    async def sweep(self) -> None:
        """Claim what is due (up to the free slots) and work on each concurrently."""
        slots = self._concurrency - len(self._inflight)
        if slots <= 0:
            return
        now = utcnow()
        claimed: list[tuple[str, str]] = []
        async with self._sessions() as session:
            for env_id in await queries.due_ids(
                session, now, limit=slots, exclude=list(self._inflight)
            ):
                token = uuid.uuid4().hex
                if await queries.claim(
                    session, env_id, token=token, owner=self._owner, now=now, ttl=self._lease
                ):
                    claimed.append((env_id, token))
            await session.commit()
        for env_id, token in claimed:
            task = asyncio.create_task(self._work(env_id, token), name=f"reconcile {env_id}")
            self._inflight[env_id] = task
            task.add_done_callback(functools.partial(self._done, env_id))

    def _done(self, env_id: str, _task: object) -> None:
        self._inflight.pop(env_id, None)
        self._wake.set()  # a slot is free, and the row may be due again

    # ---- one environment ---------------------------------------------------------------

    async def _work(self, env_id: str, token: str) -> None:
        renewer = asyncio.create_task(self._renew(env_id, token))
        try:
            for _ in range(_MAX_STEPS):
                if not await self._step(env_id, token):
                    return
        except Exception:
            log.exception("reconciling %s failed", env_id)
        finally:
            renewer.cancel()
            with contextlib.suppress(Exception):
                async with self._sessions() as session:
                    await queries.release(session, env_id, token=token)
                    await session.commit()

    async def _load(self, env_id: str, token: str) -> EnvironmentModel | None:
        async with self._sessions() as session:
            env = await session.get(EnvironmentModel, env_id, populate_existing=True)
        if env is None or env.lease_token != token:
            return None  # deleted, or our lease was lost to another replica
        return env

    async def _step(self, env_id: str, token: str) -> bool:
        """One step toward the desired state; False when there is nothing more to do."""
        env = await self._load(env_id, token)
        if env is None:
            return False
        step = plan(EnvState(env.state), DesiredState(env.desired_state))
        if step is None:
            async with self._sessions() as session:
                done = await queries.finish(session, env_id, token=token, version=env.version)
                await session.commit()
            return not done  # changed meanwhile: look again
        if step.move_to is not None:
            target = step.move_to
            await self._apply(
                env, lambda s, e: transition(s, e, target, actor=ACTOR, reason="desired state")
            )
            return True
        action = step.action
        assert action is not None
        try:
            outcome = await perform(
                action, self._provider, self._work_for(env), forced=lambda: self._forced(env_id)
            )
        except RuntimeFailure as exc:
            await self._failed(env, action, exc)
            return False
        await self._apply(env, lambda s, e: self._record(s, e, action, outcome))
        return True

    def _work_for(self, env: EnvironmentModel) -> Work:
        return Work(
            environment_id=env.id,
            kind=EnvironmentKind(env.kind),
            version=env.version,
            state=EnvState(env.state),
            desired=DesiredState(env.desired_state),
            spec=container_spec(env, instance=self._instance),
            stop_signal=env.stop_signal or "SIGTERM",
            stop_timeout=(
                env.stop_timeout if env.stop_timeout is not None else self._default_stop_timeout
            ),
            stop_force=env.stop_force,
        )

    def _record(
        self, session: AsyncSession, env: EnvironmentModel, action: Action, out: Outcome
    ) -> None:
        if out.container_id:
            env.container_id = out.container_id
        if out.exit_code is not None:
            env.exit_code = out.exit_code
        if action is Action.STOP:
            env.stop_force, env.stop_signal, env.stop_timeout = False, None, None
        env.attempts = 0
        data = dict(out.data)
        if out.exit_code is not None:
            data["exit_code"] = out.exit_code
        transition(session, env, out.to, actor=ACTOR, reason=out.reason, data=data)

    async def _apply(self, seen: EnvironmentModel, change: Change) -> bool:
        """Apply `change` to the row as it was seen; False if it changed meanwhile."""
        async with self._sessions() as session:
            env = await session.get(EnvironmentModel, seen.id, populate_existing=True)
            if env is None or env.version != seen.version or env.lease_token != seen.lease_token:
                return False
            change(session, env)
            try:
                await session.commit()
            except StaleDataError:
                await session.rollback()
                return False
        return True

    async def _failed(self, seen: EnvironmentModel, action: Action, exc: RuntimeFailure) -> None:
        """Record the failure and back off with jitter; give up on create/start after
        a few attempts (or at once when the image is missing)."""
        attempts = seen.attempts + 1
        give_up = isinstance(exc, ImageNotFound) or (
            action in (Action.CREATE, Action.START) and attempts >= _MAX_ATTEMPTS
        )
        log.warning("%s of %s failed (attempt %d): %s", action.value, seen.id, attempts, exc)

        def change(session: AsyncSession, env: EnvironmentModel) -> None:
            env.attempts = attempts
            if give_up:
                reason = f"{action.value} failed: {exc.message}"
                transition(session, env, EnvState.ERROR, actor=ACTOR, reason=reason)
                return
            record_environment_event(
                session,
                env,
                "environment.action_failed",
                actor=ACTOR,
                reason=exc.message,
                data={"action": action.value, "attempt": attempts},
            )
            delay = min(30.0, 0.5 * 2**attempts) * random.uniform(0.5, 1.5)  # noqa: S311
            env.next_attempt_at = utcnow() + timedelta(seconds=delay)

        await self._apply(seen, change)

    async def _forced(self, env_id: str) -> bool:
        async with self._sessions() as session:
            env = await session.get(EnvironmentModel, env_id, populate_existing=True)
        return env is None or env.stop_force or env.state != EnvState.STOPPING.value

    async def _renew(self, env_id: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            async with self._sessions() as session:
                ok = await queries.renew(
                    session, env_id, token=token, now=utcnow(), ttl=self._lease
                )
                await session.commit()
            if not ok:
                return
