"""What each SDK call sends and how its answer is read, once for the sync and the
async client: a `Call` names the method, path, query, body, the model of the answer,
and whether a retry is safe. The retry policy and the SSE decoding live here too."""

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from sandbay.domain.exec import ExecExitEvent, ExecOutputEvent
from sandbay.sdk.errors import STATUS_OF_TYPE, error_for
from sandbay.sdk.models import ExecOutput, ExecStreamEvent

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Methods HTTP defines as idempotent: repeating one leaves the same outcome.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Answers that say "not now" rather than "no": a proxy or engine hiccup, a rate limit.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Transport errors raised before a byte of the request left: safe for every method.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class _Default:
    """The client's own timeout (as opposed to None: no timeout)."""


DEFAULT = _Default()


def model(cls: type[M]) -> Callable[[Any], M]:
    return cls.model_validate


def adapter(shape: Any) -> Callable[[Any], Any]:
    """The parser of a non-model answer (`list[AgentRun]`, `WorkItem | None`)."""
    return TypeAdapter(shape).validate_python


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | _Default | None = DEFAULT
    #: A call that ran on the server cannot be undone: only idempotent ones retry.
    streamed_body: bool = False

    @property
    def retry_safe(self) -> bool:
        """GET, PUT, DELETE, and a POST carrying an Idempotency-Key (the server answers
        its retry with the first answer and does nothing again). A streamed upload
        cannot be sent twice."""
        if self.streamed_body:
            return False
        return self.method in IDEMPOTENT_METHODS or IDEMPOTENCY_HEADER in self.headers

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content
        if not isinstance(self.timeout, _Default):
            kwargs["timeout"] = self.timeout
        return kwargs


def keyed(idempotency_key: str | None = None) -> dict[str, str]:
    """Headers of a POST that changes something: an Idempotency-Key (a fresh one
    unless given), so the call may be retried without doing it twice."""
    return {IDEMPOTENCY_HEADER: idempotency_key or str(uuid.uuid4())}


def query(**values: Any) -> dict[str, Any]:
    """Query parameters, leaving out the ones not given (None)."""
    return {k: v for k, v in values.items() if v is not None}


def body(source: BaseModel | None, fields: dict[str, Any]) -> dict[str, Any]:
    """A request body from a domain model (only the fields set) and/or keywords (sent
    as they are, so the server's validation answers with its envelope)."""
    out = source.model_dump(mode="json", exclude_unset=True) if source is not None else {}
    return {**out, **fields}


@dataclass(frozen=True, slots=True)
class Retry:
    """Bounded retries with exponential backoff and jitter, honouring `Retry-After`
    (up to `max_delay`). `retries=0` turns them off."""

    retries: int = 3
    backoff: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        base = min(self.max_delay, self.backoff * 2.0**attempt)
        jittered = base / 2 + random.uniform(0, base / 2)  # noqa: S311 - not a secret
        return min(self.max_delay, max(jittered, retry_after or 0.0))

    def on_status(self, call: Call[Any], status: int, attempt: int) -> bool:
        return attempt < self.retries and call.retry_safe and status in RETRY_STATUSES

    def on_error(self, call: Call[Any], exc: httpx.TransportError, attempt: int) -> bool:
        if attempt >= self.retries:
            return False
        return isinstance(exc, NOT_SENT) or call.retry_safe


def parse_answer(call: Call[T], response: httpx.Response) -> T:
    return call.parse(response.json() if response.content else None)


def exec_event(event: str, data: str) -> ExecStreamEvent | None:
    """One SSE event of a streamed exec or a followed process; an `error` event (the
    command could not start) is raised as its ApiError subclass."""
    if event in ("stdout", "stderr"):
        chunk = ExecOutputEvent.model_validate_json(data)
        return ExecOutput(stream=event, data=chunk.data)
    if event == "exit":
        return ExecExitEvent.model_validate_json(data)
    if event == "error":
        err = TypeAdapter(dict[str, str]).validate_json(data)
        error_type = err.get("type", "api_error")
        status = STATUS_OF_TYPE.get(error_type, 500)
        raise error_for(status, error_type, err.get("message", "the command could not start"))
    return None
