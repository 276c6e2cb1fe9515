"""The model relay: how an agent inside an environment reaches its model provider
without the provider's key ever entering the environment. The agent is given the
relay's URL as its base URL and a relay credential as its API key; the relay
(outside the environment) checks the credential, swaps it for the provider's real
key and streams the provider's answer back.

A relay credential is `sbrelay.<kind>.<id>.<mac>`: an HMAC over what it opens (one
run, or one OpenClaw instance, and its environment) under a key derived from the
server's secrets key. Nothing is stored; it is valid only while what it names is
live (a running run, an undeleted instance of an undeleted environment), so it is
revoked when the run ends or the instance or environment is deleted, and it opens
nothing but that provider's API for that run."""

import base64
import hashlib
import hmac
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from sandbay.db.models import AgentInstanceModel, AgentRunModel, EnvironmentModel
from sandbay.db.queries import agents as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.agents import AgentRunStatus, ProviderKind
from sandbay.domain.errors import (
    AuthenticationFailed,
    FailedDependency,
    InvalidRequest,
    SandbayError,
)
from sandbay.domain.states import EnvState
from sandbay.services.agents.providers import Credentials, credentials
from sandbay.services.agents.secrets import SecretBox

log = logging.getLogger(__name__)

PREFIX = "sbrelay"
RUN, INSTANCE = "run", "inst"
#: Where the relay answers, on its own listener; the rest of the path is the provider's.
RELAY_PATH = "/v1/model-relay"
#: Headers not passed on: the caller's credential, hop-by-hop ones, and the host
#: (Content-Length is kept: the body streams on as it came, not re-chunked).
_DROPPED = frozenset(
    {
        "authorization", "x-api-key", "api-key", "cookie", "host",
        "connection", "keep-alive", "proxy-authorization", "proxy-connection", "te",
        "trailer", "transfer-encoding", "upgrade", "forwarded", "x-forwarded-for",
        "x-forwarded-host", "x-forwarded-proto", "x-real-ip",
    }
)  # fmt: skip
_DROPPED_ANSWER = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "set-cookie"}
)
_GONE = "this relay credential is not valid (unknown, or its run or instance has ended)"


