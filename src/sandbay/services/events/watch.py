"""Environment changes as they commit, each with the environment as it now is: what a
platform's push notifications carry (Daytona's Socket.IO events). Scoped as the
event stream is (the key's organization, from now on, nothing missed), and further to
the environments the key may see: a key limited to some environments hears of no
other."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sandbay.domain.environments import Environment, Event
from sandbay.domain.errors import NotFound
from sandbay.domain.keys import Principal
from sandbay.services.environments.records import read_environment
from sandbay.services.events.service import EventsService
from sandbay.services.events.stream import EventFollow

CREATED = "environment.created"
STATE_CHANGED = "environment.state_changed"
_WATCHED = frozenset({CREATED, STATE_CHANGED})


@dataclass(frozen=True, slots=True)
class EnvironmentChange:
    event: Event
    environment: Environment


@dataclass(frozen=True, slots=True)
class EnvironmentWatch:
    """A resolved watch: iterate `changes()`."""

    events: EventsService
    principal: Principal
    follow: EventFollow

    async def changes(self) -> AsyncIterator[EnvironmentChange]:
        async for event in self.follow.events():
            if event is None or event.environment_id is None or event.type not in _WATCHED:
                continue
            async with self.events.sessions() as session:
                try:
                    env = await read_environment(
                        session, self.principal, event.environment_id, include_deleted=True
                    )
                except NotFound:  # outside the key's environments
                    continue
            yield EnvironmentChange(event, env)


async def watch_environments(events: EventsService, principal: Principal) -> EnvironmentWatch:
    """Resolve the caller (403 for a key that may not read environments) before
    anything is watched; the watch starts at the newest event."""
    follow = await events.follow(principal, environment=None, after=None)
    return EnvironmentWatch(events, principal, follow)
