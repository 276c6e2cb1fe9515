"""API keys of an organization: create (secret shown once), list, revoke."""

from sandbay.db.models import ApiKeyModel
from sandbay.db.queries import tenancy as queries
from sandbay.db.session import AsyncSession, after_commit
from sandbay.domain import ids
from sandbay.domain.errors import InvalidRequest, NotFound, PermissionDenied
from sandbay.domain.keys import (
    DISPLAY_PREFIX_LEN,
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    KeyKind,
    Permission,
    Principal,
    generate_key,
    hash_key,
)
from sandbay.kit.clock import utcnow
from sandbay.services.events.record import record_event
from sandbay.services.tenancy.auth import KeyCache, require


def to_api(key: ApiKeyModel) -> ApiKey:
    return ApiKey.model_validate(key)


async def create_key(
    session: AsyncSession, principal: Principal, body: ApiKeyCreate
) -> ApiKeyCreated:
    org_id = require(principal, Permission.KEYS_WRITE)
    return await issue_key(session, org_id, body, principal)


async def issue_key(
    session: AsyncSession, org_id: str, body: ApiKeyCreate, principal: Principal
) -> ApiKeyCreated:
    """Mint a key; a scoped caller cannot grant what it does not have itself."""
    kind = KeyKind.ORGANIZATION if body.permissions is None else KeyKind.SCOPED
    if not principal.is_admin and principal.kind is not KeyKind.ORGANIZATION:
        if kind is KeyKind.ORGANIZATION:
            raise PermissionDenied("only an organization key can create organization keys")
        missing = set(body.permissions or []) - principal.permissions
        if missing:
            raise PermissionDenied(
                f"cannot grant permissions this key lacks: {sorted(p.value for p in missing)}"
            )
    if kind is KeyKind.ORGANIZATION and body.environment_ids is not None:
        raise InvalidRequest("environment_ids only applies to scoped keys")
    now = utcnow()
    if body.expires_at is not None and body.expires_at <= now:
        raise InvalidRequest("expires_at must be in the future")
    secret = generate_key(kind)
    model = ApiKeyModel(
        id=ids.new_id(ids.API_KEY),
        org_id=org_id,
        name=body.name,
        kind=kind.value,
        prefix=secret[:DISPLAY_PREFIX_LEN],
        key_hash=hash_key(secret),
        permissions=sorted({p.value for p in body.permissions or []}),
        environment_ids=body.environment_ids,
        created_at=now,
        expires_at=body.expires_at,
    )
    session.add(model)
    record_event(
        session, org_id=org_id, type="key.created", actor=principal.actor, data={"key_id": model.id}
    )
    await session.flush()
    return ApiKeyCreated(**to_api(model).model_dump(), key=secret)


async def list_keys(session: AsyncSession, principal: Principal) -> list[ApiKey]:
    org_id = require(principal, Permission.KEYS_READ)
    return [to_api(k) for k in await queries.keys_of(session, org_id)]


async def revoke_key(session: AsyncSession, principal: Principal, key_id: str) -> ApiKey:
    org_id = require(principal, Permission.KEYS_WRITE)
    key = await session.get(ApiKeyModel, key_id)
    if key is None or key.org_id != org_id:
        raise NotFound(f"no API key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        cache: KeyCache | None = session.sync_session.info.get("key_cache")
        if cache is not None:
            after_commit(session, cache.clear)
        record_event(
            session,
            org_id=org_id,
            type="key.revoked",
            actor=principal.actor,
            data={"key_id": key.id},
        )
        await session.flush()
    return to_api(key)
