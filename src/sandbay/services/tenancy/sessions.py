"""Dashboard sessions: an API key exchanged once for a random session secret (kept in
an HttpOnly cookie, never the key itself), which then acts as that key until it
expires, is signed out, or the key is revoked. Its CSRF token is derived from the
secret, so the server checks it without storing it and a page of another origin,
which cannot read ours, cannot know it."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sandbay.db.models import WebSessionModel
from sandbay.db.queries import web_sessions as queries
from sandbay.db.session import AsyncSession
from sandbay.domain.errors import AuthenticationFailed
from sandbay.domain.keys import Principal, hash_key
from sandbay.kit.clock import utcnow
from sandbay.services.tenancy.auth import KeyCache, authenticate, key_principal

#: How long a sign-in lasts (a working day and a bit); signing in again starts anew.
SESSION_TTL = timedelta(hours=12)
COOKIE_NAME = "sandbay_session"
CSRF_HEADER = "x-csrf-token"
#: Methods that change nothing: a session cookie alone authenticates them.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class SignIn:
    secret: str  # the cookie's value
    csrf: str
    principal: Principal


def csrf_token(secret: str) -> str:
    """The CSRF token of a session: an HMAC of a fixed label under its secret."""
    return hmac.new(secret.encode(), b"sandbay dashboard csrf", hashlib.sha256).hexdigest()


def csrf_matches(secret: str, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(csrf_token(secret), token or "")


async def open_session(session: AsyncSession, api_key: str, *, admin_key: str | None) -> SignIn:
    """Exchange an organization's or environment's API key for a session."""
    principal = await authenticate(session, api_key, admin_key=admin_key)
    if principal.key_id is None:
        raise AuthenticationFailed("the operator key cannot sign in to the dashboard")
    secret = "sbs_" + secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSessionModel(
            token_hash=hash_key(secret),
            key_id=principal.key_id,
            created_at=now,
            expires_at=now + SESSION_TTL,
        )
    )
    await session.flush()
    return SignIn(secret=secret, csrf=csrf_token(secret), principal=principal)


async def session_principal(session: AsyncSession, secret: str, cache: KeyCache) -> Principal:
    """The Principal a live session acts as (401 for an ended, expired or unknown one)."""
    digest = hash_key(secret)
    if (cached := cache.get(digest)) is not None:
        return cached
    found = await queries.session_with_key(session, digest)
    now = utcnow()
    if found is None or found[0].ended_at is not None or found[0].expires_at <= now:
        raise AuthenticationFailed("signed out: sign in to the dashboard again")
    web, key = found
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        raise AuthenticationFailed("the API key of this session was revoked or expired")
    principal = key_principal(key)
    until = min(web.expires_at, key.expires_at) if key.expires_at else web.expires_at
    cache.put(digest, principal, until)
    return principal


async def close_session(session: AsyncSession, secret: str, cache: KeyCache) -> None:
    digest = hash_key(secret)
    cache.drop(digest)
    await queries.end_session(session, digest, utcnow())
