"""The error answers of every operation in `/openapi.json`, declared in one place.

Routes declare their successes; the refusals an operation can give come from the
layers around it (validation, authentication, rate limits, body limits, idempotency,
the engine) and are the same for every route of a kind, so they are added here to
the generated document: each with the error shape of the surface that answers it
(the native envelope, or a dialect's own, by the longest matching path prefix, as
`ErrorRenderers` picks the renderer)."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from sandbay.kit.prefixes import ByPrefix

Schema = dict[str, Any]

#: The native envelope, `{"error": {"type", "message"}}` (api/errors.py).
NATIVE_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
}
_DESCRIPTIONS = {
    400: "The request is malformed or a field is invalid",
    401: "No API key, or one that is unknown, revoked or expired",
    403: "The key may not do this",
    404: "No such object (or not visible to this key)",
    409: "The object's state or a concurrent change does not allow this now",
    412: "`If-Match` names another version",
    413: "The body is larger than this route accepts",
    422: "`Idempotency-Key` reused with another body",
    429: "Rate limited: retry after `Retry-After` seconds",
    502: "The environment's runtime or agent failed",
    503: "The container engine is unavailable: retry after `Retry-After` seconds",
}
_WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
#: Statuses FastAPI never produces for us: its 422 default (validation errors are
#: 400 here) is replaced.
_FASTAPI_VALIDATION_REF = "#/components/schemas/HTTPValidationError"


@dataclass(frozen=True)
class ErrorShape:
    """The error body one surface answers with, as a named component."""

    name: str
    schema: Schema


NATIVE = ErrorShape("Error", NATIVE_ERROR)


@dataclass(frozen=True)
class Operation:
    """What decides which refusals an operation can answer."""

    method: str
    spec: Schema

    def parameters(self, where: str) -> list[str]:
        params = self.spec.get("parameters", [])
        return [p["name"].lower() for p in params if p.get("in") == where]

    @property
    def authenticated(self) -> bool:
        return bool(self.spec.get("security"))

    @property
    def has_body(self) -> bool:
        return "requestBody" in self.spec


def error_statuses(op: Operation) -> set[int]:
    """The refusals `op` can answer besides what its route declares: 400 for any
    malformed request (NUL in the URL, a bad parameter or body), 404 where it names
    an object (in its path, or in its body), 401/403/429/503 once a key is involved
    (the limiter and the engine sit behind authentication), 409 on writes (state, a
    lost compare-and-set, an idempotent create still in flight) and on an object's
    routes (one not running has no files, processes or metrics), 413/422 with a body
    (its size limit, an `Idempotency-Key` reused with another body), 412 with
    `If-Match`."""
    statuses = {400}
    if op.parameters("path") or (op.has_body and op.authenticated):
        statuses.add(404)
    if op.authenticated:
        statuses |= {401, 403, 429, 503}
    if op.method in _WRITE_METHODS or op.parameters("path"):
        statuses.add(409)
    if op.has_body or op.method in _WRITE_METHODS:
        statuses.add(413)
    if op.method == "post":
        statuses.add(422)
    if "if-match" in op.parameters("header"):
        statuses.add(412)
    return statuses


class ErrorShapes(ByPrefix[ErrorShape]):
    """The error shape of each path prefix (longest match wins, native by default):
    the dialects register theirs with their renderers (`dialects.kit`)."""

    def __init__(self) -> None:
        super().__init__(NATIVE)

    def all(self) -> Iterable[ErrorShape]:
        return {shape.name: shape for shape in self.values()}.values()


def _response(status: int, ref: str, existing: Schema | None) -> Schema:
    response = dict(existing or {})
    response.setdefault("description", _DESCRIPTIONS.get(status, "Refused"))
    content = response.get("content") or {}
    json_content = content.get("application/json", {})
    schema_ref = json_content.get("schema", {}).get("$ref")
    if "schema" not in json_content or schema_ref == _FASTAPI_VALIDATION_REF:
        content = {**content, "application/json": {"schema": {"$ref": ref}}}
    response["content"] = content
    if status in (429, 503):
        response["headers"] = {**_RETRY_AFTER, **response.get("headers", {})}
    return response


def sse_events(schema: Schema) -> Schema:
    """A `text/event-stream` body as its events (OpenAPI 3.2's reading, which
    validators apply): each event's `data` is JSON of `schema`."""
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": schema,
            },
        },
    }


def _declare_streams(responses: Schema) -> None:
    for response in responses.values():
        stream = response.get("content", {}).get("text/event-stream")
        if stream and "schema" in stream:
            stream["schema"] = sse_events(stream["schema"])


def declare_errors(schema: Schema, shapes: ErrorShapes) -> Schema:
    """Add the error answers of every operation of `schema` (in place) and the
    components they name."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for shape in shapes.all():
        components[shape.name] = shape.schema
    for path, item in schema.get("paths", {}).items():
        for method, spec in item.items():
            if not isinstance(spec, dict) or "responses" not in spec:
                continue
            op = Operation(method, spec)
            ref = f"#/components/schemas/{shapes.for_path(path).name}"
            responses: Schema = spec["responses"]
            _declare_streams(responses)
            statuses = error_statuses(op)
            validation = responses.get("422", {}).get("content", {})
            if "422" in responses and 422 not in statuses and _is_fastapi_422(validation):
                del responses["422"]
            for status in sorted(
                statuses | {int(s) for s in responses if s.startswith(("4", "5"))}
            ):
                responses[str(status)] = _response(status, ref, responses.get(str(status)))
    if _FASTAPI_VALIDATION_REF not in str(schema.get("paths")):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
    return schema


def _is_fastapi_422(content: Schema) -> bool:
    return bool(
        content.get("application/json", {}).get("schema", {}).get("$ref") == _FASTAPI_VALIDATION_REF
    )


def install_openapi(app: FastAPI, shapes: ErrorShapes) -> None:
    """Make `app.openapi()` return the generated document with its errors declared
    (once: FastAPI keeps the document it generated)."""
    generate = app.openapi

    def openapi() -> Schema:
        if app.openapi_schema is None:
            app.openapi_schema = declare_errors(generate(), shapes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
