"""Shapes of access from outside: short-lived SSH credentials and preview links and
tokens, as the native API gives them, and the preview host names they route by."""

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from sandbay.domain import ids

MAX_PORT = 65535
#: `{port}-{id hex}.{preview domain}`: the id without its `env_` prefix, because an
#: underscore is not a valid host name character.
_PREVIEW_LABEL = re.compile(r"^(?P<port>[0-9]{1,5})-(?:env_)?(?P<hex>[0-9a-f]{32})$")


def preview_label(environment_id: str, port: int) -> str:
    """The first label of an environment port's preview host name."""
    return f"{port}-{environment_id.removeprefix(ids.ENVIRONMENT + '_')}"


def parse_preview_label(label: str) -> tuple[str, int] | None:
    """(environment id, port) from a preview host name's first label, if it is one."""
    match = _PREVIEW_LABEL.match(label.lower())
    if match is None:
        return None
    port = int(match.group("port"))
    if not 1 <= port <= MAX_PORT:
        return None
    return f"{ids.ENVIRONMENT}_{match.group('hex')}", port


def environment_id_from(value: str) -> str | None:
    """An environment id given with or without its `env_` prefix (preview paths)."""
    hex_part = value.lower().removeprefix(ids.ENVIRONMENT + "_")
    if re.fullmatch(r"[0-9a-f]{32}", hex_part) is None:
        return None
    return f"{ids.ENVIRONMENT}_{hex_part}"


class SshCredential(BaseModel):
    """A short-lived SSH login to one environment, shown once: the password and the
    private key are not stored (only their hashes) and cannot be read again."""

    id: str = Field(description="Revoke with DELETE …/ssh/{id}")
    environment_id: str
    host: str
    port: int
    username: str
    password: str | None = Field(description="Password-like token for password login")
    private_key: str | None = Field(description="One-time Ed25519 private key (OpenSSH format)")
    expires_at: datetime = Field(description="Logins after this are refused")
    ssh_command: str = Field(description="A command line that logs in (asks the password)")
    host_key_fingerprint: str = Field(description="SHA256 fingerprint of the gateway's host key")
    known_hosts: str = Field(description="A known_hosts line for the gateway's host key")


class SshCredentialInfo(BaseModel):
    """A credential as listed: no secrets."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    environment_id: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class SshCredentialList(BaseModel):
    data: list[SshCredentialInfo]


class PreviewTokenCreate(BaseModel):
    """Ask for a preview token (for one port, or every port when `port` is null)."""

    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(None, ge=1, le=MAX_PORT)
    expires_in: float | None = Field(
        None, gt=0, description="Seconds it is valid; default the server's preview_token_ttl"
    )


class PreviewToken(BaseModel):
    """A token that opens the previews of a private environment, shown once. Send it
    as the `X-Sandbay-Preview-Token` header, or once as the `sandbay_preview_token`
    query parameter, which the proxy exchanges for a cookie."""

    id: str
    environment_id: str
    port: int | None
    token: str
    expires_at: datetime


class PreviewLink(BaseModel):
    """Where a port of an environment is reachable through the server."""

    environment_id: str
    port: int
    public: bool = Field(description="True: no token needed")
    url: str = Field(description="Host-based URL: {port}-{id}.{preview_domain}")
    path_url: str = Field(description="Path-based URL on the API's own host (local use)")
    token: str | None = Field(description="Preview token (null when the environment is public)")
    expires_at: datetime | None
