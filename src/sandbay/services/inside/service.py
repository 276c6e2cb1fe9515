"""The inside capability as one object: the runtime abilities (exec, files, git, logs),
this process's background processes and activity holds, and the exec limits."""

from dataclasses import dataclass, field

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.runtime.inside import FileSystem, GitRepos, LogReader, ProcessRunner
from sandbay.services.environments.activity import ActivityHolds
from sandbay.services.events.bus import EventBus
from sandbay.services.inside.processes import ProcessRegistry
from sandbay.services.inside.shell_registry import ShellRegistry


@dataclass(frozen=True, slots=True)
class ExecLimits:
    default_timeout: float
    output_limit_bytes: int


@dataclass(frozen=True, slots=True)
class InsideService:
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    runner: ProcessRunner
    files: FileSystem
    logs: LogReader
    processes: ProcessRegistry
    limits: ExecLimits
    holds: ActivityHolds
    #: Process sessions and named terminals (Daytona's), held by this server.
    shells: ShellRegistry = field(default_factory=ShellRegistry)
    git: GitRepos | None = None
