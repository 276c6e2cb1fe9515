"""What this server holds in memory for a running environment (interpreter contexts,
process sessions, named terminals) lives only as long as the environment runs: once
it leaves running (a stop, an archive, a delete, an error) its processes end with its
workload, as a sandbox daemon's do, and what is held of them is dropped. One bus
listener for every holder."""

import abc

from sandbay.domain.environments import Event
from sandbay.domain.states import EnvState

#: States in which an environment's processes are gone (or going).
GONE = frozenset(
    {
        EnvState.STOPPING,
        EnvState.STOPPED,
        EnvState.ARCHIVING,
        EnvState.ARCHIVED,
        EnvState.DELETING,
        EnvState.DELETED,
        EnvState.ERROR,
    }
)


class HeldWhileRunning(abc.ABC):
    """A holder of per-environment state: `on_event` is its bus listener."""

    def on_event(self, event: Event) -> None:
        """Bus listener: an environment that leaves running loses what is held of it."""
        if event.environment_id and event.to_state in GONE:
            self.drop_environment(event.environment_id)

    @abc.abstractmethod
    def drop_environment(self, environment_id: str) -> None:
        """Forget what is held for the environment and end its processes (in the
        background: a listener must not block)."""
