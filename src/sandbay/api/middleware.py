"""Pure-ASGI input limits, enforced while the body is read and before any route or
authentication runs: body size per route class (JSON small, file uploads large),
counted over the `http.request` messages whether or not a Content-Length was sent;
and the contents of JSON bodies (nesting depth, NUL and lone surrogates in any
string) checked once for every route, dialects included, so no such value ever
reaches a database (PostgreSQL refuses NUL, neither stores a lone surrogate)."""

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbay.api.errors import ErrorRenderers
from sandbay.domain.limits import MAX_JSON_DEPTH

#: Routes whose bodies are files: the native upload routes, the Daytona toolbox's
#: bulk and single uploads (API key or signed URL). Only these get the large limit.
UPLOAD_PATHS = re.compile(
    r"^(/v1/environments/[^/]+/files(/upload)?"
    r"|/toolbox/[^/]+/files/(bulk-upload|upload-v2))/?$"
)

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]")


class BodyTooLarge(HTTPException):
    """Raised from `receive` the moment the body passes its limit; rendered as 413
    in the route's error shape by the handler of HTTP errors (or by `BodyLimits`)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the {limit}-byte limit")


@dataclass(frozen=True)
class _Problem:
    status: int
    message: str


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether `body` nests arrays and objects deeper than `limit` (strings skipped)."""
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", body))
    depth = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        if depth > limit:
            return True
    return False


def bad_string(value: Any) -> str | None:
    """The first string (key or value) in a decoded JSON document that holds a NUL
    or a lone UTF-16 surrogate, described for the error message; None if none."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a NUL character"
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return "a lone UTF-16 surrogate"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _json_problem(body: bytes) -> _Problem | None:
    if json_depth_exceeds(body, MAX_JSON_DEPTH):
        return _Problem(400, f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        decoded = json.loads(body)
    except ValueError:
        return None  # not JSON: the route says so in its own words
    found = bad_string(decoded)
    if found:
        return _Problem(400, f"strings may not contain {found}")
    return None


def _url_problem(scope: Scope) -> str | None:
    """A NUL (PostgreSQL refuses it in a query) or bytes that are not UTF-8 (which
    would be read as U+FFFD, another value than the one sent) in the URL."""
    query: bytes = scope.get("query_string", b"")
    if "\x00" in scope["path"] or b"%00" in query:
        return "the URL contains a NUL"
    raw = scope.get("raw_path") or scope["path"].encode()
    try:
        unquote_to_bytes(raw).decode()
        unquote_to_bytes(query.replace(b"+", b" ")).decode()
    except UnicodeDecodeError:
        return "the URL is not valid UTF-8 once percent-decoded"
    return None


def _is_json(headers: dict[bytes, bytes]) -> bool:
    # FastAPI reads a body without a content type as JSON too.
    kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return kind in (b"", b"application/json") or kind.endswith(b"+json")


class BodyLimits:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_json_bytes: int,
        max_upload_bytes: int,
        renderers: ErrorRenderers,
    ) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes
        self.renderers = renderers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if problem := _url_problem(scope):
            await self._refuse(scope, receive, send, _Problem(400, problem))
            return
        upload = UPLOAD_PATHS.match(scope["path"]) is not None
        limit = self.max_upload_bytes if upload else self.max_json_bytes
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await self._refuse(scope, receive, send, _Problem(413, _too_large(limit)))
            return
        if (
            not upload
            and scope["method"] in ("POST", "PUT", "PATCH", "DELETE")
            and _is_json(headers)
        ):
            await self._buffered(scope, receive, send, limit)
            return
        await self._counted(scope, receive, send, limit)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Read the (small) JSON body whole, check it, then hand it on as one message."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, _Problem(413, _too_large(limit)))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = _json_problem(body) if body else None
        if problem is not None:
            await self._refuse(scope, receive, send, problem)
            return
        whole: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Stream the body through, raising `BodyTooLarge` once it passes `limit`."""
        size = 0
        started = False

        async def counting() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise BodyTooLarge(limit)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except BodyTooLarge:
            # Escaped the route's handlers (e.g. read inside a streaming response).
            if started:
                raise
            await self._refuse(scope, receive, send, _Problem(413, _too_large(limit)))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, problem: _Problem) -> None:
        render = self.renderers.for_path(scope["path"])
        response = render(
            Request(scope, receive), problem.status, "invalid_request_error", problem.message
        )
        await response(scope, receive, send)


def _too_large(limit: int) -> str:
    return f"request body exceeds the {limit}-byte limit"


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
