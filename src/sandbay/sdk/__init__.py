"""Python clients of the native API: `Sandbay` and `AsyncSandbay` (typed: answers
are the server's pydantic models, one exception per error type, waits, streams and
safe retries; docs/sdk.md), and `Client`, the small dict-based one the CLI uses."""

from sandbay.sdk.aio import AsyncSandbay
from sandbay.sdk.calls import Retry
from sandbay.sdk.client import Client
from sandbay.sdk.errors import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    ConflictError,
    EngineUnavailableError,
    FailedDependencyError,
    GoneError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    QuotaExceededError,
    RateLimitError,
    RunnerUnreachableError,
    RuntimeFailureError,
    SnapshotFailedError,
    WaitTimeoutError,
)
from sandbay.sdk.models import ExecOutput, ExecStreamEvent
from sandbay.sdk.sync import Sandbay

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AsyncSandbay",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "EngineUnavailableError",
    "ExecOutput",
    "ExecStreamEvent",
    "FailedDependencyError",
    "GoneError",
    "InternalServerError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "QuotaExceededError",
    "RateLimitError",
    "Retry",
    "RunnerUnreachableError",
    "RuntimeFailureError",
    "Sandbay",
    "SnapshotFailedError",
    "WaitTimeoutError",
]
