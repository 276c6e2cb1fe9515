"""`LoopManager`: the one place a process's background jobs are registered, started
and stopped, and where they (and the services' in-process caches) are put on the
event bus. Prefect's `LoopService` and dstack's `PipelineManager` are the model."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.domain.environments import Event
from sandbay.kit.loops import Loop
from sandbay.reconciler.actions import Engine
from sandbay.reconciler.drift import DriftScanner
from sandbay.reconciler.images import ImagesLoop
from sandbay.reconciler.loop import Reconciler
from sandbay.reconciler.metrics import MetricsCollector
from sandbay.reconciler.network import NetworkPolicyLoop
from sandbay.reconciler.policies import PolicyLoop
from sandbay.reconciler.pool import PoolLoop
from sandbay.reconciler.snapshots import SnapshotsLoop
from sandbay.reconciler.work_leases import WorkLeaseReaper
from sandbay.runtime.archives import ArchiveStore
from sandbay.runtime.docker.runtime import DockerRuntime
from sandbay.services.access.network import NetworkEnforcer
from sandbay.services.environments.activity import ActivityHolds
from sandbay.services.environments.service import EnvironmentsService
from sandbay.services.events.bus import EventBus
from sandbay.services.images.service import ImagesService
from sandbay.services.volumes.service import VolumesService
from sandbay.settings import Settings

log = logging.getLogger(__name__)
Listener = Callable[[Event], None]


class LoopManager:
    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._loops: list[Loop] = []
        self._started: list[Loop] = []

    @property
    def names(self) -> list[str]:
        return [loop.name for loop in self._loops]

    def listen(self, listener: Listener) -> None:
        """Put an in-process listener on the bus (committed events, in order)."""
        self._bus.add_listener(listener)

    def add(self, loop: Loop, *, on_event: Listener | None = None) -> None:
        self._loops.append(loop)
        if on_event is not None:
            self.listen(on_event)

    async def start(self) -> None:
        for loop in self._loops:
            await loop.start()
            self._started.append(loop)

    async def stop(self) -> None:
        """Last started, first stopped; one failing stop does not keep the rest up."""
        while self._started:
            loop = self._started.pop()
            try:
                await loop.stop()
            except Exception:
                log.exception("stopping %s failed", loop.name)


@dataclass(frozen=True, slots=True)
class ReconcilerParts:
    """What the reconciler loops act on, from the platform."""

    sessions: async_sessionmaker[AsyncSession]
    runtime: DockerRuntime
    store: ArchiveStore
    holds: ActivityHolds
    environments: EnvironmentsService
    network: NetworkEnforcer
    images: ImagesService
    volumes: VolumesService
    #: Where snapshots' files are kept (forks are filled from them).
    snapshots: ArchiveStore | None = None


def add_reconciler_loops(manager: LoopManager, s: Settings, parts: ReconcilerParts) -> None:
    """The desired-state reconciler and the periodic loops beside it."""
    runtime, sessions, r = parts.runtime, parts.sessions, s.reconciler
    instance = s.resolved_instance()
    reconciler = Reconciler(
        sessions=sessions,
        engine=Engine(
            provider=runtime.provider,
            archiver=runtime.archiver,
            store=parts.store,
            network=runtime.network,
            faults=runtime.provider.health,
            snapshotter=runtime.archiver,
            snapshots=parts.snapshots,
        ),
        instance=instance,
        runner_id=s.runner_id,
        interval=r.interval,
        concurrency=r.concurrency,
        lease_seconds=r.lease_seconds,
        default_stop_timeout=parts.environments.lifecycle.stop_timeout,
    )
    manager.add(reconciler, on_event=lambda _event: reconciler.wake())
    manager.add(
        PolicyLoop(
            sessions=sessions,
            holds=parts.holds,
            interval=r.policy_interval,
            deadline_scale=r.deadline_scale,
            lifecycle=parts.environments.lifecycle,
        )
    )
    manager.add(
        DriftScanner(
            sessions=sessions,
            provider=runtime.provider,
            instance=instance,
            runner_id=s.runner_id,
            interval=r.drift_interval,
            orphan_grace=r.orphan_grace,
        )
    )
    pool = PoolLoop(
        sessions=sessions,
        specs=list(parts.environments.placement.warm_pools),
        placement=parts.environments.placement,
        interval=s.pools.interval,
    )
    manager.add(pool, on_event=pool.on_event)
    manager.add(WorkLeaseReaper(sessions=sessions, interval=s.work.lease_interval))
    manager.add(
        MetricsCollector(
            sessions=sessions,
            source=runtime.stats,
            instance=instance,
            interval=s.metrics.interval,
            retention=timedelta(hours=s.metrics.retention_hours),
        )
    )
    manager.add(NetworkPolicyLoop(enforcer=parts.network, interval=s.network.policy_interval))
    images = ImagesLoop(
        sessions=sessions,
        builder=runtime.images,
        interval=r.interval,
        contexts=parts.images.contexts,
    )
    # Woken by a new build and by a deleted volume (whose storage it removes).
    parts.images.due.subscribe(images.wake)
    parts.volumes.removed.subscribe(images.wake)
    manager.add(images)
    if parts.snapshots is not None:
        snapshots = SnapshotsLoop(
            sessions=sessions,
            snapshotter=runtime.archiver,
            store=parts.snapshots,
            interval=r.interval,
        )
        manager.add(snapshots, on_event=snapshots.on_event)
