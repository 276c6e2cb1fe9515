"""Docker engine errors in the domain's terms, mapped in one table (httpx's
`map_exceptions`): the SDK's exceptions through `map_engine_errors()`, the streaming
path's error answers through `engine_error()`, an unreachable engine through
`engine_unreachable()`."""

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import requests
from docker import errors as sdk

from sandbay.domain.errors import (
    Conflict,
    ContainerNotFound,
    EngineUnavailable,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RuntimeFailure,
    SandbayError,
)


class Meaning(NamedTuple):
    """What one engine error answer means, by who asked."""

    #: To the provider's own calls (lifecycle, and the short calls its abilities make),
    #: which name a container the platform believes exists: a refusal is the runtime
    #: failing (502, retried by the reconciler).
    failure: type[RuntimeFailure]
    #: To a request streamed through to the engine (a file to read or write, logs to
    #: follow, a process to attach), which may name what is not there: the caller's 4xx.
    answer: type[SandbayError]


#: Engine answer status → its meaning; any other status is a plain `RuntimeFailure`.
ENGINE_ERRORS: dict[int, Meaning] = {
    400: Meaning(RuntimeFailure, InvalidRequest),
    404: Meaning(ContainerNotFound, NotFound),
    409: Meaning(RuntimeFailure, Conflict),
    413: Meaning(RuntimeFailure, PayloadTooLarge),
}
_OTHER = Meaning(RuntimeFailure, RuntimeFailure)
#: The SDK's way of saying the engine could not be reached at all (no socket, refused,
#: reset): a 503; any other SDK failure is the engine failing (502).
_UNREACHABLE = (requests.exceptions.ConnectionError,)


def engine_error(status: int | None, message: str, *, answer: bool = False) -> SandbayError:
    """The domain error for an engine error answer; `answer` reads it as the answer to
    a streamed request rather than as a failure of the provider's own call."""
    meaning = ENGINE_ERRORS.get(status, _OTHER) if status is not None else _OTHER
    error = meaning.answer if answer else meaning.failure
    message = message.strip() or f"engine answered {status}"
    # A plain failure says where it came from; the named ones speak for themselves.
    return RuntimeFailure(f"docker: {message}") if error is RuntimeFailure else error(message)


def engine_unreachable(exc: BaseException | str) -> EngineUnavailable:
    """The engine is not there (restarting, upgrading, its host rebooting): a 503."""
    return EngineUnavailable(f"the container engine is unavailable, try again shortly: {exc}")


@contextlib.contextmanager
def map_engine_errors() -> Iterator[None]:
    """Raise the domain's error for a docker SDK error inside the block: around a call
    run on a thread, or around the await of one."""
    try:
        yield
    except sdk.APIError as exc:
        status = 404 if isinstance(exc, sdk.NotFound) else exc.status_code
        raise engine_error(status, str(exc.explanation or exc)) from exc
    except _UNREACHABLE as exc:
        raise engine_unreachable(exc) from exc
    except sdk.DockerException as exc:
        raise RuntimeFailure(f"docker: {exc}") from exc