def _mac(key: bytes, kind: str, ident: str, environment_id: str) -> str:
    digest = hmac.new(key, f"{kind}:{ident}:{environment_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Grant:
    """What a relay credential opens: one run's or one instance's provider."""

    kind: str
    ident: str
    environment_id: str


class RelayKeys:
    """Makes and checks relay credentials with a key of their own (derived from the
    secrets key, so replicas that share it agree and a restart keeps instances'
    credentials valid)."""

    def __init__(self, box: SecretBox) -> None:
        self._key = box.derive_key("model-relay")

    def __repr__(self) -> str:
        return "RelayKeys(…)"

    def for_run(self, run_id: str, environment_id: str) -> str:
        return f"{PREFIX}.{RUN}.{run_id}.{_mac(self._key, RUN, run_id, environment_id)}"

    def for_instance(self, environment_id: str) -> str:
        mac = _mac(self._key, INSTANCE, environment_id, environment_id)
        return f"{PREFIX}.{INSTANCE}.{environment_id}.{mac}"

    def parse(self, credential: str) -> tuple[str, str, str] | None:
        """(kind, id, mac) of a well-formed credential; None otherwise."""
        parts = credential.split(".")
        if len(parts) != 4 or parts[0] != PREFIX or parts[1] not in (RUN, INSTANCE):
            return None
        if not (0 < len(parts[2]) <= 64) or not parts[3]:
            return None
        return parts[1], parts[2], parts[3]

    def verify(self, kind: str, ident: str, environment_id: str, mac: str) -> bool:
        return hmac.compare_digest(_mac(self._key, kind, ident, environment_id), mac)


def presented(headers: Iterable[tuple[str, str]]) -> str | None:
    """The credential the caller sent: `x-api-key` (Anthropic) or a Bearer token."""
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("x-api-key", "api-key") and value.strip():
            return value.strip()
        if lowered == "authorization" and value[:7].lower() == "bearer ":
            return value[7:].strip()
    return None


def _live(env: EnvironmentModel | None) -> bool:
    return env is not None and env.state not in (EnvState.DELETING, EnvState.DELETED)


async def _provider_of(session: AsyncSession, kind: str, ident: str) -> tuple[str, str, str] | None:
    """(org, environment, provider name) of a live run or instance; None if it is not."""
    if kind == RUN:
        run = await session.get(AgentRunModel, ident)
        if run is None or run.status is not AgentRunStatus.RUNNING or run.provider is None:
            return None
        if not _live(await session.get(EnvironmentModel, run.environment_id)):
            return None
        return run.org_id, run.environment_id, run.provider
    instance = await session.get(AgentInstanceModel, ident)
    if instance is None or instance.deleted_at is not None:
        return None
    if not _live(await session.get(EnvironmentModel, ident)):
        return None
    return instance.org_id, ident, instance.provider_name


@dataclass
class ModelRelay:
    """The relay: credentials for the agents, their check, and the forwarding."""

    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    keys: RelayKeys
    http: httpx.AsyncClient
    #: An environment's address on the engine's network (`fresh`: not from a cache).
    locate: Callable[[str, bool], Awaitable[str]] | None = None
    #: What environments are told to call (set when the listener starts); None: no relay.
    base_url: str | None = None
    #: Whether callers reach the listener directly (no proxy), so a credential is
    #: taken only from its own environment's address.
    bind_peer: bool = False

    def url(self) -> str:
        """The base URL an agent inside an environment is given."""
        if self.base_url is None:
            raise FailedDependency(
                "the model relay is not listening on this server, so agents cannot reach "
                "a model (see docs/model-relay.md)"
            )
        return f"{self.base_url}{RELAY_PATH}"

    async def resolve(self, credential: str | None, peer: str | None) -> Credentials:
        """The provider a relay credential opens, when it comes from its own
        environment; 401 for anything else."""
        parsed = self.keys.parse(credential or "")
        if parsed is None:
            raise AuthenticationFailed("a relay credential is required (x-api-key or Bearer)")
        kind, ident, mac = parsed
        async with self.sessions() as session:
            found = await _provider_of(session, kind, ident)
            if found is None or not self.keys.verify(kind, ident, found[1], mac):
                raise AuthenticationFailed(_GONE)
            row = await queries.provider_named(session, found[0], found[2])
        if not await self._from_own_environment(found[1], peer):
            raise AuthenticationFailed("this relay credential belongs to another environment")
        if row is None:
            raise FailedDependency(f"model provider {found[2]!r} no longer exists")
        return credentials(self.box, row)

    async def _from_own_environment(self, environment_id: str, peer: str | None) -> bool:
        if not self.bind_peer or self.locate is None:
            return True
        if peer is None:
            return False
        for fresh in (False, True):  # a restarted container may have a new address
            try:
                if await self.locate(environment_id, fresh) == peer:
                    return True
            except SandbayError:
                return False
        return False

    async def open(
        self,
        creds: Credentials,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        body: AsyncIterator[bytes],
    ) -> httpx.Response:
        """Send the request on to the provider with its real key; the answer streams.
        The path stays under the provider's base URL (no `..` segment)."""
        if ".." in path.replace("\\", "/").split("/"):
            raise InvalidRequest("the path must not climb out of the provider's base URL")
        url = f"{creds.base_url.rstrip('/')}/{path.lstrip('/')}"
        if query:
            url = f"{url}?{query}"
        sent = [(k, v) for k, v in headers if k.lower() not in _DROPPED]
        if creds.kind is ProviderKind.ANTHROPIC:
            sent.append(("x-api-key", creds.api_key))
        else:
            sent.append(("authorization", f"Bearer {creds.api_key}"))
        request = self.http.build_request(method, url, headers=sent, content=body)
        return await self.http.send(request, stream=True)


def answer_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower() not in _DROPPED_ANSWER}


class RelayListener:
    """The relay's own HTTP listener (a `Loop`), on an address environments reach
    (the engine bridge's gateway by default) and serving nothing but the relay: the
    API stays where it was. Port 0 takes a free port."""

    name = "model-relay"

    def __init__(
        self,
        relay: ModelRelay,
        app: Any,
        *,
        bind: Callable[[], Awaitable[str | None]],
        port: int,
        advertised: str | None,
    ) -> None:
        self._relay = relay
        self._app = app
        self._bind = bind
        self._port = port
        self._advertised = advertised
        self._server: uvicorn.Server | None = None

    async def start(self) -> None:
        host = await self._bind()
        if host is None:
            log.warning("model relay: no address to listen on; agents cannot reach models")
            return
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, self._port))
        except OSError as exc:
            sock.close()
            log.warning("model relay: cannot listen on %s:%s: %s", host, self._port, exc)
            return
        sock.listen(128)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, lifespan="off", http="h11", access_log=False, log_level="warning",
            timeout_graceful_shutdown=2,
        )  # fmt: skip
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._server = server
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self._relay.base_url = (self._advertised or f"http://{shown}:{port}").rstrip("/")
        self._relay.bind_peer = self._advertised is None
        log.info("model relay listening on %s:%s", host, port)

    async def stop(self) -> None:
        self._relay.base_url = None
        if self._server is not None:
            server, self._server = self._server, None
            server.force_exit = True
            await server.shutdown()
