"""The program one interpreter context runs inside an environment (`python3 -c` of
this file's text; never imported by the server). It executes cells in one persistent
namespace and speaks line-delimited JSON: cells `{"id", "code", "envs"}` on its
standard input; `ready`, then per cell `stdout`/`stderr` as produced, an `error`
and one `control` (`completed` or `interrupted`) on its standard output.

The protocol owns the original standard streams; the cells' fds 1 and 2 are pipes
whose contents become frames, so output of subprocesses and C code arrives too, and
`input()` reads an empty stdin instead of the protocol. SIGINT interrupts a running
cell (a timeout) and is ignored between cells."""

from __future__ import annotations

import codecs
import io
import json
import linecache
import os
import select
import signal
import sys
import threading
import traceback
from typing import Any


class Driver:
    def __init__(self) -> None:
        self.protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="replace")
        self.commands = os.fdopen(os.dup(0), "r", encoding="utf-8", errors="replace")
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        self.lock = threading.Lock()  # frames whole and in order
        self.cell: str | None = None  # id of the running cell; its output is tagged so
        self.running = False
        self.pipes: dict[int, str] = {}
        self.decoders: dict[int, Any] = {}
        for fd, stream in ((1, "stdout"), (2, "stderr")):
            read, write = os.pipe()
            os.dup2(write, fd)
            os.close(write)
            os.set_blocking(read, False)
            self.pipes[read] = stream
            self.decoders[read] = codecs.getincrementaldecoder("utf-8")("replace")
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115
        sys.stdout = self._text(1)
        sys.stderr = self._text(2)
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self.count = 0
        signal.signal(signal.SIGINT, self._interrupt)
        threading.Thread(target=self._pump, daemon=True).start()

    @staticmethod
    def _text(fd: int) -> io.TextIOWrapper:
        raw = os.fdopen(fd, "wb", buffering=0, closefd=False)
        return io.TextIOWrapper(
            raw, encoding="utf-8", errors="backslashreplace", line_buffering=True
        )

    def _interrupt(self, signum: int, frame: object) -> None:
        if self.running:
            raise KeyboardInterrupt

    def emit(self, frame: dict[str, Any]) -> None:
        """Write one frame; the caller holds the lock."""
        self.protocol.write(json.dumps(frame) + "\n")
        self.protocol.flush()

    def _drain(self, fd: int) -> None:
        """Forward what the pipe holds now; the caller holds the lock."""
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            text = self.decoders[fd].decode(data)
            if text and self.cell is not None:
                self.emit({"id": self.cell, "type": self.pipes[fd], "text": text})

    def _pump(self) -> None:
        while True:
            ready, _, _ = select.select(list(self.pipes), [], [])
            with self.lock:
                for fd in ready:
                    self._drain(fd)

    def _traceback(self, exc: BaseException) -> str:
        tb = exc.__traceback__
        tb = tb.tb_next if tb is not None else None  # the driver's own frame
        return "".join(traceback.format_exception(type(exc), exc, tb))

    def run(self, cell: str, code: str, envs: dict[str, str]) -> None:
        self.count += 1
        name = f"<cell {self.count}>"
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)
        saved = {key: os.environ.get(key) for key in envs}
        os.environ.update({str(k): str(v) for k, v in envs.items()})
        with self.lock:
            self.cell = cell
        error: dict[str, Any] | None = None
        control = "completed"
        self.running = True
        try:
            exec(compile(code, name, "exec"), self.namespace)  # noqa: S102
        except KeyboardInterrupt:
            control = "interrupted"
        except SystemExit:
            pass
        except BaseException as exc:
            error = {"name": type(exc).__name__, "value": str(exc)}
            error["traceback"] = self._traceback(exc)
        finally:
            self.running = False
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sys.stdout.flush()
        sys.stderr.flush()
        with self.lock:
            for fd in self.pipes:
                self._drain(fd)
            if error is not None:
                self.emit({"id": cell, "type": "error", **error})
            self.emit({"id": cell, "type": "control", "text": control})
            self.cell = None

    def serve(self) -> None:
        with self.lock:
            self.emit({"type": "ready", "cwd": os.getcwd(), "pid": os.getpid()})
        for line in self.commands:
            try:
                request = json.loads(line)
                envs = request.get("envs") or {}
                if not isinstance(envs, dict):
                    envs = {}
                self.run(str(request.get("id", "")), str(request.get("code", "")), envs)
            except (ValueError, AttributeError, KeyboardInterrupt):
                continue  # a malformed line, or an interrupt that came as a cell ended


if __name__ == "__main__":
    Driver().serve()
