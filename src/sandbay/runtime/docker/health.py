"""Whether the engine is there, and when it was not. Every engine call reports to one
`EngineHealth`: a call that cannot reach the engine opens an outage, the next that
succeeds closes it. While the engine is known down, calls fail at once (after a
bounded ping) instead of waiting on a socket that may accept but not answer (an
engine restoring its containers), so requests answer 503 quickly.

The outages it saw are how the reconciler tells an engine stop from a workload's own
exit: a stopping engine stops every container (its stop signal, then SIGKILL), and it
stops serving its API before it does, so no exit of those containers can be seen
before the outage begins. A container that finished between the last call that
reached the engine and the first that reached it again was stopped by the engine."""

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from sandbay.domain.runtime import ContainerInfo

log = logging.getLogger(__name__)

#: Outages remembered (the reconciler reads them within seconds of the engine's return).
_KEEP = 16
#: The engine's clock and ours may differ a little (the same host, or NTP).
_SKEW = 1.0


@dataclass(frozen=True, slots=True)
class Outage:
    """Wall-clock seconds: the last call that reached the engine, and the first call
    that reached it again (None while it is still down)."""

    last_seen: float
    back: float | None = None

    def covers(self, moment: float) -> bool:
        end = self.back if self.back is not None else time.time()
        return self.last_seen - _SKEW <= moment <= end + _SKEW


def _timestamp(value: str | None) -> float | None:
    """The engine's RFC 3339 time, or None for its zero time (never finished)."""
    if not value or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


class EngineHealth:
    """The engine's availability as this process's calls saw it."""

    def __init__(self) -> None:
        self._last_ok = time.time()
        self._outages: list[Outage] = []

    @property
    def down(self) -> bool:
        return bool(self._outages) and self._outages[-1].back is None

    def reached(self) -> None:
        now = time.time()
        if self.down:
            last = self._outages[-1]
            self._outages[-1] = Outage(last.last_seen, now)
            log.warning("the container engine is back after %.1fs", now - last.last_seen)
        self._last_ok = now

    def unreachable(self) -> None:
        if not self.down:
            log.warning("the container engine is unreachable")
            self._outages.append(Outage(self._last_ok))
            del self._outages[:-_KEEP]

    def stopped_by_engine(self, info: ContainerInfo) -> bool:
        """Whether this exited container was stopped by its engine going away rather
        than by its workload: it finished during an outage, and not out of memory."""
        if info.running or info.oom_killed:
            return False
        finished = _timestamp(info.finished_at)
        return finished is not None and any(o.covers(finished) for o in self._outages)
