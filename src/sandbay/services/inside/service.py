"""What the use cases inside an environment need, built once by the app's lifespan."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.runtime.inside import FileSystem, LogReader, ProcessRunner
from sandbay.services.environments.activity import ActivityHolds
from sandbay.services.events.bus import EventBus
from sandbay.services.inside.processes import ProcessRegistry


@dataclass(frozen=True, slots=True)
class ExecLimits:
    default_timeout: float
    output_limit_bytes: int


@dataclass(frozen=True, slots=True)
class Toolbox:
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    runner: ProcessRunner
    files: FileSystem
    logs: LogReader
    processes: ProcessRegistry
    limits: ExecLimits
    holds: ActivityHolds
