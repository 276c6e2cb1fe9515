"""The Daytona dialect: Daytona's sandbox API at the root (`/sandbox…`, `/config`)
and its toolbox (`/toolbox/{sandboxId}/…`), in Daytona's shapes and error bodies, so
that Daytona's official Python SDK, pointed at sandbay (`api_url` = sandbay's base
URL), works unchanged. A thin adapter over the native services."""

from fastapi import FastAPI

from sandbay.api.errors import ErrorRenderers

from .errors import (
    API_PREFIXES,
    TOOLBOX_PREFIX,
    RequestContext,
    render_api_error,
    render_toolbox_error,
)
from .sandboxes import config_router, router
from .toolbox import router as toolbox_router


def install(app: FastAPI, renderers: ErrorRenderers) -> None:
    """Mount the routes, Daytona's error shapes for their prefixes, and the request
    context those shapes need."""
    for prefix in API_PREFIXES:
        renderers.register(prefix, render_api_error)
    renderers.register(TOOLBOX_PREFIX, render_toolbox_error)
    app.add_middleware(RequestContext)
    for module_router in (router, config_router, toolbox_router):
        app.include_router(module_router)
