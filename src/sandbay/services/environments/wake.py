"""Wake on request: the first preview request or SSH login to a sleeping environment
that has `wake_on_request` starts it (a stopped or archived one) or resumes it (a
paused one) through the lifecycle, as `system:wake-on-request`, records who woke it
(`environment.woken`), and waits, bounded, until it runs and, for a preview, until
its port accepts a connection (the workload's server needs a moment after the
start). The gateways authenticate the request first: only an authorised request
wakes anything. Concurrent requests in this process share one wake; the start is
idempotent, so requests through other replicas only add their own event."""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from sandbay.db.cas import commit_or_conflict
from sandbay.db.models import EnvironmentModel
from sandbay.db.queries import access as access_queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.errors import Conflict, PortUnreachable, WaitTimeout
from sandbay.domain.keys import Principal, hash_key
from sandbay.domain.states import EnvState
from sandbay.runtime.access import PortConnector
from sandbay.services.environments.activity import record_activity
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.events.record import record_event

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "wake-on-request"
#: States a request wakes from (a stop or archive in progress finishes first).
SLEEPING = frozenset(
    {
        EnvState.STOPPED,
        EnvState.STOPPING,
        EnvState.PAUSED,
        EnvState.PAUSING,
        EnvState.ARCHIVED,
        EnvState.ARCHIVING,
    }
)
#: States already on their way up: a request waits for them without a start.
RISING = frozenset({EnvState.CREATING, EnvState.STARTING, EnvState.RESUMING, EnvState.RESTORING})
_PROBE_FIRST_S, _PROBE_MAX_S = 0.05, 0.5


@dataclass(frozen=True, slots=True)
class WakeCause:
    """Who asks: recorded on the `environment.woken` event (never a secret)."""

    by: str  # "preview" or "ssh"
    client: str
    port: int | None = None
    #: A preview token (header, cookie or signed URL): only its id is recorded.
    preview_token: str | None = None
    credential_id: str | None = None
    method: str | None = None


class Waker:
    """Wakes environments for the gateways, one wake per environment at a time."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        lifecycle: Lifecycle,
        ports: PortConnector,
        timeout: float,
    ) -> None:
        self._sessions = sessions
        self._lifecycle = lifecycle
        self._ports = ports
        self.timeout = timeout
        self._waking: dict[str, asyncio.Task[None]] = {}

    async def wakeable(self, environment_id: str) -> bool:
        """Whether a request to this environment (not running) should wake it."""
        async with self._sessions() as session:
            env = await session.get(EnvironmentModel, environment_id)
            return (
                env is not None
                and env.deleted_at is None
                and bool(env.wake_on_request)
                and env.kind is EnvironmentKind.MANAGED
                and env.state in SLEEPING | RISING
            )

    async def wake(
        self, org_id: str, environment_id: str, cause: WakeCause, *, port: int | None = None
    ) -> None:
        """Start (or resume) the environment and return once it runs and `port` (if
        given) accepts a connection. Raises `WaitTimeout` past `timeout`, `Conflict`
        if it ends in error, and what the start raises (a quota, a deletion)."""
        deadline = time.monotonic() + self.timeout
        task = self._waking.get(environment_id)
        if task is None:
            task = asyncio.create_task(self._wake(org_id, environment_id, cause))
            self._waking[environment_id] = task
            task.add_done_callback(lambda done: self._done(environment_id, done))
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except TimeoutError:
            raise WaitTimeout(
                f"environment {environment_id} did not wake within {self.timeout:g}s"
            ) from None
        if port is not None:
            await self._port_open(environment_id, port, deadline)

    def _done(self, environment_id: str, task: asyncio.Task[None]) -> None:
        if self._waking.get(environment_id) is task:
            del self._waking[environment_id]
        if not task.cancelled() and task.exception() is not None:
            log.info("wake of %s failed: %s", environment_id, task.exception())

    async def _wake(self, org_id: str, environment_id: str, cause: WakeCause) -> None:
        principal = Principal.for_system(org_id, SYSTEM_ACTOR)
        async with self._sessions() as session:
            env = await session.get(EnvironmentModel, environment_id)
            asleep = env.state if env is not None and env.state in SLEEPING else None
            started = await self._lifecycle.request_start(session, principal, environment_id)
            if asleep is not None:  # one on its way up already was woken by someone else
                record_event(
                    session,
                    org_id=org_id,
                    environment_id=environment_id,
                    type="environment.woken",
                    actor=principal.actor,
                    from_state=asleep.value,
                    to_state=started.state.value,
                    data=await _cause_data(session, cause),
                )
            await record_activity(session, environment_id, force=True)
            await commit_or_conflict(session)
        await self._lifecycle.wait_for_state(
            principal, environment_id, EnvState.RUNNING, self.timeout
        )

    async def _port_open(self, environment_id: str, port: int, deadline: float) -> None:
        """Probe the port until it accepts a connection (closed at once)."""
        delay = _PROBE_FIRST_S
        while True:
            try:
                stream = await self._ports.connect(environment_id, port)
            except (PortUnreachable, Conflict) as exc:
                if time.monotonic() + delay >= deadline:
                    raise WaitTimeout(
                        f"environment {environment_id} woke, but nothing accepted a "
                        f"connection on port {port} within {self.timeout:g}s ({exc.message})"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, _PROBE_MAX_S)
            else:
                with contextlib.suppress(Exception):
                    await stream.close()
                return


async def _cause_data(session: AsyncSession, cause: WakeCause) -> dict[str, Any]:
    data: dict[str, Any] = {"by": cause.by, "client": cause.client}
    if cause.port is not None:
        data["port"] = cause.port
    if cause.preview_token:
        row = await access_queries.preview_token(session, hash_key(cause.preview_token))
        if row is not None:
            data["preview_token_id"] = row.id
    if cause.credential_id:
        data["credential_id"] = cause.credential_id
    if cause.method:
        data["method"] = cause.method
    return data
