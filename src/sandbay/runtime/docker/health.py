"""Whether the engine is there, and when it was not. Every engine call reports to one
`EngineHealth`: a call that cannot reach the engine opens an outage, the next that
succeeds closes it. While the engine is known down, calls fail at once (after a
bounded ping) instead of waiting on a socket that may accept but not answer (an
engine restoring its containers), so requests answer 503 quickly.

The outages it saw are how the reconciler tells an engine stop from a workload's own
exit: a stopping engine stops every container (its stop signal, then SIGKILL), and it
stops serving its API before it does, so no exit of those containers can be seen
before the outage begins. A container that finished between the last call that
reached the engine and the first that reached it again was stopped by the engine.

When this process was not there to see it (the host rebooted, the server restarted
with its engine), the engine's own start time stands in: a container that finished
before the engine now serving started, killed by the stop signal or the SIGKILL that
follows it (143, 137), was stopped by that engine's predecessor going down. The start
time is the engine process's, found through the unix socket's peer credentials; an
engine over TCP (or in another PID namespace) has none, and only outages seen count."""

import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sandbay.domain.runtime import ContainerInfo

log = logging.getLogger(__name__)

#: Outages remembered (the reconciler reads them within seconds of the engine's return).
_KEEP = 16
#: The engine's clock and ours may differ a little (the same host, or NTP).
_SKEW = 1.0
#: What an engine's shutdown leaves: its stop signal (SIGTERM) or the SIGKILL after it.
_SHUTDOWN_CODES = frozenset({128 + 15, 128 + 9})
#: How long an engine may go on answering after its shutdown stopped a container (a
#: Swarm node's engine stops its containers, then its API: about a second here).
_SHUTDOWN_WINDOW = 8.0


@dataclass(frozen=True, slots=True)
class Outage:
    """Wall-clock seconds: the last call that reached the engine, and the first call
    that reached it again (None while it is still down)."""

    last_seen: float
    back: float | None = None

    def covers(self, moment: float) -> bool:
        end = self.back if self.back is not None else time.time()
        return self.last_seen - _SKEW <= moment <= end + _SKEW

    def follows(self, moment: float) -> bool:
        """Whether it began within the shutdown window after `moment`."""
        return moment - _SKEW <= self.last_seen <= moment + _SHUTDOWN_WINDOW


def _timestamp(value: str | None) -> float | None:
    """The engine's RFC 3339 time, or None for its zero time (never finished)."""
    if not value or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def engine_started_at(socket_path: str | None) -> float | None:
    """Wall-clock start of the engine process behind a local unix socket (its pid from
    the socket's peer credentials, its start from /proc), or None when unknown."""
    if not socket_path:
        return None
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2.0)
            sock.connect(socket_path)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", creds)[0]
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rpartition(")")[2].split()[19])  # field 22: starttime
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration, struct.error):
        return None
    if pid <= 0:
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


class EngineHealth:
    """The engine's availability as this process's calls saw it."""

    def __init__(self, *, started_at: Callable[[], float | None] = lambda: None) -> None:
        self._last_ok = time.time()
        self._outages: list[Outage] = []
        #: Read when needed: an engine may restart between two calls, unseen.
        self._started_at = started_at

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
        than by its workload: not out of memory, and it finished during an outage this
        process saw, or (killed as a shutdown kills) before the engine started."""
        if info.running or info.oom_killed:
            return False
        finished = _timestamp(info.finished_at)
        if finished is None:
            return False
        started = self._started_at()
        # An engine that stopped its containers came back as a new process: a call that
        # only timed out on a busy engine (which then answered again) is no such outage,
        # and a workload's own exit meanwhile is its exit (it was restarted as if the
        # engine had stopped it).
        if any(
            o.covers(finished) and (started is None or started >= o.last_seen - _SKEW)
            for o in self._outages
        ):
            return True
        if info.exit_code not in _SHUTDOWN_CODES:
            return False
        # An engine that stops its containers before it stops answering (a Swarm node's
        # does): a shutdown's exit shortly before an outage is the engine's too.
        if any(o.follows(finished) for o in self._outages):
            return True
        return started is not None and finished < started + _SKEW

    def undecided(self, info: ContainerInfo) -> bool:
        """Whether this exit may still turn out to be the engine's: killed as a shutdown
        kills, within the shutdown window, and no outage seen after it yet. The
        reconciler looks again shortly rather than record the workload's exit."""
        if info.running or info.oom_killed or info.exit_code not in _SHUTDOWN_CODES:
            return False
        finished = _timestamp(info.finished_at)
        if finished is None or time.time() - finished > _SHUTDOWN_WINDOW:
            return False
        return not self.stopped_by_engine(info)
