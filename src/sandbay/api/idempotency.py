"""`Idempotency-Key` on POST (every create): the first request with a key claims it
(a unique row per organization, key and route), runs, and its answer is stored;
a retry with the key and the same body gets that answer again (status, body,
`ETag` and `Location`, with `Idempotent-Replayed: true`). Retries that arrive
while the first still runs wait for its answer (up to `limits.idempotency_wait`,
then 409). The same key with another body is 422, as the IETF draft
(draft-ietf-httpapi-idempotency-key-header) says. Only a change that happened (a
2xx) is kept; a refused or failed request frees the key for a corrected retry. A
kept answer may hold a secret shown once (a new key, a token, a signing key), so it
is stored as Fernet ciphertext under a key derived from the server's secrets key."""

import asyncio
import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbay.api.errors import ErrorRenderers
from sandbay.db.models import IdempotencyKeyModel
from sandbay.db.queries import idempotency as queries
from sandbay.kit.clock import utcnow
from sandbay.services.agents.secrets import SecretBox

HEADER = b"idempotency-key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
_KEPT_HEADERS = {b"content-type", b"etag", b"location"}
_MAX_ANSWER = 1024 * 1024  # a create's answer is a few KiB; larger ones are not kept
_ABANDONED = 600.0  # a claim in progress this long lost its server: taken over


def idempotency_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            return str(value.decode("latin-1"))
    return None


@dataclass
class Idempotency:
    renderers: ErrorRenderers
    ttl: float
    wait: float
    max_body: int
    purged: float = field(default_factory=time.monotonic)

    async def handle(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        org_id: str,
        key: str,
    ) -> None:
        if not _KEY.match(key):
            return await self._refuse(
                scope, send, 400, "Idempotency-Key must be 1 to 255 printable ASCII characters"
            )
        body = await _read_body(receive, self.max_body)
        if body is None:
            return await self._refuse(
                scope, send, 413, f"a body with an Idempotency-Key is at most {self.max_body} bytes"
            )
        # Keyed: a body may hold a secret's value, and a plain hash of it would let
        # whoever reads the database test guesses at a weak one.
        fingerprint = hmac.new(
            box.derive_key("idempotency-fingerprint"), body, hashlib.sha256
        ).hexdigest()
        ref = (org_id, key, f"{scope['method']} {scope['path']}")
        await self._purge(sessions)
        deadline, pause = time.monotonic() + self.wait, 0.02
        sealer = _sealer(box)
        while True:
            held = await queries.claim(
                sessions, ref, fingerprint, ttl=self.ttl, abandoned_after=_ABANDONED
            )
            if held is None:
                return await self._run(app, scope, receive, send, sessions, ref, body, sealer)
            if held.fingerprint != fingerprint:
                return await self._refuse(
                    scope, send, 422, "this Idempotency-Key was used with another request body"
                )
            if held.status_code is not None:
                try:
                    answer = sealer.decrypt(held.body or b"")
                except InvalidToken:
                    return await self._refuse(
                        scope, send, 409,
                        "the answer kept for this Idempotency-Key cannot be read "
                        "(the server's secrets key changed): retry with a new key",
                    )  # fmt: skip
                return await _replay(held, answer, send)
            if time.monotonic() >= deadline:
                return await self._refuse(
                    scope, send, 409, "a request with this Idempotency-Key is still in progress"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.25)

    async def _run(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        sessions: async_sessionmaker[AsyncSession],
        ref: queries.Ref,
        body: bytes,
        sealer: Fernet,
    ) -> None:
        """Run the request with its body replayed; keep a 2xx answer, else free the key."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []
        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await app(scope, replay_body, capture)
        except BaseException:
            await asyncio.shield(queries.release(sessions, ref))
            raise
        status, answer = int(start.get("status", 500)), b"".join(chunks)
        if 200 <= status < 300 and len(answer) <= _MAX_ANSWER:
            headers = [
                [n.decode("latin-1"), v.decode("latin-1")]
                for n, v in start.get("headers", [])
                if n.lower() in _KEPT_HEADERS
            ]
            sealed = sealer.encrypt(answer)
            await queries.store(sessions, ref, status_code=status, headers=headers, body=sealed)
        else:
            await queries.release(sessions, ref)

    async def _refuse(self, scope: Scope, send: Send, status: int, message: str) -> None:
        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        render = self.renderers.for_path(scope["path"])
        error_type = "conflict_error" if status == 409 else "invalid_request_error"
        response = render(Request(scope, nothing), status, error_type, message)
        await response(scope, nothing, send)

    async def _purge(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Expired keys of every organization go at most every ten minutes."""
        if time.monotonic() - self.purged > 600:
            self.purged = time.monotonic()
            await queries.purge_expired(sessions, utcnow())


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None past `limit` bytes (it is not read further)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _sealer(box: SecretBox) -> Fernet:
    """The Fernet of kept answers: its own key, derived from the secrets key."""
    return Fernet(base64.urlsafe_b64encode(box.derive_key("idempotency-answers")))


async def _replay(held: IdempotencyKeyModel, body: bytes, send: Send) -> None:
    headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in held.headers]
    headers += [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
    await send({"type": "http.response.start", "status": held.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
