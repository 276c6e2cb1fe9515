"""The workload's own output (what its startup command prints), as the engine keeps
it. Readable whenever the container exists (a crashed workload's logs are what one
needs most), so not only while running."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal

from sandbay.domain.errors import InvalidRequest
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.limits import MAX_UNIX_SECONDS
from sandbay.services.inside.service import InsideService
from sandbay.services.inside.target import HAS_CONTAINER, open_target

LogStream = Literal["stdout", "stderr", "both"]


def parse_since(value: str | None) -> float | None:
    """Unix seconds or an ISO 8601 time (with zone, else UTC)."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidRequest("since must be unix seconds or an ISO 8601 time") from exc
        seconds = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    # NaN fails both comparisons; the engine refuses what it cannot hold (a 502).
    if not 0 <= seconds <= MAX_UNIX_SECONDS:
        raise InvalidRequest(f"since must be between 0 and {MAX_UNIX_SECONDS} (unix seconds)")
    return seconds


async def open_logs(
    inside: InsideService,
    principal: Principal,
    id_or_name: str,
    *,
    follow: bool,
    since: str | None,
    tail: int | None,
    timestamps: bool,
    stream: LogStream,
) -> AsyncIterator[bytes]:
    """Checks first (refusals are plain error answers), then the streamed bytes."""
    since_s = parse_since(since)
    target = await open_target(
        inside.sessions,
        principal,
        id_or_name,
        Permission.ENVIRONMENTS_READ,
        allowed=HAS_CONTAINER,
        activity=False,
    )
    return await inside.logs.logs(
        target.environment_id,
        follow=follow,
        since=since_s,
        tail=tail,
        timestamps=timestamps,
        stdout=stream in ("stdout", "both"),
        stderr=stream in ("stderr", "both"),
    )
