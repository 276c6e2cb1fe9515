"""uvicorn's h11 protocol, answering what it cannot parse with the API's envelope.

A request line and headers past `SANDBAY_MAX_HEADER_BYTES`, or a malformed request,
never reach the application: uvicorn answers it with a bare text 400 and closes the
connection while the client may still be sending, which resets it before the client
reads the answer. This protocol answers the native JSON envelope and closes gently
(it stops writing, reads and drops what still arrives, then closes), so the client
gets a 400 it can parse rather than a reset.
"""

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: How long an answered bad request may keep sending before the connection closes.
LINGER_SECONDS = 5.0
MESSAGE = (
    "the request line or headers are malformed, or longer than the server accepts "
    "(SANDBAY_MAX_HEADER_BYTES)"
)


class EnvelopeH11Protocol(H11Protocol):
    _draining = False

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": {"type": "invalid_request_error", "message": MESSAGE}})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body.encode()),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._draining = True
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if not self._draining:
            super().data_received(data)

    def eof_received(self) -> None:
        if self._draining:
            self.transport.close()
