"""/v1/environments/{env}/ssh and …/preview: access from outside (SSH credentials,
preview links and tokens)."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from sandbay.api.deps import AccessDep, EnvRef, PrincipalDep, SessionDep, request_origin
from sandbay.domain.access import (
    MAX_PORT,
    PreviewLink,
    PreviewToken,
    PreviewTokenCreate,
    SshCredential,
    SshCredentialInfo,
    SshCredentialList,
)
from sandbay.services.access import preview
from sandbay.services.access import ssh as ssh_credentials

router = APIRouter(prefix="/v1/environments", tags=["access"])

ExpiresIn = Annotated[
    float | None,
    Query(gt=0, description="Seconds the credential is valid; default the server's TTL"),
]


@router.get("/{env}/ssh")
async def get_ssh_credentials(
    env: EnvRef,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    access: AccessDep,
    expires_in: ExpiresIn = None,
) -> SshCredential:
    """A new short-lived SSH credential (CloudCLI's "Get SSH credentials"): log in as
    `username` with `password`, or with `private_key` (one-time Ed25519 key, save it
    with mode 0600). Shown once; only hashes are kept. Logins are accepted while the
    environment runs and until `expires_at`; open sessions end when it stops or the
    credential is revoked. Needs `environments:exec`."""
    return await ssh_credentials.issue_credential(
        session,
        principal,
        env,
        endpoint=access.ssh_endpoint(request_origin(request)),
        ttl=access.ssh_ttl,
        expires_in=expires_in,
    )


@router.get("/{env}/ssh/credentials")
async def list_ssh_credentials(
    env: EnvRef, session: SessionDep, principal: PrincipalDep
) -> SshCredentialList:
    """The environment's SSH credentials (no secrets), newest first."""
    return SshCredentialList(data=await ssh_credentials.list_credentials(session, principal, env))


@router.delete("/{env}/ssh/{credential_id}")
async def revoke_ssh_credential(
    env: EnvRef, credential_id: str, session: SessionDep, principal: PrincipalDep
) -> SshCredentialInfo:
    """Revoke one credential: it logs in no more, and its open sessions are closed."""
    revoked = await ssh_credentials.revoke_credentials(session, principal, env, credential_id)
    return revoked[0]


@router.delete("/{env}/ssh")
async def revoke_all_ssh_credentials(
    env: EnvRef, session: SessionDep, principal: PrincipalDep
) -> SshCredentialList:
    """Revoke every SSH credential of the environment (and close their sessions)."""
    return SshCredentialList(
        data=await ssh_credentials.revoke_credentials(session, principal, env, None)
    )


@router.post("/{env}/preview-token", status_code=status.HTTP_201_CREATED)
async def create_preview_token(
    env: EnvRef,
    session: SessionDep,
    principal: PrincipalDep,
    access: AccessDep,
    body: PreviewTokenCreate | None = None,
) -> PreviewToken:
    """A token that opens the previews of a private environment (one port, or all
    when `port` is null). Send it as the `X-Sandbay-Preview-Token` header, or once as
    the `sandbay_preview_token` query parameter (a browser then keeps it in a
    cookie). Shown once. Needs `environments:exec`."""
    return await preview.issue_token(
        session, principal, env, body or PreviewTokenCreate(), ttl=access.preview_ttl
    )


@router.get("/{env}/preview/{port}")
async def get_preview_link(
    env: EnvRef,
    port: Annotated[int, Path(ge=1, le=MAX_PORT)],
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    access: AccessDep,
) -> PreviewLink:
    """Where `port` of the environment is reachable through this server: `url`
    (host-based, `{port}-{id}.{preview_domain}`) and `path_url` (`/preview/{id}/{port}/`
    on the API's host), with a token for that port when the environment is private."""
    return await preview.preview_link(
        session,
        principal,
        env,
        port,
        urls=access.preview_urls(request_origin(request)),
        ttl=access.preview_ttl,
    )
