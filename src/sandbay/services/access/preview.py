"""Preview access: tokens and links through the API, and the gate the preview proxy
asks on every request (is the environment there and running, is it public, does
this token open it). The gate caches its answers for a moment, so a burst of asset
requests costs one database read; a revoked token or a stop is seen within
`CACHE_SECONDS`, and a stopped workload refuses connections anyway."""

import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from sandbay.db.models import EnvironmentModel, PreviewTokenModel
from sandbay.db.queries import access as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain import ids
from sandbay.domain.access import PreviewLink, PreviewToken, PreviewTokenCreate, preview_label
from sandbay.domain.environments import EnvironmentKind, Event
from sandbay.domain.errors import Conflict
from sandbay.domain.keys import Permission, Principal, hash_key
from sandbay.domain.states import EnvState
from sandbay.kit.clock import utcnow
from sandbay.services.access.ssh import TtlLimits
from sandbay.services.environments.activity import record_activity
from sandbay.services.environments.records import get_environment
from sandbay.services.events.record import record_environment_event

TOKEN_PREFIX = "sbp_"  # noqa: S105  (a prefix, not a secret)
PREVIEW = Permission.ENVIRONMENTS_EXEC
CACHE_SECONDS = 2.0
ACTIVITY_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class PreviewUrls:
    """How preview URLs are spelled for clients: `{scheme}://{label}.{domain}{:port}`."""

    scheme: str
    domain: str
    port: int | None  # None: the default port of the scheme
    api_base: str  # for the path form

    def host_url(self, label: str) -> str:
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{label}.{self.domain}{port}/"

    def path_url(self, environment_id: str, port: int) -> str:
        return f"{self.api_base.rstrip('/')}/preview/{environment_id}/{port}/"


async def issue_token(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    body: PreviewTokenCreate,
    *,
    ttl: TtlLimits,
) -> PreviewToken:
    env = await get_environment(session, principal, id_or_name, PREVIEW)
    if env.kind is EnvironmentKind.SELF_HOSTED:
        raise Conflict("a self-hosted environment runs on its own worker: no preview here")
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    model = PreviewTokenModel(
        id=ids.new_id(ids.PREVIEW_TOKEN),
        org_id=env.org_id,
        environment_id=env.id,
        token_hash=hash_key(token),
        port=body.port,
        created_by=principal.actor,
        created_at=utcnow(),
        expires_at=ttl.expiry(body.expires_in),
    )
    session.add(model)
    record_environment_event(
        session,
        env,
        "environment.preview_token_issued",
        actor=principal.actor,
        data={"token_id": model.id, "port": body.port},
    )
    await session.flush()
    return PreviewToken(
        id=model.id,
        environment_id=env.id,
        port=body.port,
        token=token,
        expires_at=model.expires_at,
    )


async def preview_link(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    port: int,
    *,
    urls: PreviewUrls,
    ttl: TtlLimits,
) -> PreviewLink:
    """The URLs of a port, with a token for that port when the environment is private."""
    env = await get_environment(session, principal, id_or_name, PREVIEW)
    token: PreviewToken | None = None
    if not env.public:
        token = await issue_token(
            session, principal, env.id, PreviewTokenCreate(port=port), ttl=ttl
        )
    return PreviewLink(
        environment_id=env.id,
        port=port,
        public=env.public,
        url=urls.host_url(preview_label(env.id, port)),
        path_url=urls.path_url(env.id, port),
        token=token.token if token else None,
        expires_at=token.expires_at if token else None,
    )


@dataclass(frozen=True, slots=True)
class PreviewTarget:
    environment_id: str
    org_id: str
    state: EnvState
    public: bool
    managed: bool
    user: str | None


@dataclass(frozen=True, slots=True)
class _TokenGrant:
    environment_id: str
    port: int | None
    expires_at: datetime
    revoked: bool
    signed: bool = False


class PreviewGate:
    """What the preview proxy asks before it forwards a request."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._targets: dict[str, tuple[float, PreviewTarget | None]] = {}
        self._tokens: dict[str, tuple[float, _TokenGrant | None]] = {}
        self._touched: dict[str, float] = {}

    def on_event(self, event: Event) -> None:
        """Bus listener: a change of state or settings is seen at once."""
        if event.environment_id:
            self._targets.pop(event.environment_id, None)

    async def target(self, environment_id: str) -> PreviewTarget | None:
        now = time.monotonic()
        cached = self._targets.get(environment_id)
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        async with self._sessions() as session:
            env = await session.get(EnvironmentModel, environment_id)
            found = None
            if env is not None and env.deleted_at is None and env.pool_key is None:
                found = PreviewTarget(
                    env.id,
                    env.org_id,
                    env.state,
                    bool(env.public),
                    env.kind is EnvironmentKind.MANAGED,
                    env.user,
                )
        if len(self._targets) > 10_000:
            self._targets.clear()
        self._targets[environment_id] = (now, found)
        return found

    async def _grant(self, token: str) -> _TokenGrant | None:
        digest = hash_key(token)
        now = time.monotonic()
        cached = self._tokens.get(digest)
        if cached is None or now - cached[0] >= CACHE_SECONDS:
            async with self._sessions() as session:
                row = await queries.preview_token(session, digest)
                grant = (
                    _TokenGrant(
                        row.environment_id,
                        row.port,
                        row.expires_at,
                        row.revoked_at is not None,
                        bool(row.signed),
                    )
                    if row
                    else None
                )
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[digest] = cached = (now, grant)
        return cached[1]

    async def allows(self, token: str, environment_id: str, port: int) -> datetime | None:
        """When `token` expires if it opens `port` of the environment now, else None
        (a signed URL's token is not a header token)."""
        grant = await self._grant(token)
        if (
            grant is None
            or grant.signed
            or grant.revoked
            or grant.environment_id != environment_id
            or grant.port not in (None, port)
            or grant.expires_at <= utcnow()
        ):
            return None
        return grant.expires_at

    async def signed(self, token: str, port: int) -> tuple[str, datetime] | None:
        """The environment a signed URL's token opens `port` of now, and when it
        expires; None when it is not one, or expired, or expired early."""
        grant = await self._grant(token)
        if (
            grant is None
            or not grant.signed
            or grant.revoked
            or grant.port != port
            or grant.expires_at <= utcnow()
        ):
            return None
        return grant.environment_id, grant.expires_at

    def forget_token(self, token: str) -> None:
        """Drop a cached answer (a token expired by this process is refused at once)."""
        self._tokens.pop(hash_key(token), None)

    async def touch(self, environment_id: str) -> None:
        """Preview traffic is activity (at most one write per ACTIVITY_EVERY_S)."""
        now = time.monotonic()
        if now - self._touched.get(environment_id, 0.0) < ACTIVITY_EVERY_S:
            return
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[environment_id] = now
        async with self._sessions() as session:
            await record_activity(session, environment_id)
            await session.commit()
