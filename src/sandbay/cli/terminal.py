"""`sandbay env exec -it ENV -- CMD`: an interactive terminal through the API's PTY
WebSocket (`/v1/environments/{env}/pty`): the local terminal in raw mode, keystrokes
as binary frames, output written as it comes, the remote size following the local
one (SIGWINCH), and the remote exit code as ours."""

import contextlib
import json
import os
import select
import shlex
import shutil
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from types import FrameType
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from sandbay.cli._client import Exit, err_console

_TICK_S = 0.2  # how often the input loop looks at resizes and the socket's end


def _pty_url(api_url: str, env: str, argv: list[str], cwd: str | None) -> str:
    size = shutil.get_terminal_size()
    query: dict[str, str | int] = {"cols": size.columns, "rows": size.lines}
    if argv:
        query["command"] = shlex.join(argv)
    if cwd:
        query["cwd"] = cwd
    base = api_url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    return f"{base}/v1/environments/{env}/pty?{urlencode(query)}"


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    """The local terminal in raw mode (keys go through as typed), restored after."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        # TCSADRAIN, not setraw's default TCSAFLUSH: keys typed while connecting are
        # kept, not discarded.
        tty.setraw(fd, termios.TCSADRAIN)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class _Session:
    """One terminal: a thread writes what the socket brings; the calling thread sends
    keystrokes and resizes."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.exit_code: int | None = None
        self.closed = threading.Event()
        self.resized = threading.Event()

    def receive(self) -> None:
        out = sys.stdout.buffer
        try:
            for message in self.socket:
                if isinstance(message, bytes):
                    out.write(message)
                    out.flush()
                    continue
                control = json.loads(message)
                if control.get("type") == "exit":
                    self.exit_code = control.get("exit_code")
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    def send_size(self) -> None:
        size = shutil.get_terminal_size()
        resize = {"type": "resize", "cols": size.columns, "rows": size.lines}
        self.socket.send(json.dumps(resize))

    def pump_input(self, fd: int) -> None:
        reading = True
        while not self.closed.is_set():
            if self.resized.is_set():
                self.resized.clear()
                self.send_size()
            ready, _, _ = select.select([fd] if reading else [], [], [], _TICK_S)
            if ready:
                data = os.read(fd, 4096)
                if data:
                    self.socket.send(data)
                else:
                    reading = False  # stdin ended; the remote side decides when to stop


def run_terminal(
    api_url: str, api_key: str | None, env: str, argv: list[str], *, cwd: str | None
) -> int:
    """Attach the local terminal to a new one in `env` (its login shell, or `argv`);
    the remote exit code, or 4 (not found) / 1 when the API refuses."""
    headers = {"X-API-KEY": api_key} if api_key else {}
    try:
        socket = connect(_pty_url(api_url, env, argv, cwd), additional_headers=headers)
    except (InvalidStatus, OSError) as exc:
        err_console.print(f"[red]error[/red] could not open a terminal: {exc}")
        return Exit.API_ERROR
    session = _Session(socket)
    receiver = threading.Thread(target=session.receive, daemon=True)

    def on_resize(_signum: int, _frame: FrameType | None) -> None:
        session.resized.set()

    previous = signal.signal(signal.SIGWINCH, on_resize)
    fd = sys.stdin.fileno()
    try:
        with _raw(fd), contextlib.suppress(ConnectionClosed):
            # Output only once the terminal is raw: what is typed after the first
            # prompt shows goes through as typed (a cooked terminal echoed it locally).
            receiver.start()
            session.pump_input(fd)
    finally:
        signal.signal(signal.SIGWINCH, previous)
        socket.close()
        if receiver.ident is not None:
            receiver.join(timeout=5)
    if session.exit_code is not None:
        return int(session.exit_code)
    return _refusal(socket)


def _refusal(socket: ClientConnection) -> int:
    """The exit code for a socket closed without an exit message (4000 + HTTP status)."""
    code = socket.close_code
    if code is not None and code >= 4000:
        err_console.print(f"[red]error[/red] {code - 4000}: {socket.close_reason}")
        return Exit.NOT_FOUND if code == 4404 else Exit.API_ERROR
    err_console.print("[red]error[/red] the terminal connection was lost")
    return Exit.API_ERROR
