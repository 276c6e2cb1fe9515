"""Running commands inside an environment: one-shot exec, background processes
(sessions) and their output, as the native API takes and gives them, and the
`ProcessSpec` the runtime receives."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from sandbay.domain.environments import EnvVars, _check_command, _check_signal

MAX_EXEC_TIMEOUT_S = 24 * 3600.0
MAX_STDIN_CHARS = 128 * 1024

Stream = Literal["stdout", "stderr"]


def _check_cwd(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith("/") or "\x00" in value or len(value) > 4096:
        raise ValueError("must be an absolute path without NUL bytes")
    return value


def _required(value: list[str] | str | None) -> list[str] | str:
    if value is None:
        raise ValueError("is required")
    return value


ExecCommand = Annotated[list[str] | str, AfterValidator(_check_command), AfterValidator(_required)]
Cwd = Annotated[str | None, AfterValidator(_check_cwd)]
User = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[0-9]+)?$")]
SignalName = Annotated[str, AfterValidator(_check_signal)]


def command_argv(command: list[str] | str) -> list[str]:
    """A shell string runs under `/bin/sh -c`; an argv list runs as given."""
    return ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)


class ExecRequest(BaseModel):
    """Run a command to completion (or until `timeout`, which kills its whole tree)."""

    model_config = ConfigDict(extra="forbid")

    command: ExecCommand = Field(description="argv list, or a shell string run by /bin/sh -c")
    cwd: Cwd = Field(None, description="Working directory; default /workspace")
    env: EnvVars = Field(default_factory=dict, description="Added to the environment's variables")
    user: User | None = Field(None, description="User (name or uid); default the environment's")
    timeout: float | None = Field(
        None,
        gt=0,
        le=MAX_EXEC_TIMEOUT_S,
        description="Seconds before the command and all its children are killed; "
        "default the server's exec timeout",
    )
    stdin: Annotated[str, StringConstraints(max_length=MAX_STDIN_CHARS)] | None = Field(
        None, description="Written to the command's standard input, which is then closed"
    )


class ExecResult(BaseModel):
    """The outcome of a command. A non-zero exit is a result, not an error. Each stream
    keeps at most the server's `exec_output_limit_bytes`; the rest is counted and
    dropped, and `*_truncated` says so (use the streaming form for large output)."""

    exit_code: int | None = Field(description="None if the engine did not report one")
    stdout: str
    stderr: str
    timed_out: bool
    duration_ms: int
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_bytes: int = Field(0, description="Bytes the command wrote to stdout in total")
    stderr_bytes: int = Field(0, description="Bytes the command wrote to stderr in total")


class ExecOutputEvent(BaseModel):
    """SSE `stdout` / `stderr` event of a streaming exec: output as produced (UTF-8)."""

    data: str


class ExecExitEvent(BaseModel):
    """SSE `exit` event, the last one of a streaming exec."""

    exit_code: int | None
    timed_out: bool
    duration_ms: int


class ProcessStatus(StrEnum):
    RUNNING = "running"
    EXITED = "exited"


class ProcessStart(BaseModel):
    """Start a background process (a session): it runs until it exits or is killed,
    its output is kept (the last `process_output_limit_bytes` of each stream)."""

    model_config = ConfigDict(extra="forbid")

    command: ExecCommand
    cwd: Cwd = None
    env: EnvVars = Field(default_factory=dict)
    user: User | None = None
    stdin: bool = Field(False, description="Keep standard input open for `…/stdin` writes")


class Process(BaseModel):
    """A background process started through the API."""

    id: str
    environment_id: str
    command: list[str] | str
    cwd: str | None
    user: str | None
    status: ProcessStatus
    pid: int | None = Field(description="Process id inside the environment (its session id)")
    exit_code: int | None
    stdin_open: bool
    started_at: datetime
    ended_at: datetime | None


class ProcessList(BaseModel):
    data: list[Process]


class ProcessOutput(BaseModel):
    """Output retained so far from the given byte offsets. `*_next_offset` is what to
    pass next time; `dropped` says older output was discarded before the offset."""

    stdout: str
    stderr: str
    stdout_next_offset: int
    stderr_next_offset: int
    dropped: bool
    status: ProcessStatus
    exit_code: int | None


class StdinWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: Annotated[str, StringConstraints(max_length=MAX_STDIN_CHARS)] = ""
    eof: bool = Field(False, description="Close standard input after writing")


class SignalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal: SignalName = Field(
        "SIGTERM", description="Sent to the process and every process it started"
    )


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """What a runtime needs to start a process inside an environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    #: Names the process must not inherit from the container's own environment (ones
    #: removed in place since it was created); `env` wins over them.
    unset: tuple[str, ...] = ()
    cwd: str | None = None
    user: str | None = None
    tty: bool = False
    stdin: bool = False
    #: Outlives its connection: its recent output is kept and it can be reattached
    #: (terminals); otherwise a dropped connection closes its stdin.
    keep: bool = False


@dataclass(frozen=True, slots=True)
class OutputChunk:
    stream: Stream
    data: bytes
