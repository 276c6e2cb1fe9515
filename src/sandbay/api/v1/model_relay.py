"""/v1/model-relay/{path}: the model relay agents inside environments call instead of
their provider (docs/model-relay.md). It is served by an app of its own on the
relay's listener, never by the public API: it takes a relay credential, not an API
key, and nothing else is reachable there."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from sandbay.api.errors import ErrorRenderers, install_error_handlers
from sandbay.domain.errors import RuntimeFailure
from sandbay.services.agents.relay import RELAY_PATH, ModelRelay, answer_headers, presented

router = APIRouter(tags=["model relay"])
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route(f"{RELAY_PATH}/{{path:path}}", methods=METHODS, response_class=Response)
async def relay(path: str, request: Request) -> Response:
    """Forward the request to the provider of the run or instance the relay credential
        (`x-api-key` or `Authorization: Bearer`) belongs to, with the provider's real key
        in place of it; the answer (server-sent events included) streams back as it
        comes. 401 for any other credential, or one sent from another address than its
    environment's; 502 when the provider cannot be reached."""
    model_relay: ModelRelay = request.app.state.relay
    peer = request.client.host if request.client else None
    creds = await model_relay.resolve(presented(request.headers.items()), peer)
    try:
        upstream = await model_relay.open(
            creds,
            request.method,
            path,
            request.url.query,
            request.headers.items(),
            request.stream(),
        )
    except httpx.HTTPError as exc:
        raise RuntimeFailure(f"the model provider did not answer: {type(exc).__name__}") from exc
    return StreamingResponse(
        _body(upstream), status_code=upstream.status_code, headers=answer_headers(upstream)
    )


async def _body(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """The provider's bytes as they come; its connection is closed however this ends
    (a client that goes away included)."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        await upstream.aclose()


def relay_app(model_relay: ModelRelay) -> Any:
    """The relay's own ASGI app: this one route, errors in the native envelope."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app, ErrorRenderers())
    app.state.relay = model_relay
    app.include_router(router)
    return app
