"""Composition root: `Platform` wires database, engine provider, event bus and the
background loops; `create_app(settings)` puts the API on top. Nothing is built at
import time."""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlparse

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import sandbay
from sandbay.api.deps import Services
from sandbay.api.errors import ErrorRenderers, install_error_handlers
from sandbay.api.middleware import JsonBodyLimit
from sandbay.api.routes import (
    agents,
    environments,
    events,
    exec,
    files,
    health,
    keys,
    model_providers,
    observe,
    orgs,
    pools,
    work,
)
from sandbay.db import migrate
from sandbay.db.engine import create_engine
from sandbay.db.session import create_sessionmaker
from sandbay.dialects import chowder, cloudcli_agents, qoder
from sandbay.domain.work import LeaseLimits
from sandbay.reconciler.actions import Engine
from sandbay.reconciler.drift import DriftScanner
from sandbay.reconciler.loop import Reconciler
from sandbay.reconciler.metrics import MetricsCollector
from sandbay.reconciler.policies import PolicyLoop
from sandbay.reconciler.pool import PoolLoop
from sandbay.reconciler.work_items import WorkLeaseReaper
from sandbay.runtime.archives import ArchiveStore, DirectoryArchiveStore, S3ArchiveStore
from sandbay.runtime.docker import DockerProvider
from sandbay.runtime.docker_archive import DockerArchiver
from sandbay.runtime.docker_toolbox import DockerToolbox
from sandbay.services.activity import ActivityHolds
from sandbay.services.agents import Agents
from sandbay.services.auth import ensure_bootstrap
from sandbay.services.bus import EventBus
from sandbay.services.environments import Placement
from sandbay.services.processes import ProcessRegistry
from sandbay.services.toolbox import ExecLimits, Toolbox
from sandbay.services.work_protocol import WorkWakeups
from sandbay.settings import Settings

log = logging.getLogger("sandbay")


def _secret(value: object) -> str | None:
    return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]


def _lease_limits(settings: Settings) -> LeaseLimits:
    low = settings.work_min_ttl_seconds
    return LeaseLimits(
        min_ttl=low,
        max_ttl=max(low, settings.work_max_ttl_seconds),
        default_ttl=settings.work_default_ttl_seconds,
    )


