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
    KeyReach,
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
    """Mint a key; a caller cannot make a key wider than itself (permissions,
    environments, expiry)."""
    kind = KeyKind.ORGANIZATION if body.permissions is None else KeyKind.SCOPED
    if kind is KeyKind.ORGANIZATION and body.environment_ids is not None:
        raise InvalidRequest("environment_ids only applies to scoped keys")
    if not principal.is_admin:
        _refuse_wider(principal, _reach_of_new(kind, body), minting=True)
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
    """The organization's keys; a key limited to some environments sees only keys
    within its limit (the others would name environments it may not know of)."""
    org_id = require(principal, Permission.KEYS_READ)
    reach = principal.reach
    rows = await queries.keys_of(session, org_id)
    return [to_api(k) for k in rows if reach.covers_environments(k.environment_ids)]


def _reach_of_new(kind: KeyKind, body: ApiKeyCreate) -> KeyReach:
    return KeyReach(
        organization=kind is KeyKind.ORGANIZATION,
        permissions=frozenset(body.permissions or []),
        environment_ids=None if body.environment_ids is None else frozenset(body.environment_ids),
        expires_at=body.expires_at,
    )


def _reach_of_model(key: ApiKeyModel) -> KeyReach:
    return KeyReach(
        organization=key.kind == KeyKind.ORGANIZATION.value,
        permissions=frozenset(Permission(p) for p in key.permissions),
        environment_ids=None if key.environment_ids is None else frozenset(key.environment_ids),
        expires_at=key.expires_at,
    )


def _refuse_wider(principal: Principal, other: KeyReach, *, minting: bool) -> None:
    """403 naming the bound when `other` reaches further than the caller's key. A
    revoked key's environments are never named (they may be outside the caller's)."""
    reach = principal.reach
    excess = reach.excess(other)
    if excess is None:
        return
    bound, extra = excess
    verb = "create" if minting else "revoke"
    if bound == "organization":
        message = f"only an organization key can {verb} organization keys"
    elif bound == "permissions":
        listed = sorted(extra)
        message = (
            f"cannot grant permissions this key lacks: {listed}"
            if minting
            else f"cannot revoke a key with permissions this key lacks: {listed}"
        )
    elif bound == "environments":
        if not minting:
            message = "cannot revoke a key that reaches environments outside this key's limit"
        elif other.environment_ids is None:
            message = (
                "this key is limited to some environments: the new key must name "
                "environment_ids within that limit"
            )
        else:
            message = f"environment_ids outside this key's limit: {sorted(extra)}"
    else:
        assert reach.expires_at is not None
        limit = reach.expires_at.isoformat()
        message = (
            f"this key expires at {limit}: the new key must set expires_at no later"
            if minting
            else f"cannot revoke a key that outlives this one (it expires at {limit})"
        )
    raise PermissionDenied(f"{message} (a key cannot {verb} keys wider than itself)")


async def revoke_key(session: AsyncSession, principal: Principal, key_id: str) -> ApiKey:
    org_id = require(principal, Permission.KEYS_WRITE)
    key = await session.get(ApiKeyModel, key_id)
    if key is None or key.org_id != org_id:
        raise NotFound(f"no API key {key_id!r}")
    if key.id != principal.key_id:
        _refuse_wider(principal, _reach_of_model(key), minting=False)
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
