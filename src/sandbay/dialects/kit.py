"""What every dialect needs to speak its platform over the native services: the
`Dialect` spec and its one installer, the platforms' timestamp format, numbers as
JSON clients expect them, commands as text, display names, coarse status words,
error bodies of one field, and native requests validated with the platform's own
400."""

import math
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp

from sandbay.api.errors import ErrorRenderers, Renderer
from sandbay.api.openapi import ErrorShape, ErrorShapes
from sandbay.domain.environments import NAME_RE
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.states import EnvState

ModelT = TypeVar("ModelT", bound=BaseModel)
WordT = TypeVar("WordT", bound=str)


@dataclass(frozen=True)
class Dialect:
    """One platform's surface: its routes, the path prefixes whose errors it answers
    in its own shape (rendered by `renderer`, declared in the OpenAPI document as
    `error_shape`, or the prefix's own in `prefix_error_shapes`), and the ASGI
    middleware its answers need."""

    name: str
    prefixes: tuple[str, ...]
    routers: tuple[APIRouter, ...]
    renderer: Renderer
    error_shape: ErrorShape
    middleware: tuple[Callable[[ASGIApp], ASGIApp], ...] = ()
    prefix_error_shapes: Mapping[str, ErrorShape] = field(default_factory=dict)


def install_dialects(
    app: FastAPI, renderers: ErrorRenderers, shapes: ErrorShapes, dialects: Iterable[Dialect]
) -> None:
    """Mount each dialect in order: its error shape for its prefixes (rendered, and
    declared in the document), its middleware, its routes."""
    for dialect in dialects:
        for prefix in dialect.prefixes:
            renderers.register(prefix, dialect.renderer)
            shapes.register(prefix, dialect.prefix_error_shapes.get(prefix, dialect.error_shape))
        for middleware in dialect.middleware:
            app.add_middleware(middleware)
        for router in dialect.routers:
            app.include_router(router)


def message_body(key: str) -> Renderer:
    """The renderer of a platform whose error body is one field holding the message
    (`{"error": "…"}`, `{"message": "…"}`), with the HTTP status."""

    def render(request: Request, status: int, error_type: str, message: str) -> JSONResponse:
        return JSONResponse({key: message}, status_code=status)

    return render


def coarse_states(
    *,
    starting: WordT,
    running: WordT,
    stopping: WordT,
    stopped: WordT,
    deleting: WordT,
    deleted: WordT,
    error: WordT,
) -> dict[EnvState, WordT]:
    """A platform's status words over sandbay's states, for the platforms without
    archives: a creation or a restore is starting, an archived environment stopped."""
    return {
        EnvState.CREATING: starting,
        EnvState.STARTING: starting,
        EnvState.RESTORING: starting,
        EnvState.RUNNING: running,
        # A paused environment's workload serves nothing: the platforms call it stopped.
        EnvState.PAUSING: stopping,
        EnvState.PAUSED: stopped,
        EnvState.RESUMING: starting,
        EnvState.STOPPING: stopping,
        EnvState.STOPPED: stopped,
        EnvState.ARCHIVING: stopped,
        EnvState.ARCHIVED: stopped,
        EnvState.DELETING: deleting,
        EnvState.DELETED: deleted,
        EnvState.ERROR: error,
    }


def iso_millis(value: datetime | None) -> str | None:
    """UTC with milliseconds and `Z` (JavaScript's `toISOString()`), as the three
    platforms print their times."""
    if value is None:
        return None
    moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def number(value: float) -> int | float:
    """A whole number as an integer (clients that read `integer` fields), else as is."""
    return int(value) if float(value).is_integer() else value


def whole_up(value: float) -> int:
    """A quota in whole units, rounded up (a 0.5-CPU sandbox shows 1 CPU)."""
    return max(0, math.ceil(value))


def command_text(command: list[str] | str | None) -> str | None:
    """A native command (argv list or shell string) as the shell line the platforms
    show."""
    if command is None or isinstance(command, str):
        return command
    return shlex.join(command)


def is_native_name(value: str) -> bool:
    """Whether a platform's display name can be the environment's own name."""
    return bool(NAME_RE.match(value)) and not value.startswith("env_")


def display_name(name: str, labels: dict[str, str], label: str) -> str:
    """The platform's display name: kept in `label` when it could not be the
    environment's name, else the name itself."""
    return labels.get(label) or name


def native(model: type[ModelT], **fields: Any) -> ModelT:
    """Build a native request from a platform's fields; a field the native API refuses
    is the platform's 400, not a server error."""
    try:
        return model(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err["msg"])
        raise InvalidRequest("; ".join(parts) or "invalid request") from exc