def archive_store(settings: Settings) -> ArchiveStore:
    """A directory by default; an S3-compatible bucket when `archive_s3_url` is set."""
    if settings.archive_s3_url:
        parsed = urlparse(settings.archive_s3_url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError("SANDBAY_ARCHIVE_S3_URL must look like s3://bucket/prefix")
        return S3ArchiveStore(
            bucket=parsed.netloc,
            prefix=parsed.path,
            staging_root=settings.data_dir / "archive-staging",
            endpoint_url=settings.archive_s3_endpoint,
            region=settings.archive_s3_region,
        )
    return DirectoryArchiveStore(settings.archive_dir or settings.data_dir / "archives")


Loop = Reconciler | PolicyLoop | DriftScanner | PoolLoop | WorkLeaseReaper | MetricsCollector


def _toolbox(
    settings: Settings,
    docker_toolbox: DockerToolbox,
    sessions: async_sessionmaker[AsyncSession],
    bus: EventBus,
    holds: ActivityHolds,
) -> Toolbox:
    """Exec, processes, files and logs inside environments."""
    processes = ProcessRegistry(
        docker_toolbox.runner,
        output_limit=settings.process_output_limit_bytes,
        keep_exited=settings.processes_kept_exited,
        holds=holds,
    )
    bus.add_listener(processes.on_event)
    return Toolbox(
        sessions=sessions,
        bus=bus,
        runner=docker_toolbox.runner,
        files=docker_toolbox.files,
        logs=docker_toolbox.logs,
        processes=processes,
        limits=ExecLimits(
            default_timeout=settings.exec_default_timeout,
            output_limit_bytes=settings.exec_output_limit_bytes,
        ),
        holds=holds,
    )


@dataclass
class Platform:
    """Everything a sandbay process runs: shared by `serve` and `reconciler`."""

    settings: Settings
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    provider: DockerProvider
    holds: ActivityHolds
    placement: Placement
    docker_toolbox: DockerToolbox
    toolbox: Toolbox
    loops: list[Loop]

    @classmethod
    async def open(cls, settings: Settings, *, loops: bool) -> "Platform":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = create_engine(settings.resolved_database_url())
        await migrate.upgrade(db)
        bus = EventBus()
        sessions = create_sessionmaker(db, info={"bus": bus})
        bootstrap = _secret(settings.bootstrap_key)
        if bootstrap:
            async with sessions() as session:
                await ensure_bootstrap(session, bootstrap)
                await session.commit()
        provider = DockerProvider(
            runner_id=settings.runner_id,
            base_url=settings.docker_host,
            threads=settings.engine_threads,
        )
        placement = Placement(runner_id=settings.runner_id, default_image=settings.default_image)
        docker_toolbox = DockerToolbox.for_provider(provider, cgroups=settings.metrics_from_cgroups)
        holds = ActivityHolds()
        platform = cls(
            settings, db, sessions, bus, provider, holds, placement, docker_toolbox,
            _toolbox(settings, docker_toolbox, sessions, bus, holds), [],
        )  # fmt: skip
        if loops:
            platform.loops = platform._build_loops()
        return platform

    def _build_loops(self) -> list[Loop]:
        s = self.settings
        store = archive_store(s)
        engine = Engine(provider=self.provider, archiver=DockerArchiver(self.provider), store=store)
        instance = s.resolved_instance()
        return [
            Reconciler(
                sessions=self.sessions,
                engine=engine,
                bus=self.bus,
                instance=instance,
                runner_id=s.runner_id,
                interval=s.reconcile_interval,
                concurrency=s.reconcile_concurrency,
                lease_seconds=s.lease_seconds,
                default_stop_timeout=s.default_stop_timeout,
            ),
            PolicyLoop(
                sessions=self.sessions,
                holds=self.holds,
                interval=s.policy_interval,
                deadline_scale=s.deadline_scale,
                default_stop_timeout=s.default_stop_timeout,
            ),
            DriftScanner(
                sessions=self.sessions,
                provider=self.provider,
                instance=instance,
                runner_id=s.runner_id,
                interval=s.drift_interval,
                orphan_grace=s.orphan_grace,
            ),
            PoolLoop(
                sessions=self.sessions,
                bus=self.bus,
                specs=s.warm_pools,
                placement=self.placement,
                interval=s.pool_interval,
            ),
            WorkLeaseReaper(sessions=self.sessions, interval=s.work_lease_interval),
            MetricsCollector(
                sessions=self.sessions,
                source=self.docker_toolbox.stats,
                instance=instance,
                interval=s.metrics_interval,
                retention=timedelta(hours=s.metrics_retention_hours),
            ),
        ]

    async def start(self) -> None:
        for loop in self.loops:
            result = loop.start()
            if asyncio.iscoroutine(result):
                await result

    async def close(self) -> None:
        for loop in reversed(self.loops):
            await loop.stop()
        await self.toolbox.processes.close()
        await self.docker_toolbox.close()
        await self.provider.close()
        await self.db.dispose()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    platform = await Platform.open(settings, loops=settings.reconciler_enabled)
    app.state.services = Services(
        sessions=platform.sessions,
        bus=platform.bus,
        provider=platform.provider,
        holds=platform.holds,
        placement=platform.placement,
        admin_key=_secret(settings.admin_key),
        default_stop_timeout=settings.default_stop_timeout,
        warm_pools=settings.warm_pools,
        work_wakeups=WorkWakeups(platform.bus),
        work_limits=_lease_limits(settings),
    )
    app.state.toolbox = platform.toolbox
    app.state.agents = Agents.open(
        settings,
        sessions=platform.sessions,
        toolbox=platform.toolbox,
        provider=platform.provider,
        placement=platform.placement,
    )
    await platform.start()
    app.state.agents.start()
    log.info("sandbay %s ready (instance %s)", sandbay.__version__, settings.resolved_instance())
    try:
        yield
    finally:
        await app.state.agents.close()
        await platform.close()


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="sandbay",
        version=sandbay.__version__,
        summary="Isolated cloud environments (sandboxes) you can host yourself",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    renderers = ErrorRenderers()
    install_error_handlers(app, renderers)
    app.add_middleware(JsonBodyLimit, max_bytes=settings.max_json_body_bytes, renderers=renderers)
    for module in (health, environments, keys, orgs, events, pools, work, exec, files, observe):
        app.include_router(module.router)
    for module in (agents, model_providers):
        app.include_router(module.router)
    qoder.install(app, renderers)
    cloudcli_agents.install(app, renderers)
    chowder.install(app, renderers)
    return app


async def run_reconciler(settings: Settings) -> None:
    """The reconciler loops without the API (`sandbay reconciler`), until SIGTERM."""
    platform = await Platform.open(settings, loops=True)
    await platform.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("sandbay reconciler running (instance %s)", settings.resolved_instance())
    try:
        await stop.wait()
    finally:
        await platform.close()
