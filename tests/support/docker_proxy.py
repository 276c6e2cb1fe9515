"""A Docker API proxy on a unix socket that forwards to the real engine, except
requests matching a rule, which it leaves unanswered (a hung engine call). Fault
injection for the hang detector: everything else is the real Docker."""

import asyncio
import re
import threading
from pathlib import Path

import h11

DOCKER_SOCKET = "/var/run/docker.sock"


class DockerFaultProxy:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.hang: list[tuple[str, re.Pattern[str]]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def hang_on(self, method: str, path_regex: str) -> None:
        self.hang.append((method, re.compile(path_regex)))

    def clear(self) -> None:
        self.hang.clear()

    def start(self) -> "DockerFaultProxy":
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_unix_server(self._serve, path=str(self.socket_path)), self._loop
        )
        self._server = fut.result(10)
        return self

    def close(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request per connection: it is forwarded with `Connection: close` and the
        answer piped back, so the client reconnects for the next one."""
        try:
            conn = h11.Connection(h11.SERVER)
            request: h11.Request | None = None
            body = b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            assert request is not None
            method, target = request.method.decode(), request.target.decode()
            if any(m == method and rx.search(target) for m, rx in self.hang):
                await asyncio.Event().wait()  # never answer
            up_reader, up_writer = await asyncio.open_unix_connection(DOCKER_SOCKET)
            headers = [
                (k, v)
                for k, v in request.headers
                if k.lower() not in (b"connection", b"content-length")
            ]
            head = f"{method} {target} HTTP/1.1\r\n".encode()
            head += b"".join(k + b": " + v + b"\r\n" for k, v in headers)
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            up_writer.write(head + body)
            await up_writer.drain()
            while chunk := await up_reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            up_writer.close()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
