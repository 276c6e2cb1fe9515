"""/v1/keys: API keys of the caller's organization."""

from fastapi import APIRouter, status

from sandbay.api.deps import PrincipalDep, SessionDep
from sandbay.domain.keys import ApiKey, ApiKeyCreate, ApiKeyCreated, ApiKeyList
from sandbay.services.tenancy import keys

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(
    body: ApiKeyCreate, session: SessionDep, principal: PrincipalDep
) -> ApiKeyCreated:
    """Create a key. The secret is in this answer only; it is stored hashed."""
    return await keys.create_key(session, principal, body)


@router.get("")
async def list_keys(session: SessionDep, principal: PrincipalDep) -> ApiKeyList:
    """Keys of the organization (never their secrets)."""
    return ApiKeyList(data=await keys.list_keys(session, principal))


@router.delete("/{key_id}")
async def revoke_key(key_id: str, session: SessionDep, principal: PrincipalDep) -> ApiKey:
    """Revoke a key; it is refused from then on."""
    return await keys.revoke_key(session, principal, key_id)
