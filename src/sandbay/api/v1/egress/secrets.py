"""/v1/secrets: an organization's secrets. The value is write-only: stored encrypted,
never in an answer; environments given a secret see only its `placeholder`, which
the egress proxy swaps for the value on requests to the secret's hosts."""

from typing import Annotated

from fastapi import APIRouter, Path, status
from fastapi.responses import Response

from sandbay.api.deps import PrincipalDep, SecretBoxDep, SessionDep
from sandbay.domain.org_secrets import Secret, SecretCreate, SecretList, SecretUpdate
from sandbay.services.egress import secrets

router = APIRouter(prefix="/v1/secrets", tags=["secrets"])

SecretRef = Annotated[str, Path(max_length=128, description="secret id (sec_…) or name")]


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: {"description": "Taken"}})
async def create_secret(
    body: SecretCreate, session: SessionDep, principal: PrincipalDep, box: SecretBoxDep
) -> Secret:
    """Create a secret. `value` is encrypted at rest and never returned; give it to an
    environment by name (its `secrets`) and the environment sees only `placeholder`."""
    return await secrets.create_secret(session, principal, box, body)


@router.get("")
async def list_secrets(session: SessionDep, principal: PrincipalDep) -> SecretList:
    return SecretList(data=await secrets.list_secrets(session, principal))


@router.get("/{secret}")
async def get_secret(secret: SecretRef, session: SessionDep, principal: PrincipalDep) -> Secret:
    return await secrets.get_secret(session, principal, secret)


@router.patch("/{secret}")
async def update_secret(
    secret: SecretRef,
    body: SecretUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    box: SecretBoxDep,
) -> Secret:
    """Change the value, description or hosts; the placeholder never changes."""
    return await secrets.update_secret(session, principal, box, secret, body)


@router.delete("/{secret}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_secret(
    secret: SecretRef, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Delete it; environments given it then send its placeholder unchanged."""
    await secrets.delete_secret(session, principal, secret)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
