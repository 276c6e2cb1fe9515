"""Composition root: `create_app(settings)` wires database, engine provider,
event bus, reconciler and routers. Nothing is built at import time."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import sandbay
from sandbay.api.deps import Services
from sandbay.api.errors import ErrorRenderers, install_error_handlers
from sandbay.api.middleware import JsonBodyLimit
from sandbay.api.routes import environments, events, exec, files, health, keys, observe, orgs
from sandbay.db import migrate
from sandbay.db.engine import create_engine
from sandbay.db.session import create_sessionmaker
from sandbay.reconciler.loop import Reconciler
from sandbay.reconciler.metrics import MetricsCollector
from sandbay.runtime.docker import DockerProvider
from sandbay.runtime.docker_toolbox import DockerToolbox
from sandbay.services.auth import ensure_bootstrap
from sandbay.services.bus import EventBus
from sandbay.services.environments import Placement
from sandbay.services.processes import ProcessRegistry
from sandbay.services.toolbox import ExecLimits, Toolbox
from sandbay.settings import Settings

log = logging.getLogger("sandbay")


def _secret(value: object) -> str | None:
    return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.resolved_database_url())
    await migrate.upgrade(engine)
    bus = EventBus()
    sessions = create_sessionmaker(engine, info={"bus": bus})
    bootstrap = _secret(settings.bootstrap_key)
    if bootstrap:
        async with sessions() as session:
            await ensure_bootstrap(session, bootstrap)
            await session.commit()
    provider = DockerProvider(
        runner_id=settings.runner_id, base_url=settings.docker_host, threads=settings.engine_threads
    )
    reconciler = Reconciler(
        sessions=sessions,
        provider=provider,
        bus=bus,
        instance=settings.resolved_instance(),
        interval=settings.reconcile_interval,
        concurrency=settings.reconcile_concurrency,
        lease_seconds=settings.lease_seconds,
        default_stop_timeout=settings.default_stop_timeout,
    )
    app.state.services = Services(
        sessions=sessions,
        bus=bus,
        provider=provider,
        placement=Placement(runner_id=settings.runner_id, default_image=settings.default_image),
        admin_key=_secret(settings.admin_key),
        default_stop_timeout=settings.default_stop_timeout,
    )
    docker_toolbox, collector = _inside(app, settings, provider, sessions, bus)
    reconciler.start()
    collector.start()
    log.info("sandbay %s ready (instance %s)", sandbay.__version__, settings.resolved_instance())
    try:
        yield
    finally:
        await collector.stop()
        await app.state.toolbox.processes.close()
        await reconciler.stop()
        await docker_toolbox.close()
        await provider.close()
        await engine.dispose()


def _inside(
    app: FastAPI,
    settings: Settings,
    provider: DockerProvider,
    sessions: async_sessionmaker[AsyncSession],
    bus: EventBus,
) -> tuple[DockerToolbox, MetricsCollector]:
    """Exec, processes, files, logs (`app.state.toolbox`) and the metrics collector."""
    docker_toolbox = DockerToolbox.for_provider(provider, cgroups=settings.metrics_from_cgroups)
    processes = ProcessRegistry(
        docker_toolbox.runner,
        output_limit=settings.process_output_limit_bytes,
        keep_exited=settings.processes_kept_exited,
    )
    bus.add_listener(processes.on_event)
    app.state.toolbox = Toolbox(
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
    )
    collector = MetricsCollector(
        sessions=sessions,
        source=docker_toolbox.stats,
        instance=settings.resolved_instance(),
        interval=settings.metrics_interval,
        retention=timedelta(hours=settings.metrics_retention_hours),
    )
    return docker_toolbox, collector


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
    for module in (health, environments, keys, orgs, events, exec, files, observe):
        app.include_router(module.router)
    return app
