"""TCP ports and POSIX file sessions inside an environment, through its agent: each is
one switched connection. A port connection is dialled by the agent from inside the
environment's own network namespace (its policy applies), so any port works, even one
bound to loopback, and nothing is published on the host. The SSH gateway's `-L`
forwarding, the preview proxy and the OpenClaw relay share it."""

import asyncio
import json
import struct
from typing import Any

from sandbay.domain.errors import PortUnreachable
from sandbay.runtime.envd.channel import Channel, Stream

_FRAME = struct.Struct(">II")
_MAX_HEADER = 64 * 1024 * 1024


class PortStream:
    """`ByteStream` over a switched connection."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    async def read(self, limit: int) -> bytes:
        try:
            return await self._stream.read(limit)
        except OSError:
            return b""

    async def write(self, data: bytes) -> None:
        await self._stream.write(data)

    async def write_eof(self) -> None:
        self._stream.write_eof()

    def at_eof(self) -> bool:
        return self._stream.at_eof()

    async def close(self) -> None:
        self._stream.close()


class EnvdPorts:
    """`PortConnector` through the environment's agent."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def connect(
        self, environment_id: str, port: int, *, host: str = "127.0.0.1", user: str | None = None
    ) -> PortStream:
        try:
            stream = await self._channel.upgrade(
                environment_id, "GET", "/v1/connect", params={"port": port, "host": host}
            )
        except PortUnreachable as exc:
            raise PortUnreachable(
                f"cannot connect to {host}:{port} inside the environment: {exc.message}"
            ) from exc
        return PortStream(stream)


class EnvdFileSession:
    """`FileSession` over one agent file session; one operation at a time. Frames: a
    4-byte header length, a 4-byte payload length, a JSON header, the payload; paths
    travel as latin-1 strings of their raw bytes."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._lock = asyncio.Lock()

    async def call(self, op: str, *args: Any, data: bytes = b"") -> tuple[Any, bytes]:
        head = json.dumps({"op": op, "args": list(args)}).encode()
        async with self._lock:
            try:
                await self._stream.write(_FRAME.pack(len(head), len(data)) + head + data)
                head_len, payload_len = _FRAME.unpack(await self._stream.readexactly(8))
                if head_len > _MAX_HEADER:
                    raise OSError(5, "the file agent sent a malformed answer")
                answer = json.loads(await self._stream.readexactly(head_len))
                payload = await self._stream.readexactly(payload_len) if payload_len else b""
            except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
                raise OSError(5, "the file session ended (did the environment stop?)") from exc
        if "errno" in answer:
            raise OSError(int(answer["errno"]), str(answer["error"]))
        return answer["ok"], payload

    async def close(self) -> None:
        self._stream.close()


class EnvdFileAgent:
    """`FileAgent` through the environment's agent."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def open_session(self, environment_id: str, *, user: str | None) -> EnvdFileSession:
        stream = await self._channel.upgrade(
            environment_id, "GET", "/v1/fs", params={"user": user or ""}
        )
        return EnvdFileSession(stream)
