"""The exception tree. Each error carries its envelope type and HTTP status, so
routes never build HTTP errors and one handler renders them all.

    SandbayError
    ├── InvalidRequest          400 invalid_request_error
    │   └── QuotaExceeded       400 invalid_request_error ("quota_exceeded: …")
    ├── AuthenticationFailed    401 authentication_error
    ├── PermissionDenied        403 permission_error
    │   └── PathDenied          (the environment's user may not touch a path)
    ├── NotFound                404 not_found_error
    │   └── PathNotFound        (a path inside a running environment)
    ├── WaitTimeout             408 timeout_error
    ├── Conflict                409 conflict_error
    │   ├── InvalidTransition   (state machine refused it)
    │   │   └── WrongState      (a strict request met a state it refuses)
    │   └── ConcurrentUpdate    (compare-and-set lost too many times)
    ├── Gone                    410 gone_error (it existed and has ended for good)
    ├── PreconditionFailed      412 precondition_failed_error (a worker lost its lease)
    ├── PayloadTooLarge         413 invalid_request_error
    ├── FailedDependency        424 failed_dependency_error (an agent cannot run there)
    ├── RateLimited             429 rate_limit_error
    ├── ApiError                500 api_error
    └── RuntimeFailure          502 runtime_error   (the container engine failed;
        │                                            retried unless `permanent`)
        ├── EngineUnavailable   503 engine_unavailable (the engine cannot be reached:
        │   │                    restarting, upgrading; with `Retry-After`)
        │   └── RunnerUnreachable  503 runner_unreachable (its Swarm node is down)
        ├── ImageMissing        (permanent: neither on the runner nor pullable)
        ├── ContainerNotFound   (an engine 404 on the provider's own calls)
        └── PortUnreachable     (nothing accepts connections on a port inside)
"""


class SandbayError(Exception):
    """Base of every error the platform raises on purpose."""

    status_code: int = 500
    error_type: str = "api_error"
    #: Seconds after which the same request may succeed (rendered as `Retry-After`).
    retry_after: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(SandbayError):
    status_code = 400
    error_type = "invalid_request_error"


class QuotaExceeded(InvalidRequest):
    def __init__(self, message: str) -> None:
        super().__init__(f"quota_exceeded: {message}")


class AuthenticationFailed(SandbayError):
    status_code = 401
    error_type = "authentication_error"


class PermissionDenied(SandbayError):
    status_code = 403
    error_type = "permission_error"


class PathDenied(PermissionDenied):
    """The environment's user may not do this to a path inside it (EACCES, EPERM)."""


class NotFound(SandbayError):
    status_code = 404
    error_type = "not_found_error"


class PathNotFound(NotFound):
    """A path inside an environment is missing (the environment itself is there), so
    a dialect can name it as its platform does (Daytona's FILE_NOT_FOUND)."""


class WaitTimeout(SandbayError):
    status_code = 408
    error_type = "timeout_error"


class Conflict(SandbayError):
    status_code = 409
    error_type = "conflict_error"


class InvalidTransition(Conflict):
    """The state machine does not allow this move from the current state."""


class WrongState(InvalidTransition):
    """A request that only applies in some states (a dialect's strict stop, start or
    delete) met another; `state` lets each surface word its own refusal."""

    def __init__(self, message: str, *, state: str) -> None:
        super().__init__(message)
        self.state = state


class ConcurrentUpdate(Conflict):
    """Another writer kept winning the compare-and-set; the caller may retry."""


class Gone(SandbayError):
    """What was asked of has ended and cannot take it any more (input to a finished
    command), as opposed to never having existed (404)."""

    status_code = 410
    error_type = "gone_error"


class PayloadTooLarge(SandbayError):
    status_code = 413
    error_type = "invalid_request_error"


class RateLimited(SandbayError):
    status_code = 429
    error_type = "rate_limit_error"


class ApiError(SandbayError):
    status_code = 500
    error_type = "api_error"


class RuntimeFailure(SandbayError):
    """The container engine failed or refused; the reconciler retries these unless
    the failure is `permanent` (trying again cannot help)."""

    status_code = 502
    error_type = "runtime_error"
    permanent: bool = False


class EngineUnavailable(RuntimeFailure):
    """The container engine cannot be reached (restarting, upgrading, its host
    rebooting): a request that needs it may succeed soon, so it is a 503 with
    `Retry-After`, and the reconciler keeps retrying without counting it as a failure
    of the environment."""

    status_code = 503
    error_type = "engine_unavailable"
    retry_after = 5


class RunnerUnreachable(EngineUnavailable):
    """The environment's runner (a Swarm node) is down or gone: its environments wait
    for it, nothing is deleted, and calls on them are a 503 until it is back."""

    error_type = "runner_unreachable"


class ImageMissing(RuntimeFailure):
    """The image is not on the runner and could not be pulled."""

    permanent = True


class ContainerNotFound(RuntimeFailure):
    pass


class PortUnreachable(RuntimeFailure):
    """Nothing accepted a connection on a port inside an environment (a proxy's 502)."""


class PreconditionFailed(SandbayError):
    """A conditional request's precondition (e.g. `expected_last_heartbeat`) did not hold."""

    status_code = 412
    error_type = "precondition_failed_error"


class FailedDependency(SandbayError):
    """What the request depends on is missing: the environment cannot run the agent
    (not running, agent CLI not installed in its image, no model credentials)."""

    status_code = 424
    error_type = "failed_dependency_error"
