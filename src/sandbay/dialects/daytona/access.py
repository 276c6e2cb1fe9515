"""Daytona's preview links, signed preview URLs and SSH access, served by sandbay's
own preview proxy and SSH gateway.

- `get_preview_link(port)`: a URL and a token the client sends as Daytona's
  `X-Daytona-Preview-Token` header (a public sandbox needs none);
- `create_signed_preview_url(port, expires_in_seconds)`: a URL with its token in
  place of the sandbox id, opening that port with no header until it expires (1 s to
  24 h, 60 s by default) or is expired early;
- `create_ssh_access(expires_in_minutes)`: a token that is the SSH user name
  (`ssh -p <port> <token>@<host>`, no key, no password).

The URLs are host-based (`{port}-{id}.{preview domain}`, as Daytona's) when a preview
domain other than `localhost` (which only browsers resolve) is configured, else
path-based on the API's own address (`{base}/preview/{id}/{port}`)."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from sandbay.api.deps import AccessDep, SessionDep, current_principal
from sandbay.domain.access import MAX_PORT, PreviewTokenCreate, preview_label
from sandbay.domain.errors import PermissionDenied
from sandbay.domain.keys import Principal
from sandbay.services.access import preview, signed, ssh_tokens
from sandbay.services.access.service import AccessService, origin_of
from sandbay.services.environments.records import read_environment

from .errors import DaytonaPrincipal
from .sandboxes import PublicBase, SandboxIdOrName, ToolboxUrl, _out
from .shapes import DaytonaSandbox

router = APIRouter(prefix="/sandbox", tags=["daytona"])

Port = Annotated[int, Path(ge=1, le=MAX_PORT, description="Port inside the sandbox")]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DaytonaPortPreviewUrl(_Camel):
    sandbox_id: str
    url: str
    token: str


class DaytonaSignedPortPreviewUrl(_Camel):
    sandbox_id: str
    port: int
    token: str
    url: str


class DaytonaSshAccess(_Camel):
    id: str
    sandbox_id: str
    token: str
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    ssh_command: str


class DaytonaSshAccessValidation(_Camel):
    valid: bool
    #: "" when not valid: Daytona's server says null, which its own SDK's model
    #: (a required string) cannot read.
    sandbox_id: str


def preview_url(access: AccessService, base: str, key: str, port: int) -> str:
    """The URL of `port` addressed by `key` (an environment id or a signed token)."""
    origin = origin_of(base)
    domain = access.preview_domain
    if domain and domain != "localhost":
        label = preview_label(key, port) if key.startswith("env_") else f"{port}-{key}"
        return access.preview_urls(origin).host_url(label).rstrip("/")
    return f"{base}/preview/{key}/{port}"


@router.get("/{sandboxIdOrName}/ports/{port}/preview-url")
async def get_port_preview_url(
    sandbox: SandboxIdOrName,
    port: Port,
    base: PublicBase,
    session: SessionDep,
    principal: DaytonaPrincipal,
    access: AccessDep,
) -> DaytonaPortPreviewUrl:
    """The preview URL of a port and a token for Daytona's `X-Daytona-Preview-Token`
    header (valid for the server's preview token lifetime)."""
    token = await preview.issue_token(
        session, principal, sandbox, PreviewTokenCreate(port=port), ttl=access.preview_ttl
    )
    url = preview_url(access, base, token.environment_id, port)
    return DaytonaPortPreviewUrl(sandbox_id=token.environment_id, url=url, token=token.token)


@router.get("/{sandboxIdOrName}/ports/{port}/signed-preview-url")
async def get_signed_port_preview_url(
    sandbox: SandboxIdOrName,
    port: Port,
    base: PublicBase,
    session: SessionDep,
    principal: DaytonaPrincipal,
    access: AccessDep,
    expires_in: Annotated[int | None, Query(alias="expiresInSeconds")] = None,
) -> DaytonaSignedPortPreviewUrl:
    """A URL that opens the port without any header until it expires."""
    issued = await signed.issue_signed(session, principal, sandbox, port, expires_in)
    return DaytonaSignedPortPreviewUrl(
        sandbox_id=issued.environment_id,
        port=port,
        token=issued.token,
        url=preview_url(access, base, issued.token, port),
    )


@router.post("/{sandboxIdOrName}/ports/{port}/signed-preview-url/{token}/expire")
async def expire_signed_port_preview_url(
    sandbox: SandboxIdOrName,
    port: Port,
    token: Annotated[str, Path(max_length=128)],
    session: SessionDep,
    principal: DaytonaPrincipal,
    access: AccessDep,
) -> Response:
    """End a signed URL before its expiry."""
    await signed.expire_signed(session, principal, sandbox, port, token)
    access.gate.forget_token(token)
    return Response(status_code=200)


@router.post("/{sandboxIdOrName}/ssh-access")
async def create_ssh_access(
    sandbox: SandboxIdOrName,
    base: PublicBase,
    session: SessionDep,
    principal: DaytonaPrincipal,
    access: AccessDep,
    expires_in: Annotated[int | None, Query(alias="expiresInMinutes")] = None,
) -> DaytonaSshAccess:
    """A token that is the SSH user name (60 minutes by default); the sandbox's
    earlier tokens stop working."""
    issued = await ssh_tokens.issue_token(
        session,
        principal,
        sandbox,
        endpoint=access.ssh_endpoint(origin_of(base)),
        expires_in_minutes=expires_in,
    )
    return DaytonaSshAccess(
        id=issued.id,
        sandbox_id=issued.environment_id,
        token=issued.token,
        expires_at=issued.expires_at,
        created_at=issued.created_at,
        updated_at=issued.created_at,
        ssh_command=issued.ssh_command,
    )


@router.delete("/{sandboxIdOrName}/ssh-access")
async def revoke_ssh_access(
    sandbox: SandboxIdOrName,
    toolbox: ToolboxUrl,
    session: SessionDep,
    principal: Annotated[Principal, Depends(current_principal)],
    token: Annotated[str | None, Query(max_length=128)] = None,
    organization: Annotated[
        str | None, Header(alias="X-Daytona-Organization-ID", max_length=128)
    ] = None,
) -> DaytonaSandbox:
    """Revoke one token (or, with none, all the sandbox's SSH access); open
    sessions it logged in are closed. The SDK's `revoke_ssh_access(token)` passes
    its token positionally into the organization header's slot of the generated
    client: a header that is not the caller's organization, with no `token`, is
    taken as the token (refusing it, as other routes do, would make the SDK call
    fail; ignoring it would revoke every token)."""
    if organization and organization != principal.org_id:
        if token is not None or not ssh_tokens.looks_like_token(organization):
            raise PermissionDenied("Invalid authentication context")
        token = organization
    await ssh_tokens.revoke_tokens(session, principal, sandbox, token)
    return _out(toolbox, await read_environment(session, principal, sandbox))


@router.get("/ssh-access/validate")
async def validate_ssh_access(
    token: Annotated[str, Query(max_length=128)],
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaSshAccessValidation:
    """Whether a token logs in now, and to which sandbox."""
    environment_id = await ssh_tokens.validate_token(session, principal, token)
    return DaytonaSshAccessValidation(
        valid=environment_id is not None, sandbox_id=environment_id or ""
    )
