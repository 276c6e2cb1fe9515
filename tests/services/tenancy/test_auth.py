"""Who a secret is, what it may do, and what it may see: key authentication, the
cache of verified keys (revocation clears it; expiry and its TTL end an entry),
`require`, and scoping (another organization's environment, or one outside a
key's list, is not found, never forbidden)."""

from datetime import timedelta

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbay.db.models import OrganizationModel
from sandbay.domain.environments import StopRequest
from sandbay.domain.errors import AuthenticationFailed, NotFound, PermissionDenied
from sandbay.domain.keys import ApiKeyCreate, KeyKind, Permission, Principal, hash_key
from sandbay.domain.states import EnvState
from sandbay.kit.clock import utcnow
from sandbay.services.environments.lifecycle import Lifecycle
from sandbay.services.environments.records import environment_page, get_environment
from sandbay.services.events.audit import environment_events
from sandbay.services.tenancy.auth import KeyCache, authenticate, require
from sandbay.services.tenancy.keys import create_key as issue
from sandbay.services.tenancy.keys import revoke_key
from sandbay.services.tenancy.service import TenancyService
from tests.support.records import Key, create_environment_record, create_key, create_org

pytestmark = pytest.mark.anyio

OPERATOR_KEY = "operator-secret"


def refused(error: Exception, status: int, error_type: str) -> str:
    assert isinstance(error, AuthenticationFailed | PermissionDenied | NotFound)
    assert (error.status_code, error.error_type) == (status, error_type)
    return error.message


class TestAuthenticate:
    async def test_a_key_authenticates_as_its_principal_and_is_marked_used(
        self, session: AsyncSession, org: OrganizationModel
    ) -> None:
        key = await create_key(
            session, org=org, permissions=[Permission.ENVIRONMENTS_READ], environment_ids=["e"]
        )
        principal = await authenticate(session, key.secret, admin_key=OPERATOR_KEY)
        assert principal == key.principal
        assert (principal.kind, principal.environment_ids) == (KeyKind.SCOPED, frozenset({"e"}))
        assert principal.actor == f"key:{key.row.id}"
        await session.flush()
        await session.refresh(key.row)
        assert key.row.last_used_at is not None

    @pytest.mark.parametrize(
        ("secret", "why"),
        [(None, "missing API key"), ("", "missing API key"), ("sbk_org_nope", "invalid API key")],
    )
    async def test_a_missing_or_unknown_key_is_401(
        self, session: AsyncSession, secret: str | None, why: str
    ) -> None:
        with pytest.raises(AuthenticationFailed) as failed:
            await authenticate(session, secret, admin_key=OPERATOR_KEY)
        assert why in refused(failed.value, 401, "authentication_error")

    async def test_an_expired_key_is_401(
        self, session: AsyncSession, org: OrganizationModel
    ) -> None:
        key = await create_key(session, org=org, expires_at=utcnow() - timedelta(seconds=1))
        with pytest.raises(AuthenticationFailed) as failed:
            await authenticate(session, key.secret, admin_key=OPERATOR_KEY)
        assert refused(failed.value, 401, "authentication_error") == "API key expired"

    async def test_the_operator_key_manages_organizations_only(self, session: AsyncSession) -> None:
        operator = await authenticate(session, OPERATOR_KEY, admin_key=OPERATOR_KEY)
        assert operator.is_admin and operator.actor == "admin"
        with pytest.raises(PermissionDenied) as denied:
            require(operator, Permission.ENVIRONMENTS_READ)
        assert "operator key" in refused(denied.value, 403, "permission_error")


class TestKeyCache:
    async def test_a_verified_key_is_cached_and_revoking_it_clears_the_cache_on_commit(
        self,
        session: AsyncSession,
        sessions: async_sessionmaker[AsyncSession],
        key_cache: KeyCache,
        org: OrganizationModel,
        owner: Key,
    ) -> None:
        temp = await create_key(session, org=org, name="temp")
        await session.commit()
        tenancy = TenancyService(sessions, key_cache, admin_key=OPERATOR_KEY)
        assert await tenancy.resolve_principal(temp.secret) == temp.principal
        assert key_cache.get(hash_key(temp.secret)) == temp.principal

        revoked = await revoke_key(session, owner.principal, temp.row.id)
        assert revoked.revoked_at is not None
        assert key_cache.get(hash_key(temp.secret)) is not None  # not before it commits
        await session.commit()
        assert key_cache.get(hash_key(temp.secret)) is None
        with pytest.raises(AuthenticationFailed) as failed:
            await tenancy.resolve_principal(temp.secret)
        assert refused(failed.value, 401, "authentication_error") == "invalid API key"

    async def test_a_cached_key_is_dropped_once_the_key_expires(
        self,
        session: AsyncSession,
        sessions: async_sessionmaker[AsyncSession],
        key_cache: KeyCache,
        org: OrganizationModel,
    ) -> None:
        expires = utcnow() + timedelta(seconds=0.5)
        key = await create_key(session, org=org, expires_at=expires)
        await session.commit()
        tenancy = TenancyService(sessions, key_cache)
        assert await tenancy.resolve_principal(key.secret) == key.principal
        assert key_cache.get(hash_key(key.secret)) == key.principal
        await anyio.sleep((expires - utcnow()).total_seconds() + 0.01)  # it has expired
        assert key_cache.get(hash_key(key.secret)) is None
        with pytest.raises(AuthenticationFailed) as failed:
            await tenancy.resolve_principal(key.secret)
        assert refused(failed.value, 401, "authentication_error") == "API key expired"

    async def test_an_entry_lasts_its_ttl_and_a_zero_ttl_caches_nothing(self) -> None:
        principal = Principal.for_system("org_x", "test")
        brief = KeyCache(0.1)
        brief.put("digest", principal, None)
        assert brief.get("digest") == principal
        await anyio.sleep(0.15)
        assert brief.get("digest") is None
        off = KeyCache(0)
        off.put("digest", principal, None)
        assert off.get("digest") is None


