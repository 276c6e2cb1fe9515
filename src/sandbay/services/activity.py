"""Activity: what keeps an environment from auto-stopping. Counted: API calls on the
environment, exec and process sessions, SSH/PTY sessions, preview traffic, file
operations, agent runs. Never counted: the platform's own probes, metrics sampling,
dashboard refreshes (Coder users were bitten by both: coder/coder#12012, #10841)."""

from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db import environments as queries
from sandbay.services.events import utcnow


async def record_activity(session: AsyncSession, environment_id: str) -> None:
    """Mark the environment active now (cheap, throttled to once a second)."""
    await queries.touch_activity(session, environment_id, utcnow())
