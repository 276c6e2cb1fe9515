"""LSP's JSON-RPC over one language server's stdin and stdout, through the agent: our
requests matched to their answers by id, each one time-bound (a late answer is
cancelled and dropped), and the server's own requests (configuration, progress,
registrations) answered at once with nothing, so a server waiting on them never
stalls. When the process ends every waiting request is told why."""

import asyncio
import contextlib
import itertools
import logging
from typing import Any

from sandbay.domain.errors import InvalidRequest, SandbayError, WaitTimeout
from sandbay.domain.lsp import FramingError, MessageReader, encode_message
from sandbay.runtime.inside import ProcessHandle

log = logging.getLogger(__name__)

_STDERR_TAIL = 2048
_SHUTDOWN_S = 3.0


class ServerGone(InvalidRequest):
    """The language server's process ended (or never spoke LSP)."""


class Connection:
    """One running language server, spoken to in LSP."""

    def __init__(self, handle: ProcessHandle, name: str) -> None:
        self.handle = handle
        self.name = name
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._stderr = bytearray()
        self._ended: str | None = None
        self._task = asyncio.create_task(self._read(), name=f"language server {name}")

    @property
    def alive(self) -> bool:
        return self._ended is None

    def gone(self) -> ServerGone:
        said = self._stderr.decode(errors="replace").strip().splitlines()[-3:]
        tail = f": {' / '.join(said)}" if said else ""
        ended = self._ended or "ended"
        return ServerGone(f"the {self.name} language server {ended}{tail}; start it again")

    async def _read(self) -> None:
        reader = MessageReader()
        why = "has exited"
        try:
            async for chunk in self.handle.output():
                if chunk.stream == "stderr":
                    self._stderr = (self._stderr + chunk.data)[-_STDERR_TAIL:]
                    continue
                for message in reader.feed(chunk.data):
                    await self._dispatch(message)
        except FramingError as exc:
            why = f"does not speak LSP ({exc})"
        except SandbayError as exc:
            why = f"was cut off ({exc.message})"
        except Exception:
            log.exception("language server reader failed")
            why = "was cut off"
        finally:
            self._ended = why
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(self.gone())
            self._pending.clear()

    async def _dispatch(self, message: dict[str, Any]) -> None:
        method, ident = message.get("method"), message.get("id")
        if isinstance(method, str):
            if ident is not None:  # the server asks something of us
                await self._answer(ident, method, message.get("params"))
            return  # a notification (diagnostics, logs): nobody here reads them
        future = self._pending.pop(ident, None) if isinstance(ident, int) else None
        if future is None or future.done():
            return
        error = message.get("error")
        if isinstance(error, dict):
            text = str(error.get("message") or error.get("code") or "an error")
            future.set_exception(InvalidRequest(f"the {self.name} language server: {text}"))
        else:
            future.set_result(message.get("result"))

    async def _answer(self, ident: Any, method: str, params: Any) -> None:
        result: Any = None
        if method == "workspace/configuration" and isinstance(params, dict):
            items = params.get("items")
            result = [None] * len(items) if isinstance(items, list) else []
        with contextlib.suppress(SandbayError):
            await self._send({"jsonrpc": "2.0", "id": ident, "result": result})

    async def _send(self, message: dict[str, Any]) -> None:
        if not self.alive:
            raise self.gone()
        try:
            await self.handle.write(encode_message(message))
        except SandbayError as exc:
            raise self.gone() from exc

    async def notify(self, method: str, params: Any) -> None:
        await self._send({"jsonrpc": "2.0", "method": method, "params": params})

    async def request(self, method: str, params: Any, *, timeout: float) -> Any:
        """The server's answer to `method`; 408 when it has none within `timeout`,
        400 when it answers with an error or is gone."""
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            await self._send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            with contextlib.suppress(SandbayError):
                await self.notify("$/cancelRequest", {"id": ident})
            raise WaitTimeout(
                f"the {self.name} language server did not answer {method} within {timeout:g}s"
            ) from None
        finally:
            self._pending.pop(ident, None)
            if not future.done():
                future.cancel()

    async def close(self) -> None:
        """Ask the server to shut down, then end its process (and what it started)."""
        if self.alive:
            with contextlib.suppress(SandbayError):
                await self.request("shutdown", None, timeout=_SHUTDOWN_S)
                await self.notify("exit", None)
        with contextlib.suppress(Exception):
            await self.handle.kill()
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
        with contextlib.suppress(Exception):
            await self.handle.close()
