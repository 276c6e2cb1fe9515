"""Dependencies of the routes inside an environment: the Toolbox the lifespan built,
and, for WebSocket routes (where the HTTP security schemes do not apply), the
caller's Principal from the same headers."""

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from sandbay.api.deps import Services, resolve_principal
from sandbay.domain.errors import SandbayError
from sandbay.domain.keys import Principal
from sandbay.services.inside.service import Toolbox


async def get_toolbox(connection: HTTPConnection) -> Toolbox:
    toolbox: Toolbox = connection.app.state.toolbox
    return toolbox


ToolboxDep = Annotated[Toolbox, Depends(get_toolbox)]


async def connection_principal(connection: HTTPConnection) -> Principal:
    """Authenticate a WebSocket by `X-API-KEY` or `Authorization: Bearer`."""
    services: Services = connection.app.state.services
    secret = connection.headers.get("x-api-key")
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if not secret and scheme.lower() == "bearer":
        secret = token.strip()
    return await resolve_principal(services, secret)


def close_code(error: SandbayError) -> int:
    """WebSocket close code for a refusal: 4000 + the HTTP status (4404, 4409…)."""
    return 4000 + error.status_code
