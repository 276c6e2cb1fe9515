"""Daytona's secrets (`/secret…`): the organization's secrets (the native `/v1/secrets`)
in Daytona's shapes, so `daytona.secret.create/list/get/update/delete` work. The value
is write-only: no answer carries it, only the `placeholder` sandboxes see in its stead.
`/secret/paginated` pages with an opaque keyset cursor over (sort key, id), so a page
never repeats or skips a secret that stays while a caller walks the pages."""

import base64
import binascii
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sandbay.api.deps import SecretBoxDep, SessionDep
from sandbay.dialects.kit import iso_millis, native
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.org_secrets import Secret, SecretCreate, SecretUpdate
from sandbay.services.egress import secrets

from .errors import DaytonaPrincipal

router = APIRouter(prefix="/secret", tags=["daytona"])

SecretId = Annotated[str, Path(alias="secretId", max_length=128, description="ID or name")]
Sort = Literal["name", "createdAt", "updatedAt"]
Order = Literal["asc", "desc"]
MAX_LIMIT = 200


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DaytonaCreateSecret(BaseModel):
    """CreateSecret."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=1024)
    value: str
    description: str | None = None
    hosts: list[str] | None = None


class DaytonaUpdateSecret(BaseModel):
    """UpdateSecret: absent (or null) fields stay as they are."""

    model_config = ConfigDict(extra="ignore")

    value: str | None = None
    description: str | None = None
    hosts: list[str] | None = None


class DaytonaSecret(_Camel):
    """Secret: never the value."""

    id: str
    name: str
    description: str | None
    placeholder: str
    hosts: list[str]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, secret: Secret) -> "DaytonaSecret":
        return cls(
            id=secret.id,
            name=secret.name,
            description=secret.description,
            placeholder=secret.placeholder,
            hosts=list(secret.hosts),
            created_at=iso_millis(secret.created_at) or "",
            updated_at=iso_millis(secret.updated_at) or "",
        )


class DaytonaSecretPage(_Camel):
    """ListSecretsResponse."""

    items: list[DaytonaSecret]
    total: int
    next_cursor: str | None


def _key(secret: Secret, sort: Sort) -> tuple[str, str]:
    value = {
        "name": secret.name,
        "createdAt": secret.created_at.isoformat(),
        "updatedAt": secret.updated_at.isoformat(),
    }[sort]
    return value, secret.id


def _encode(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise InvalidRequest("cursor: not a cursor this server gave") from exc
    if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(p, str) for p in raw)):
        raise InvalidRequest("cursor: not a cursor this server gave")
    return raw[0], raw[1]


def page_of(
    found: list[Secret],
    *,
    cursor: str | None,
    limit: int,
    name: str | None,
    sort: Sort,
    order: Order,
) -> DaytonaSecretPage:
    """One page of `found`: filtered by a part of the name (any case), sorted by
    `sort` then id, after the cursor's position; `total` counts every match."""
    wanted = name.lower() if name else None
    matches = [s for s in found if wanted is None or wanted in s.name.lower()]
    desc = order == "desc"
    matches.sort(key=lambda s: _key(s, sort), reverse=desc)
    after = matches
    if cursor:
        last = _decode(cursor)
        after = [s for s in matches if (_key(s, sort) < last if desc else _key(s, sort) > last)]
    page = after[:limit]
    more = len(after) > limit
    return DaytonaSecretPage(
        items=[DaytonaSecret.of(s) for s in page],
        total=len(matches),
        next_cursor=_encode(_key(page[-1], sort)) if more and page else None,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_secret(
    body: DaytonaCreateSecret, session: SessionDep, principal: DaytonaPrincipal, box: SecretBoxDep
) -> DaytonaSecret:
    """A new secret of the organization: its value is encrypted and never returned;
    sandboxes given it (`secrets` at create) see only its placeholder. 409 when the
    name is taken."""
    create = native(
        SecretCreate,
        name=body.name,
        value=body.value,
        description=body.description,
        hosts=body.hosts,
    )
    return DaytonaSecret.of(await secrets.create_secret(session, principal, box, create))


@router.get("")
async def list_secrets(session: SessionDep, principal: DaytonaPrincipal) -> list[DaytonaSecret]:
    """Every secret of the organization, by name (never a value)."""
    return [DaytonaSecret.of(s) for s in await secrets.list_secrets(session, principal)]


@router.get("/paginated")
async def list_secrets_paginated(
    session: SessionDep,
    principal: DaytonaPrincipal,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    name: Annotated[str | None, Query(max_length=128)] = None,
    sort: Sort = "createdAt",
    order: Order = "desc",
) -> DaytonaSecretPage:
    """The organization's secrets a page at a time (`nextCursor` until the last),
    filtered by a part of the name, sorted by name or time."""
    found = await secrets.list_secrets(session, principal)
    return page_of(found, cursor=cursor, limit=limit, name=name, sort=sort, order=order)


@router.get("/{secretId}")
async def get_secret(
    secret: SecretId, session: SessionDep, principal: DaytonaPrincipal
) -> DaytonaSecret:
    """One secret by ID (or name), without its value."""
    return DaytonaSecret.of(await secrets.get_secret(session, principal, secret))


@router.patch("/{secretId}")
async def update_secret(
    secret: SecretId,
    body: DaytonaUpdateSecret,
    session: SessionDep,
    principal: DaytonaPrincipal,
    box: SecretBoxDep,
) -> DaytonaSecret:
    """A new value, description or hosts; the placeholder stays, so sandboxes given
    the secret send the new value from their next request."""
    update = native(SecretUpdate, value=body.value, description=body.description, hosts=body.hosts)
    return DaytonaSecret.of(await secrets.update_secret(session, principal, box, secret, update))


@router.delete("/{secretId}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_secret(
    secret: SecretId, session: SessionDep, principal: DaytonaPrincipal
) -> Response:
    """Delete it: sandboxes given it send its placeholder unchanged from then on."""
    await secrets.delete_secret(session, principal, secret)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
