"""Optional abilities for reaching an environment from outside, each a small
protocol: a byte stream to a TCP port inside it (SSH `-L` forwarding and the preview
proxy share this one mechanism), a file-operations session (the SSH gateway's SFTP
and scp), and its network policy, enforced from the host."""

from typing import Any, Protocol

from sandbay.domain.runtime import NetworkRules


class ByteStream(Protocol):
    """A duplex byte stream (one reader, one writer at a time)."""

    async def read(self, limit: int) -> bytes:
        """Up to `limit` bytes; b"" once the other side has finished sending."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def write_eof(self) -> None:
        """Half-close: the other side reads the end, and may still answer."""
        ...

    def at_eof(self) -> bool:
        """True once the other side has finished sending (nothing left to read)."""
        ...

    async def close(self) -> None:
        """Drop the stream; whatever carried it inside the environment ends too."""
        ...


class PortConnector(Protocol):
    async def connect(
        self, environment_id: str, port: int, *, host: str = "127.0.0.1", user: str | None = None
    ) -> ByteStream:
        """A connection to `host:port` as seen from inside the environment (its own
        network namespace: its policy applies). Raises `PortUnreachable` when nothing
        accepts it, `Conflict` when the environment's workload is not running."""
        ...


class FileSession(Protocol):
    """POSIX file operations inside an environment, as one user, in one session
    (open file descriptors live as long as it does). Failures raise `OSError` with
    the errno the environment's kernel gave."""

    async def call(self, op: str, *args: Any, data: bytes = b"") -> tuple[Any, bytes]:
        """Run one operation: its result and its payload (read data)."""
        ...

    async def close(self) -> None: ...


class FileAgent(Protocol):
    async def open_session(self, environment_id: str, *, user: str | None) -> FileSession: ...


class NetworkPolicy(Protocol):
    async def apply(self, environment_id: str, rules: NetworkRules, *, fresh: bool = False) -> None:
        """Enforce `rules` on the running environment at once (no restart), from
        outside its reach; unrestricted rules lift every restriction. `fresh`: the
        workload was just started (nothing of an earlier policy is left to lift).
        Raises `RuntimeFailure` when they cannot be enforced."""
        ...
