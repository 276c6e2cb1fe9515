"""Pure-ASGI guard on JSON bodies: a request announcing more than the limit is
refused before its body is read (file uploads, which stream, are not JSON)."""

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbay.api.errors import ErrorRenderers


class JsonBodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int, renderers: ErrorRenderers) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.renderers = renderers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip()
            length = headers.get(b"content-length")
            size = int(length) if length and length.isdigit() else 0
            if ctype == b"application/json" and size > self.max_bytes:
                render = self.renderers.for_path(scope["path"])
                response = render(
                    Request(scope, receive),
                    413,
                    "invalid_request_error",
                    f"JSON body of {size} bytes exceeds the {self.max_bytes}-byte limit",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
