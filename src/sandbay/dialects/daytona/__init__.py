"""The Daytona dialect: Daytona's sandbox API at the root (`/sandbox…`, `/config`,
`/snapshots`, `/volumes`, `/secret`, `/preview`), its toolbox (`/toolbox/{sandboxId}/…`)
and its event stream (`/socket.io/`), in Daytona's shapes and error bodies, so that Daytona's
official Python SDK, pointed at sandbay (`api_url` = sandbay's base URL), works
unchanged. A thin adapter over the native services."""

from sandbay.dialects.error_shapes import DAYTONA_API, DAYTONA_TOOLBOX
from sandbay.dialects.kit import Dialect

from . import (
    access,
    git,
    interpreter,
    lsp,
    metrics,
    pools,
    pty,
    refused,
    secrets,
    sessions,
    signing,
    snapshots,
    storage,
    volumes,
)
from .errors import API_PREFIXES, TOOLBOX_PREFIX, render_error
from .events import socket_io
from .sandboxes import config_router, router
from .toolbox import router as toolbox_router

DIALECT = Dialect(
    name="daytona",
    prefixes=(*API_PREFIXES, TOOLBOX_PREFIX),
    routers=(
        access.router,
        signing.router,
        metrics.router,
        router,
        config_router,
        snapshots.router,
        volumes.router,
        secrets.router,
        pools.router,
        storage.router,
        sessions.router,
        pty.router,
        interpreter.router,
        git.router,
        lsp.router,
        toolbox_router,
        refused.router,
    ),
    renderer=render_error,
    error_shape=DAYTONA_API,
    prefix_error_shapes={TOOLBOX_PREFIX: DAYTONA_TOOLBOX},
    middleware=(socket_io,),
)
