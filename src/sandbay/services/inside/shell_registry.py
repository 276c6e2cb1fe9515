"""What this server holds of long-lived shells inside environments: process
sessions (one shell each, its commands run in order and share its state, each
command's output split out of the shell's own streams by markers the shell prints
around it) and named terminals (a kept TTY process the agent holds, followed here
to know when it ends). Held in memory, as a sandbox's daemon holds them: a server
restart forgets them."""

import asyncio
import contextlib
import logging
import secrets
import shlex
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbay.domain.errors import Conflict, NotFound, SandbayError
from sandbay.domain.exec import Stream
from sandbay.kit.clock import utcnow
from sandbay.runtime.inside import ProcessHandle
from sandbay.services.inside.held import HeldWhileRunning

log = logging.getLogger(__name__)

#: Each command's output kept (both streams together); a session forgets its oldest
#: finished commands past these.
TRANSCRIPT_LIMIT = 4 * 1024 * 1024
KEEP_COMMANDS = 200
SESSION_OUTPUT_BUDGET = 32 * 1024 * 1024
_RS = b"\x1e"
#: Runs bash if the image has it (what sandboxes' daemons pick), else sh.
SESSION_SHELL = ["/bin/sh", "-c", "command -v bash >/dev/null 2>&1 && exec bash || exec sh"]


