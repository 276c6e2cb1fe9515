"""The inside capability as one object: the runtime abilities (exec, files, git, logs),
this process's background processes and activity holds, and the exec limits."""

from dataclasses import dataclass

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.runtime.inside import FileSystem, GitRepos, LogReader, ProcessRunner
from sandbay.services.environments.activity import ActivityHolds
from sandbay.services.events.bus import EventBus
from sandbay.services.inside.processes import ProcessRegistry


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
    git: GitRepos | None = None
