"""The SDK's exception tree: one class per error type of the native envelope
({"error": {"type", "message"}}), all under `ApiError`, so `except ApiError` catches
every refusal and `except NotFoundError` only the one a caller can handle.

    ApiError                         (status, type, message; the base, as before)
    ├── ApiConnectionError           0   connection_error (the server was not reached)
    ├── InvalidRequestError          400/413/422 invalid_request_error
    │   └── QuotaExceededError       400 invalid_request_error ("quota_exceeded: …")
    ├── AuthenticationError          401 authentication_error
    ├── PermissionDeniedError        403 permission_error
    ├── NotFoundError                404 not_found_error
    ├── WaitTimeoutError             408 timeout_error (also an SDK wait that ran out)
    ├── ConflictError                409 conflict_error
    │   └── SnapshotFailedError      (a waited-for snapshot ended `failed`)
    ├── GoneError                    410 gone_error
    ├── PreconditionFailedError      412 precondition_failed_error
    ├── FailedDependencyError        424 failed_dependency_error
    ├── RateLimitError               429 rate_limit_error
    ├── InternalServerError          500 api_error
    └── RuntimeFailureError          502 runtime_error (the container engine failed)
        └── EngineUnavailableError   503 engine_unavailable
            └── RunnerUnreachableError  503 runner_unreachable (its Swarm node is down)

The server's own tree is sandbay.domain.errors; its `error_type` names are the keys
here, so the two cannot drift apart silently (tests/sdk/test_typed_sdk.py checks it).
"""

import httpx

QUOTA_PREFIX = "quota_exceeded:"


class ApiError(Exception):
    """A refusal or failure of the API: its HTTP status (0 when the server was not
    reached), the envelope's `type` and `message`, and `Retry-After` when sent."""

    def __init__(
        self, status: int, error_type: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {error_type}: {message}")
        self.status = status
        self.type = error_type
        self.message = message
        self.retry_after = retry_after


class ApiConnectionError(ApiError):
    """The server could not be reached (refused, reset, timed out, TLS)."""


class InvalidRequestError(ApiError):
    """The request was malformed or not allowed as given (400, 413, 422)."""


class QuotaExceededError(InvalidRequestError):
    """The organization's quota refused it (a 400 whose message starts with
    `quota_exceeded:`)."""


class AuthenticationError(ApiError):
    """No key, an unknown key, a revoked or expired one (401)."""


class PermissionDeniedError(ApiError):
    """The key may not do this, or not to this environment (403)."""


class NotFoundError(ApiError):
    """No such object (or one the key may not see) (404)."""


class WaitTimeoutError(ApiError):
    """A wait ran out before the state was reached (408)."""


class ConflictError(ApiError):
    """The object is in a state that refuses the request (409)."""


class SnapshotFailedError(ConflictError):
    """A snapshot being waited for ended `failed` (its `error` is the message)."""


class GoneError(ApiError):
    """It existed and has ended for good (410)."""


class PreconditionFailedError(ApiError):
    """A conditional request's precondition did not hold (412): a lost lease, or an
    `If-Match` naming another version."""


class FailedDependencyError(ApiError):
    """What the request depends on is missing, e.g. an agent's CLI or model (424)."""


class RateLimitError(ApiError):
    """Too many requests for the key or organization (429); see `retry_after`."""


class InternalServerError(ApiError):
    """The server failed unexpectedly (500)."""


class RuntimeFailureError(ApiError):
    """The container engine failed or refused (502)."""


class EngineUnavailableError(RuntimeFailureError):
    """The container engine cannot be reached for now (503); see `retry_after`."""


class RunnerUnreachableError(EngineUnavailableError):
    """The environment's runner (a Swarm node) is down (503): it waits for the node."""


#: The envelope's `type` → the class raised for it.
BY_TYPE: dict[str, type[ApiError]] = {
    "connection_error": ApiConnectionError,
    "invalid_request_error": InvalidRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "timeout_error": WaitTimeoutError,
    "conflict_error": ConflictError,
    "snapshot_failed": SnapshotFailedError,
    "gone_error": GoneError,
    "precondition_failed_error": PreconditionFailedError,
    "failed_dependency_error": FailedDependencyError,
    "rate_limit_error": RateLimitError,
    "api_error": InternalServerError,
    "runtime_error": RuntimeFailureError,
    "engine_unavailable": EngineUnavailableError,
    "runner_unreachable": RunnerUnreachableError,
}

#: For an answer without an envelope (a proxy's page): the class by status.
_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: WaitTimeoutError,
    409: ConflictError,
    410: GoneError,
    412: PreconditionFailedError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    424: FailedDependencyError,
    429: RateLimitError,
    500: InternalServerError,
    502: RuntimeFailureError,
    503: EngineUnavailableError,
}


#: The status an envelope type is sent with (for an error met inside a stream, whose
#: HTTP status was already 200).
STATUS_OF_TYPE: dict[str, int] = {
    t: status
    for status, cls in sorted(_BY_STATUS.items(), reverse=True)
    for t, c in BY_TYPE.items()
    if c is cls
}


def error_for(
    status: int, error_type: str, message: str, *, retry_after: float | None = None
) -> ApiError:
    """The most specific exception for an envelope (its type first, then its status)."""
    cls = BY_TYPE.get(error_type) or _BY_STATUS.get(status, ApiError)
    if cls is InvalidRequestError and message.startswith(QUOTA_PREFIX):
        cls = QuotaExceededError
    return cls(status, error_type, message, retry_after=retry_after)


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (the delay form; an HTTP date is not used by sandbay)."""
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def error_from_response(response: httpx.Response) -> ApiError:
    """The exception for an error answer whose body has been read."""
    wait = retry_after(response)
    try:
        err = response.json()["error"]
        return error_for(
            response.status_code, str(err["type"]), str(err["message"]), retry_after=wait
        )
    except (ValueError, KeyError, TypeError):
        # No envelope (a proxy's page): the class by status, the type as the old client gave.
        status = response.status_code
        cls = _BY_STATUS.get(status, ApiError)
        return cls(status, "api_error", response.text[:500], retry_after=wait)