class Changes:
    """Wakes whoever waits for more output or an end."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


class Transcript:
    """A command's output as produced, each piece labelled with its stream; the
    oldest pieces go once the whole passes `limit` bytes."""

    def __init__(self, limit: int = TRANSCRIPT_LIMIT) -> None:
        self.limit = limit
        self.pieces: list[tuple[Stream, bytes]] = []
        self.base = 0
        self.size = 0

    @property
    def end(self) -> int:
        return self.base + len(self.pieces)

    def add(self, stream: Stream, data: bytes) -> tuple[Stream, bytes]:
        piece = (stream, data)
        self.pieces.append(piece)
        self.size += len(data)
        while self.size > self.limit and len(self.pieces) > 1:
            self.size -= len(self.pieces.pop(0)[1])
            self.base += 1
        return piece

    def retract(self, piece: tuple[Stream, bytes]) -> None:
        """Take back a piece added here (input echoed before it was refused)."""
        for at, kept in enumerate(self.pieces):
            if kept is piece:  # emptied, not removed: followers' indexes stay right
                self.pieces[at] = (piece[0], b"")
                self.size -= len(piece[1])
                return

    def since(self, index: int) -> list[tuple[Stream, bytes]]:
        return self.pieces[max(0, index - self.base) :]

    def text(self, stream: Stream | None = None) -> str:
        data = b"".join(d for s, d in self.pieces if stream is None or s == stream)
        return data.decode(errors="replace")


@dataclass
class SessionCommand:
    id: str
    command: str
    echo_input: bool
    fifo: str
    output: Transcript = field(default_factory=Transcript)
    exit_code: int | None = None
    ends: set[str] = field(default_factory=set)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    hold: contextlib.AbstractContextManager[None] | None = None

    @property
    def running(self) -> bool:
        return not self.done.is_set()

    def finish(self, code: int) -> None:
        if self.done.is_set():
            return
        self.exit_code = code
        self.started.set()
        self.done.set()
        if self.hold is not None:
            self.hold.__exit__(None, None, None)
            self.hold = None


@dataclass(frozen=True, slots=True)
class Piece:
    """Output of command `command_id`."""

    command_id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Mark:
    """Command `command_id` starts (`exit_code` None) or ends on this stream."""

    command_id: str
    exit_code: int | None = None


class MarkerReader:
    """Splits one stream of a session's shell into its commands' output: the shell
    prints `RS token:s:ID RS` before command ID and `RS token:e:ID:CODE RS` after it
    on both streams; what lies between belongs to the command."""

    def __init__(self, token: str) -> None:
        self.prefix = _RS + token.encode() + b":"
        self.pending = b""
        self.current: str | None = None

    def feed(self, data: bytes) -> Iterator[Piece | Mark]:
        buf = self.pending + data
        while True:
            at = buf.find(self.prefix)
            if at < 0:
                keep = _partial(buf, self.prefix)
                yield from self._data(buf[: len(buf) - keep])
                self.pending = buf[len(buf) - keep :]
                return
            yield from self._data(buf[:at])
            close = buf.find(_RS, at + len(self.prefix))
            if close < 0 and len(buf) - at < 256:
                self.pending = buf[at:]
                return
            marker = self._marker(buf[at + len(self.prefix) : close]) if close >= 0 else None
            if marker is None:  # not one of ours after all: plain output
                yield from self._data(buf[at : at + 1])
                buf = buf[at + 1 :]
                continue
            if marker.exit_code is None:
                self.current = marker.command_id
            elif self.current == marker.command_id:
                self.current = None
            yield marker
            buf = buf[close + 1 :]

    def _data(self, data: bytes) -> Iterator[Piece]:
        if data and self.current is not None:
            yield Piece(self.current, data)

    @staticmethod
    def _marker(body: bytes) -> Mark | None:
        parts = body.decode(errors="replace").split(":")
        if len(parts) == 2 and parts[0] == "s":
            return Mark(parts[1])
        if len(parts) == 3 and parts[0] == "e" and parts[2].lstrip("-").isdigit():
            return Mark(parts[1], int(parts[2]))
        return None


def _partial(buf: bytes, prefix: bytes) -> int:
    """The length of the longest end of `buf` that could begin `prefix`."""
    for size in range(min(len(buf), len(prefix) - 1), 0, -1):
        if buf.endswith(prefix[:size]):
            return size
    return 0


@dataclass
class ShellSession:
    """One process session: a shell reading commands on its standard input."""

    name: str
    environment_id: str
    user: str | None
    handle: ProcessHandle
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    commands: dict[str, SessionCommand] = field(default_factory=dict)
    changes: Changes = field(default_factory=Changes)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def alive(self) -> bool:
        return not self.ended.is_set()

    def script(self, command: SessionCommand) -> bytes:
        """The line the shell reads to run `command` in itself (so `cd` and `export`
        last): its input from its own FIFO, its exit code between the end markers.
        `eval` keeps a syntax error the command's own (status 2), not the line's."""
        start = f"\\036{self.token}:s:{command.id}\\036"
        end = f"\\036{self.token}:e:{command.id}:%d\\036"
        fifo = shlex.quote(command.fifo)
        return (
            f"rm -f {fifo}; mkfifo -m 600 {fifo} 2>/dev/null; "
            f"printf '{start}'; printf '{start}' >&2; "
            f"{{ eval {shlex.quote(command.command)}; }} <>{fifo}; "
            f"__sandbay_rc=$?; rm -f {fifo}; printf '{end}' \"$__sandbay_rc\"; "
            f"printf '{end}' \"$__sandbay_rc\" >&2; unset __sandbay_rc\n"
        ).encode()

    def forget_old(self) -> None:
        total = sum(c.output.size for c in self.commands.values())
        for command in [c for c in self.commands.values() if not c.running]:
            if len(self.commands) <= KEEP_COMMANDS and total <= SESSION_OUTPUT_BUDGET:
                return
            total -= command.output.size
            self.commands.pop(command.id, None)

    async def drain(self) -> None:
        """Route the shell's output to its commands until the shell ends; then any
        command left unfinished ends with the shell's exit code."""
        readers = {"stdout": MarkerReader(self.token), "stderr": MarkerReader(self.token)}
        try:
            async for chunk in self.handle.output():
                for item in readers[chunk.stream].feed(chunk.data):
                    self._apply(chunk.stream, item)
                self.changes.notify()
            code = await self.handle.wait()
        except SandbayError as exc:
            log.info("session %s ended: %s", self.name, exc.message)
            code = None
        except Exception:
            log.exception("session %s failed", self.name)
            code = None
        finally:
            self.ended.set()
            with contextlib.suppress(Exception):
                await self.handle.close()
        for command in self.commands.values():
            command.finish(code if code is not None else 1)
        self.changes.notify()

    def _apply(self, stream: Stream, item: Piece | Mark) -> None:
        command = self.commands.get(item.command_id)
        if command is None:
            return
        if isinstance(item, Piece):
            command.output.add(stream, item.data)
        elif item.exit_code is None:
            command.started.set()  # its FIFO exists from now on
        else:
            command.ends.add(stream)
            if command.ends >= {"stdout", "stderr"}:
                command.finish(item.exit_code)


