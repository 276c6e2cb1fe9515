"""What an SSH channel runs inside the environment: a login shell or a single command
(with a PTY when the client asks for one, window resizes included) through the
runtime's exec, and `-L` forwarding through the runtime's port relay. Whatever the
channel started ends with it."""

import asyncio
import contextlib
import logging
from typing import Any

import asyncssh
from asyncssh.stream import SSHTCPStreamSession

from sandbay.domain.errors import SandbayError
from sandbay.domain.exec import ProcessSpec
from sandbay.runtime.access import ByteStream, PortConnector
from sandbay.runtime.inside import ProcessHandle, ProcessRunner
from sandbay.services.access.ssh import Login
from sandbay.services.inside.process_sessions import DEFAULT_SHELL

log = logging.getLogger(__name__)
_CHUNK = 65536
#: Variables a client may pass with SendEnv (OpenSSH's default AcceptEnv).
_ACCEPTED_ENV = ("LANG", "LC_")


def _spec(process: asyncssh.SSHServerProcess[bytes], login: Login) -> ProcessSpec:
    command = process.command
    env = dict(login.env)
    env.update(
        {k: v for k, v in process.env.items() if isinstance(k, str) and k.startswith(_ACCEPTED_ENV)}
    )
    tty = process.term_type is not None
    if tty:
        env["TERM"] = process.term_type or "xterm"
    return ProcessSpec(
        argv=["/bin/sh", "-c", command] if command else list(DEFAULT_SHELL),
        env={str(k): str(v) for k, v in env.items()},
        unset=login.unset,
        user=login.user,
        tty=tty,
        stdin=True,
    )


async def _pump_out(process: asyncssh.SSHServerProcess[bytes], handle: ProcessHandle) -> None:
    async for chunk in handle.output():
        target = process.stderr if chunk.stream == "stderr" else process.stdout
        target.write(chunk.data)
        await target.drain()


async def _pump_in(process: asyncssh.SSHServerProcess[bytes], handle: ProcessHandle) -> None:
    while True:
        try:
            data = await process.stdin.read(_CHUNK)
        except asyncssh.TerminalSizeChanged as change:
            await handle.resize(change.width, change.height)
            continue
        except asyncssh.SignalReceived as received:
            await handle.signal(received.signal)
            continue
        except asyncssh.BreakReceived:
            continue
        if not data:
            await handle.close_stdin()
            return
        await handle.write(data)


async def run_process(
    process: asyncssh.SSHServerProcess[bytes], login: Login, runner: ProcessRunner
) -> None:
    """Serve one shell or exec channel until the command ends or the client leaves."""
    try:
        handle = await runner.spawn(login.environment_id, _spec(process, login))
    except SandbayError as exc:
        process.stderr.write(f"sandbay: {exc.message}\r\n".encode())
        process.exit(255)
        return
    tasks: set[asyncio.Task[Any]] = set()
    try:
        await handle.started()  # the terminal exists once the command runs (else `wait` says why)
        width, height, _, _ = process.term_size
        if process.term_type is not None and width and height:
            await handle.resize(width, height)
        output = asyncio.create_task(_pump_out(process, handle))
        closed = asyncio.create_task(process.channel.wait_closed())
        tasks = {output, closed, asyncio.create_task(_pump_in(process, handle))}
        await asyncio.wait({output, closed}, return_when=asyncio.FIRST_COMPLETED)
        if output.done() and not closed.done():
            code = await handle.wait()
            process.exit(code if code is not None else 255)
        else:  # the client went away: nothing it started may outlive it
            await handle.kill()
    except SandbayError as exc:
        with contextlib.suppress(Exception):
            process.stderr.write(f"sandbay: {exc.message}\r\n".encode())
            process.exit(255)
    except (asyncssh.Error, OSError, BrokenPipeError):
        with contextlib.suppress(Exception):
            await handle.kill()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await handle.close()


async def _bridge(
    stream: ByteStream, reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]
) -> None:
    async def upstream() -> None:
        while data := await reader.read(_CHUNK):
            await stream.write(data)
        await stream.write_eof()

    async def downstream() -> None:
        while data := await stream.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        writer.write_eof()

    up = asyncio.create_task(upstream())
    down = asyncio.create_task(downstream())
    try:
        # Both directions end on their own (half-closes); an error in one ends both.
        pending: set[asyncio.Task[None]] = {up, down}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(t.exception() for t in done):
                break
    except Exception:
        log.debug("forwarded connection ended with an error", exc_info=True)
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        await stream.close()
        writer.close()


async def open_forward(
    ports: PortConnector, login: Login, host: str, port: int
) -> SSHTCPStreamSession[bytes]:
    """A `-L` connection to `host:port` as seen from inside the environment; the
    client hears "connect failed" with the reason when nothing listens there."""
    try:
        stream = await ports.connect(login.environment_id, port, host=host, user=login.user)
    except SandbayError as exc:
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, exc.message) from exc

    async def handler(reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]) -> None:
        await _bridge(stream, reader, writer)

    return SSHTCPStreamSession(handler)
