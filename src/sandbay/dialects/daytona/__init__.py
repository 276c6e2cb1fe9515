"""The Daytona dialect: Daytona's sandbox API at the root (`/sandbox…`, `/config`)
and its toolbox (`/toolbox/{sandboxId}/…`), in Daytona's shapes and error bodies, so
that Daytona's official Python SDK, pointed at sandbay (`api_url` = sandbay's base
URL), works unchanged. A thin adapter over the native services."""

from sandbay.dialects.kit import Dialect

from .errors import API_PREFIXES, TOOLBOX_PREFIX, render_error
from .sandboxes import config_router, router
from .toolbox import router as toolbox_router

DIALECT = Dialect(
    name="daytona",
    prefixes=(*API_PREFIXES, TOOLBOX_PREFIX),
    routers=(router, config_router, toolbox_router),
    renderer=render_error,
)