class TestRequire:
    async def test_a_scoped_key_may_do_only_what_it_was_given(
        self, session: AsyncSession, org: OrganizationModel, owner: Key
    ) -> None:
        reader = await create_key(session, org=org, permissions=[Permission.ENVIRONMENTS_READ])
        assert require(reader.principal, Permission.ENVIRONMENTS_READ) == org.id
        for permission in (Permission.ENVIRONMENTS_LIFECYCLE, Permission.ENVIRONMENTS_WRITE):
            with pytest.raises(PermissionDenied) as denied:
                require(reader.principal, permission)
            assert permission.value in refused(denied.value, 403, "permission_error")
        assert all(require(owner.principal, p) == org.id for p in Permission)

    async def test_a_key_without_lifecycle_may_read_but_not_stop(
        self, session: AsyncSession, lifecycle: Lifecycle, org: OrganizationModel
    ) -> None:
        env = await create_environment_record(session, org=org)
        reader = await create_key(session, org=org, permissions=[Permission.ENVIRONMENTS_READ])
        assert (await get_environment(session, reader.principal, env.id)).id == env.id
        with pytest.raises(PermissionDenied) as denied:
            await lifecycle.request_stop(session, reader.principal, env.id, StopRequest())
        assert "environments:lifecycle" in refused(denied.value, 403, "permission_error")
        with pytest.raises(PermissionDenied):
            await lifecycle.request_delete(session, reader.principal, env.id)

    async def test_a_scoped_key_cannot_mint_a_key_with_more_than_it_has(
        self, session: AsyncSession, org: OrganizationModel
    ) -> None:
        minter = await create_key(
            session, org=org, permissions=[Permission.KEYS_READ, Permission.KEYS_WRITE]
        )
        for body in (
            ApiKeyCreate(name="x", permissions=[Permission.ENVIRONMENTS_WRITE]),
            ApiKeyCreate(name="x"),  # an organization key: everything
        ):
            with pytest.raises(PermissionDenied) as denied:
                await issue(session, minter.principal, body)
            refused(denied.value, 403, "permission_error")
        made = await issue(session, minter.principal, ApiKeyCreate(name="x", permissions=[]))
        assert made.kind is KeyKind.SCOPED and made.key.startswith("sbk_")


class TestScoping:
    async def test_another_organizations_environment_is_not_found(
        self, session: AsyncSession, lifecycle: Lifecycle, org: OrganizationModel
    ) -> None:
        env = await create_environment_record(session, org=org, name="private")
        stranger = (await create_key(session, org=await create_org(session))).principal
        await session.commit()
        for request in (
            lambda: get_environment(session, stranger, env.id),
            lambda: get_environment(session, stranger, "private"),
            lambda: lifecycle.request_stop(session, stranger, env.id, StopRequest()),
            lambda: lifecycle.request_start(session, stranger, env.id),
            lambda: lifecycle.request_delete(session, stranger, env.id),
            lambda: environment_events(session, stranger, env.id, after=None, limit=10),
            lambda: lifecycle.wait_for_state(stranger, env.id, EnvState.RUNNING, 1),
        ):
            with pytest.raises(NotFound) as missing:
                await request()
            refused(missing.value, 404, "not_found_error")
        page = await environment_page(
            session, stranger, states=None, labels=None, limit=100, cursor=None
        )
        assert page.data == []

    async def test_a_key_restricted_to_one_environment_sees_only_it(
        self, session: AsyncSession, org: OrganizationModel
    ) -> None:
        mine = await create_environment_record(session, org=org)
        other = await create_environment_record(session, org=org)
        scoped = await create_key(
            session,
            org=org,
            permissions=[Permission.ENVIRONMENTS_READ, Permission.ENVIRONMENTS_LIFECYCLE],
            environment_ids=[mine.id],
        )
        assert (await get_environment(session, scoped.principal, mine.id)).id == mine.id
        with pytest.raises(NotFound) as missing:
            await get_environment(session, scoped.principal, other.id)
        refused(missing.value, 404, "not_found_error")
        page = await environment_page(
            session, scoped.principal, states=None, labels=None, limit=100, cursor=None
        )
        assert [e.id for e in page.data] == [mine.id]
