"""Activity: what keeps an environment from auto-stopping. Counted: API calls on the
environment, exec and process sessions, SSH/PTY sessions, preview traffic, file
operations, agent runs. Never counted: the platform's own probes, metrics sampling,
dashboard refreshes (Coder users were bitten by both: coder/coder#12012, #10841)."""

import contextlib
from collections.abc import Iterator

from sandbay.db.queries import environments as queries
from sandbay.db.session import AsyncSession
from sandbay.kit.clock import utcnow


async def record_activity(
    session: AsyncSession, environment_id: str, *, force: bool = False
) -> None:
    """Mark the environment active now (cheap; throttled to once a second unless
    `force`)."""
    await queries.touch_activity(session, environment_id, utcnow(), throttle=not force)


class ActivityHolds:
    """Things that keep an environment active while they last (exec and process
    sessions, SSH and PTY sessions, agent runs), counted in this process; the
    policy loop turns them into `last_activity_at` updates."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, environment_id: str) -> Iterator[None]:
        self._counts[environment_id] = self._counts.get(environment_id, 0) + 1
        try:
            yield
        finally:
            left = self._counts[environment_id] - 1
            if left:
                self._counts[environment_id] = left
            else:
                del self._counts[environment_id]

    def held(self) -> list[str]:
        return list(self._counts)
