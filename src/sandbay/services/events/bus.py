"""In-process notifications of committed events: they wake the reconciler and
`wait` callers at once. Only a hint: readers always re-read the database, so a
missed notification (or another replica's change) costs latency, never a result."""

import asyncio
import contextlib
from collections.abc import Callable, Iterator

from sandbay.domain.environments import Event


class Subscription:
    """A queue of events for one organization (optionally one environment)."""

    def __init__(self, org_id: str | None, environment_id: str | None) -> None:
        self.org_id = org_id
        self.environment_id = environment_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=10_000)

    def matches(self, event: Event) -> bool:
        if self.org_id is not None and event.org_id != self.org_id:
            return False
        return self.environment_id is None or event.environment_id == self.environment_id

    async def next(self, timeout: float) -> Event | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def publish(self, event: Event) -> None:
        for sub in self._subscriptions:
            if sub.matches(event):
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.put_nowait(event)
        for listener in self._listeners:
            listener(event)

    @contextlib.contextmanager
    def subscribe(
        self, *, org_id: str | None = None, environment_id: str | None = None
    ) -> Iterator[Subscription]:
        sub = Subscription(org_id, environment_id)
        self._subscriptions.add(sub)
        try:
            yield sub
        finally:
            self._subscriptions.discard(sub)
