"""Authentication: a secret from `X-API-KEY` or `Authorization: Bearer` becomes a
Principal; the bootstrap key makes scripted set-ups work on first start."""

import time
from datetime import datetime, timedelta

from sandbay.db.models import ApiKeyModel, OrganizationModel
from sandbay.db.queries import tenancy as queries
from sandbay.db.session import AsyncSession
from sandbay.domain import ids
from sandbay.domain.errors import AuthenticationFailed, PermissionDenied
from sandbay.domain.keys import KeyKind, Permission, Principal, hash_key, same_secret
from sandbay.kit.clock import utcnow

DEFAULT_ORG = "default"
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyCache:
    """Keys verified in the last `ttl` seconds, so most requests authenticate without
    a database read. Revoking a key clears this process's cache at once; other
    replicas stop honouring it within `ttl` (0 disables the cache)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[Principal, datetime | None, float]] = {}

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, key_expires, until = entry
        if time.monotonic() > until or (key_expires is not None and key_expires <= utcnow()):
            self._entries.pop(digest, None)
            return None
        return principal

    def put(self, digest: str, principal: Principal, key_expires: datetime | None) -> None:
        if self.ttl > 0:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (principal, key_expires, time.monotonic() + self.ttl)

    def drop(self, digest: str) -> None:
        self._entries.pop(digest, None)

    def clear(self) -> None:
        self._entries.clear()


def check_secret(secret: str | None, *, admin_key: str | None) -> Principal | None:
    """The cheap part: refuse a missing key, recognise the operator key."""
    if not secret:
        raise AuthenticationFailed("missing API key: send it as X-API-KEY or Authorization: Bearer")
    if admin_key and same_secret(secret, admin_key):
        return Principal(
            org_id=None, key_id=None, kind=None, permissions=frozenset(), is_admin=True
        )
    return None


async def authenticate(
    session: AsyncSession, secret: str | None, *, admin_key: str | None
) -> Principal:
    operator = check_secret(secret, admin_key=admin_key)
    if operator is not None:
        return operator
    assert secret is not None
    digest = hash_key(secret)
    cache: KeyCache | None = session.sync_session.info.get("key_cache")
    if cache is not None and (cached := cache.get(digest)) is not None:
        return cached
    key = await queries.key_by_hash(session, digest)
    now = utcnow()
    if key is None or key.revoked_at is not None:
        raise AuthenticationFailed("invalid API key")
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthenticationFailed("API key expired")
    # Touch last_used_at at minute resolution: one write a minute per key, not per request.
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        key.last_used_at = now
    principal = key_principal(key)
    if cache is not None:
        cache.put(digest, principal, key.expires_at)
    return principal


def key_principal(key: ApiKeyModel) -> Principal:
    """What a request made with `key` (or a dashboard session of it) may do."""
    return Principal(
        org_id=key.org_id,
        key_id=key.id,
        kind=KeyKind(key.kind),
        permissions=frozenset(Permission(p) for p in key.permissions),
        environment_ids=frozenset(key.environment_ids) if key.environment_ids is not None else None,
        expires_at=key.expires_at,
    )


def require(principal: Principal, permission: Permission) -> str:
    """The caller's organization, if it may do `permission` (403 otherwise)."""
    if principal.is_admin or principal.org_id is None:
        raise PermissionDenied("the operator key only manages organizations")
    if not principal.allows(permission):
        raise PermissionDenied(f"this key lacks the {permission.value!r} permission")
    return principal.org_id


def require_organization_wide(principal: Principal, permission: Permission) -> str:
    """`require`, for a change to an object of the whole organization (a volume, a
    snapshot, a warm pool, a model provider): a key limited to given environments reaches no further
    than them, so it may not make, change or delete what every environment shares."""
    org_id = require(principal, permission)
    if principal.environment_ids is not None:
        raise PermissionDenied(
            "a key restricted to given environments cannot change objects of the whole "
            "organization (volumes, snapshots, warm pools, model providers)"
        )
    return org_id


async def ensure_bootstrap(session: AsyncSession, secret: str) -> None:
    """Make sure org `default` exists with an organization key equal to `secret`."""
    org = await queries.org_named(session, DEFAULT_ORG)
    now = utcnow()
    if org is None:
        org = OrganizationModel(id=ids.new_id(ids.ORGANIZATION), name=DEFAULT_ORG, created_at=now)
        session.add(org)
        await session.flush()
    digest = hash_key(secret)
    existing = await queries.key_by_hash(session, digest)
    if existing is None:
        session.add(
            ApiKeyModel(
                id=ids.new_id(ids.API_KEY),
                org_id=org.id,
                name="bootstrap",
                kind=KeyKind.ORGANIZATION.value,
                prefix=secret[:12],
                key_hash=digest,
                permissions=[],
                created_at=now,
            )
        )
    elif existing.revoked_at is not None:
        existing.revoked_at = None
    await session.flush()
