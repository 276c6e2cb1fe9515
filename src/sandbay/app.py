"""Composition root: `create_app(settings)` wires database, engine provider,
event bus, reconciler and routers. Nothing is built at import time."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import sandbay
from sandbay.api.deps import Services
from sandbay.api.errors import ErrorRenderers, install_error_handlers
from sandbay.api.middleware import JsonBodyLimit
from sandbay.api.routes import environments, events, health, keys, orgs, work
from sandbay.db import migrate
from sandbay.db.engine import create_engine
from sandbay.db.session import create_sessionmaker
from sandbay.dialects import qoder
from sandbay.domain.work import LeaseLimits
from sandbay.reconciler.loop import Reconciler
from sandbay.reconciler.work_items import WorkLeaseReaper
from sandbay.runtime.docker import DockerProvider
from sandbay.services.auth import ensure_bootstrap
from sandbay.services.bus import EventBus
from sandbay.services.environments import Placement
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
        work_wakeups=WorkWakeups(bus),
        work_limits=_lease_limits(settings),
    )
    reaper = WorkLeaseReaper(sessions=sessions, interval=settings.work_lease_interval)
    reconciler.start()
    reaper.start()
    log.info("sandbay %s ready (instance %s)", sandbay.__version__, settings.resolved_instance())
    try:
        yield
    finally:
        await reaper.stop()
        await reconciler.stop()
        await provider.close()
        await engine.dispose()


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
    for module in (health, environments, keys, orgs, events, work):
        app.include_router(module.router)
    qoder.install(app, renderers)
    return app
