"""Reaching an environment's agent on any runner. On one host the engine says where
the agent listens (`DockerLocator`). With runners on many Swarm nodes, a replica reads
where an environment on another node runs (its `runner_id`) and the endpoint that
node's engine published its agent on (recorded by the runner that started it), and
opens it with the token both derive from the shared secrets key: no worker's Docker
socket is reached over the network (docs/scaling.md). An environment whose runner
the Swarm reports down answers 503 at once instead of a dial that hangs."""

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Collection

from sandbay.db.queries import runners as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.errors import Conflict, ContainerNotFound, RunnerUnreachable
from sandbay.domain.runners import RunnerState
from sandbay.runtime.envd.channel import Address, Locator
from sandbay.services.runners.service import RunnerSource

log = logging.getLogger(__name__)
#: How long a view of the nodes' states is used: a node that goes down is seen in a
#: few seconds (the Swarm's own heartbeat is the slower part).
_STATES_SECONDS = 2.0


def agent_token(key: bytes) -> Callable[[str], str]:
    """The token an environment's agent accepts: an HMAC of its id under `key` (one of
    the secrets key's derived keys), the same on every replica and runner."""

    def token(environment_id: str) -> str:
        return hmac.new(key, environment_id.encode(), hashlib.sha256).hexdigest()[:48]

    return token


async def adopt_environments(session: AsyncSession, names: Collection[str], node_id: str) -> None:
    """A host that joined a Swarm: the environments it made before (named by its
    host name or configured runner id) are the node's, so they return to it."""
    moved = await queries.rename_runner(session, [n for n in names if n != node_id], node_id)
    if moved:
        log.info("%d environments of this host now name its Swarm node %s", moved, node_id)


class RoutedLocator:
    """`Locator` over every runner: this engine's own environments through `local`,
    the others through their published endpoints."""

    def __init__(
        self,
        local: Locator,
        *,
        local_runners: Collection[str],
        sessions: async_sessionmaker[AsyncSession],
        token: Callable[[str], str],
        runners: RunnerSource,
    ) -> None:
        self._local = local
        self._mine = frozenset(local_runners)
        self._sessions = sessions
        self._token = token
        self._runners = runners
        #: Per environment: its remote address, or None for one on this engine.
        self._cache: dict[str, Address | None] = {}
        self._states: dict[str, RunnerState] = {}
        self._states_at = -_STATES_SECONDS

    async def _state(self, runner_id: str, *, fresh: bool) -> RunnerState | None:
        if fresh or time.monotonic() - self._states_at > _STATES_SECONDS:
            try:
                self._states = {r.id: r.state for r in await self._runners.runners()}
            except Conflict:
                # A worker's engine cannot say (only managers know the nodes): try it.
                return RunnerState.READY
            self._states_at = time.monotonic()
        return self._states.get(runner_id)

    async def unreachable(self, runner_id: str | None, *, fresh: bool = False) -> bool:
        """Whether `runner_id` is another runner that the Swarm does not hear from: a
        view up to 2 s old says it is up, and one that says it is down is confirmed
        (`fresh`: asked now in any case, as after its agent did not answer)."""
        if runner_id is None or runner_id in self._mine:
            return False
        state = await self._state(runner_id, fresh=fresh)
        if state is not RunnerState.READY and not fresh:
            # Down a moment ago: confirm it now, so a node that is back answers at once.
            state = await self._state(runner_id, fresh=True)
        return state is not RunnerState.READY

    async def locate(self, environment_id: str, *, fresh: bool = False) -> Address:
        if not fresh and environment_id in self._cache:
            known = self._cache[environment_id]
            if known is not None:
                return known
            try:
                return await self._local.locate(environment_id)
            except (Conflict, ContainerNotFound):
                # Moved to another runner since (or stopped): the database says which.
                self._cache.pop(environment_id, None)
        async with self._sessions() as session:
            route = await queries.agent_route(session, environment_id)
        runner_id, endpoint = route if route is not None else (None, None)
        if runner_id is None or runner_id in self._mine:
            self._cache[environment_id] = None
            return await self._local.locate(environment_id, fresh=fresh)
        if await self.unreachable(runner_id, fresh=fresh):
            self._cache.pop(environment_id, None)
            raise RunnerUnreachable(
                f"the environment's runner {runner_id} is unreachable (the Swarm does not "
                "hear from it); its environments wait for it, nothing is lost"
            )
        if not endpoint:
            raise Conflict("the environment's workload is not running")
        address = Address.at(endpoint, self._token(environment_id))
        self._cache[environment_id] = address
        return address

    def forget(self, environment_id: str) -> None:
        self._cache.pop(environment_id, None)
        self._local.forget(environment_id)
