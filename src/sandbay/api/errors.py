"""One error envelope for the native API: {"error": {"type", "message"}}.
Domain errors carry their own type and status; this module only renders them."""

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbay.domain.errors import ConcurrentUpdate, SandbayError
from sandbay.kit.prefixes import ByPrefix

log = logging.getLogger(__name__)

#: Renders (status, type, message) for one surface, given the request it answers
#: (its path, method and headers go into some platforms' bodies). Dialects register
#: their own by path prefix, so each platform keeps its documented error shape.
Renderer = Callable[[Request, int, str, str], Response]

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    410: "gone_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "engine_unavailable",
}


def envelope(request: Request, status: int, error_type: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": error_type, "message": message}}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "json_invalid":
            msg = "request body is not valid JSON"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


class ErrorRenderers(ByPrefix[Renderer]):
    """Picks the renderer for a request by the longest matching path prefix (the
    native envelope under no dialect's)."""

    def __init__(self) -> None:
        super().__init__(envelope)


def install_error_handlers(app: FastAPI, renderers: ErrorRenderers) -> None:
    def render(request: Request, status: int, error_type: str, message: str) -> Response:
        return renderers.for_path(request.url.path)(request, status, error_type, message)

    @app.exception_handler(SandbayError)
    async def domain_error(request: Request, exc: SandbayError) -> Response:
        response = render(request, exc.status_code, exc.error_type, exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return render(request, 400, "invalid_request_error", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error_type = _STATUS_TYPES.get(exc.status_code, "api_error")
        return render(request, exc.status_code, error_type, str(exc.detail))

    @app.exception_handler(StaleDataError)
    async def lost_race(request: Request, exc: StaleDataError) -> Response:
        # A write that lost the compare-and-set to the reconciler or another request
        # and was not retried: the caller's retry is right, a 500 is not.
        log.info("lost a compare-and-set on %s %s", request.method, request.url.path)
        lost = ConcurrentUpdate("the object changed under this request; try again")
        return render(request, lost.status_code, lost.error_type, lost.message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render(request, 500, "api_error", "internal error")
