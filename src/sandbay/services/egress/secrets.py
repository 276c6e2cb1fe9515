"""An organization's secrets: created, changed, listed and deleted through the API.
The value is encrypted before it is stored and never returned, logged or put in an
event; each secret keeps one random placeholder for life, which is all environments
ever see of it."""

from typing import TYPE_CHECKING

from sandbay.db.cas import flush_unique
from sandbay.db.models import OrgSecretModel
from sandbay.db.queries import egress as queries
from sandbay.db.session import AsyncSession
from sandbay.domain import ids
from sandbay.domain.errors import Conflict, InvalidRequest, NotFound
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.org_secrets import (
    ID_PREFIX,
    Secret,
    SecretCreate,
    SecretUpdate,
    new_placeholder,
)
from sandbay.kit.clock import utcnow
from sandbay.services.events.record import record_event
from sandbay.services.tenancy.auth import require, require_organization_wide

if TYPE_CHECKING:  # only its methods are called; the platform builds it
    from sandbay.services.agents.secrets import SecretBox


def to_api(row: OrgSecretModel) -> Secret:
    return Secret.model_validate(row)


async def _get(session: AsyncSession, org_id: str, id_or_name: str) -> OrgSecretModel:
    row = await queries.secret_of(session, org_id, id_or_name)
    if row is None:
        raise NotFound(f"secret {id_or_name!r} not found")
    return row


def _record(
    session: AsyncSession, principal: Principal, row: OrgSecretModel, type: str, **data: object
) -> None:
    """An event naming the secret (never its value)."""
    record_event(
        session,
        org_id=row.org_id,
        type=type,
        actor=principal.actor,
        data={"secret_id": row.id, "name": row.name, **data},
    )


async def create_secret(
    session: AsyncSession, principal: Principal, box: "SecretBox", body: SecretCreate
) -> Secret:
    """Store a new secret, its value encrypted. 409 when the name is taken."""
    org_id = require_organization_wide(principal, Permission.SECRETS_WRITE)
    if ids.has_prefix(body.name, ID_PREFIX):
        raise InvalidRequest("name: must not look like a secret id (sec_ + 32 hex digits)")
    conflict = f"a secret named {body.name!r} already exists"
    if await queries.secret_of(session, org_id, body.name) is not None:
        raise Conflict(conflict)
    now = utcnow()
    row = OrgSecretModel(
        id=ids.new_id(ID_PREFIX),
        org_id=org_id,
        name=body.name,
        description=body.description,
        ciphertext=box.encrypt(body.value.get_secret_value()),
        hosts=list(body.hosts),
        placeholder=new_placeholder(),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    _record(session, principal, row, "secret.created", hosts=list(body.hosts))
    await flush_unique(session, conflict)  # a create of the same name that won meanwhile
    return to_api(row)


async def update_secret(
    session: AsyncSession,
    principal: Principal,
    box: "SecretBox",
    id_or_name: str,
    body: SecretUpdate,
) -> Secret:
    """Change the value, description or hosts; the placeholder stays, so environments
    given the secret use the new value at their next request."""
    org_id = require_organization_wide(principal, Permission.SECRETS_WRITE)
    row = await _get(session, org_id, id_or_name)
    given = body.model_fields_set
    if body.value is not None:
        row.ciphertext = box.encrypt(body.value.get_secret_value())
    if "description" in given:
        row.description = body.description
    if body.hosts is not None:
        row.hosts = list(body.hosts)
    row.updated_at = utcnow()
    changed = sorted(f for f in given if getattr(body, f) is not None or f == "description")
    _record(session, principal, row, "secret.updated", fields=changed)
    await session.flush()
    return to_api(row)


async def get_secret(session: AsyncSession, principal: Principal, id_or_name: str) -> Secret:
    org_id = require(principal, Permission.SECRETS_READ)
    return to_api(await _get(session, org_id, id_or_name))


async def list_secrets(session: AsyncSession, principal: Principal) -> list[Secret]:
    org_id = require(principal, Permission.SECRETS_READ)
    return [to_api(row) for row in await queries.secrets_of(session, org_id)]


async def delete_secret(session: AsyncSession, principal: Principal, id_or_name: str) -> None:
    """Delete it: environments given it keep the name in their map, and from now on
    their placeholder is sent unchanged (the proxy has no value for it)."""
    org_id = require_organization_wide(principal, Permission.SECRETS_WRITE)
    row = await _get(session, org_id, id_or_name)
    _record(session, principal, row, "secret.deleted")
    await session.delete(row)
    await session.flush()
