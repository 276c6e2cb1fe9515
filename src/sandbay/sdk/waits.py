"""The pure part of waiting, shared by both clients: the server's longest wait per
request, and how a snapshot is polled (backing off, with a deadline)."""

import time
from dataclasses import dataclass, field

from sandbay.domain.snapshots import Snapshot, SnapshotState
from sandbay.sdk.errors import SnapshotFailedError, WaitTimeoutError

#: `GET …/wait` blocks at most this long; longer waits are several of them.
MAX_SERVER_WAIT_S = 600.0


@dataclass
class SnapshotPoll:
    """Seconds until the next look at a snapshot, or the error that ends the wait."""

    snapshot: str
    timeout: float
    delay: float = 0.2
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def next_delay(self, found: Snapshot) -> float:
        if found.state is SnapshotState.FAILED:
            raise SnapshotFailedError(409, "snapshot_failed", found.error or "snapshot failed")
        if found.state is not SnapshotState.CREATING:
            raise SnapshotFailedError(409, "snapshot_failed", f"snapshot is {found.state.value}")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeoutError(
                408, "timeout_error", f"snapshot {self.snapshot} is still {found.state.value}"
            )
        delay, self.delay = self.delay, min(self.delay * 1.5, 2.0)
        return min(delay, left)


def wait_slice(deadline: float) -> float:
    """The server-side timeout of the next `…/wait` call toward `deadline`."""
    return min(max(deadline - time.monotonic(), 0.1), MAX_SERVER_WAIT_S)