@dataclass
class Terminal:
    """A named terminal (Daytona's PTY session): a kept TTY process in the agent,
    reattached by its process id; `delivered` is how much of its output clients got."""

    name: str
    environment_id: str
    cwd: str | None
    envs: dict[str, str]
    cols: int
    rows: int
    lazy: bool
    created_at: datetime = field(default_factory=utcnow)
    monitor: ProcessHandle | None = None
    process_id: str | None = None
    delivered: int = 0
    exit_code: int | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def active(self) -> bool:
        return self.monitor is not None and not self.ended.is_set()

    async def follow(self) -> None:
        """Read the output nobody needs here (clients attach on their own), so the
        agent never waits on this connection, and learn the exit code."""
        assert self.monitor is not None
        try:
            async for _ in self.monitor.output():
                pass
            self.exit_code = await self.monitor.wait()
        except SandbayError:
            pass
        finally:
            self.ended.set()
            with contextlib.suppress(Exception):
                await self.monitor.close()


class ShellRegistry(HeldWhileRunning):
    """Every process session and named terminal of this server, by environment."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, ShellSession]] = {}
        self.terminals: dict[str, dict[str, Terminal]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def run(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_session(self, session: ShellSession) -> None:
        named = self.sessions.setdefault(session.environment_id, {})
        if session.name in named and named[session.name].alive:
            raise Conflict(f"session {session.name!r} already exists")
        named[session.name] = session
        self.run(session.drain(), f"session {session.name}")

    def session(self, environment_id: str, name: str) -> ShellSession:
        found = self.sessions.get(environment_id, {}).get(name)
        if found is None:
            raise NotFound("session not found")
        return found

    def drop_session(self, session: ShellSession) -> None:
        self.sessions.get(session.environment_id, {}).pop(session.name, None)

    def add_terminal(self, terminal: Terminal) -> None:
        named = self.terminals.setdefault(terminal.environment_id, {})
        if terminal.name in named and not named[terminal.name].ended.is_set():
            raise Conflict(f"PTY session with ID {terminal.name} already exists")
        named[terminal.name] = terminal

    def terminal(self, environment_id: str, name: str) -> Terminal:
        found = self.terminals.get(environment_id, {}).get(name)
        if found is None:
            raise NotFound(f"PTY session {name} not found")
        return found

    def drop_terminal(self, terminal: Terminal) -> None:
        self.terminals.get(terminal.environment_id, {}).pop(terminal.name, None)

    def drop_environment(self, environment_id: str) -> None:
        """An environment that leaves running loses its sessions and terminals: their
        processes end with its workload; what is left of them is killed here."""
        sessions = self.sessions.pop(environment_id, {}).values()
        terminals = self.terminals.pop(environment_id, {}).values()
        handles = [s.handle for s in sessions if s.alive]
        handles += [t.monitor for t in terminals if t.active and t.monitor is not None]
        if handles:
            self.run(_kill_all(handles), f"drop shells of {environment_id}")


async def _kill_all(handles: list[ProcessHandle]) -> None:
    async def kill(handle: ProcessHandle) -> None:
        with contextlib.suppress(Exception):  # the container may be gone already
            await asyncio.wait_for(handle.kill(), 10)

    await asyncio.gather(*(kill(h) for h in handles))
