"""Shapes of an organization's secrets as the native API takes and gives them. The
value is write-only: a request carries it, no answer does. An environment is given
a secret by name and sees only its `placeholder`, which the egress proxy swaps for
the value on requests to the secret's `hosts` (`sandbay.domain.egress`)."""

import secrets
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from sandbay.domain.egress import ENV_NAME, SECRET_NAME, check_patterns

ID_PREFIX = "sec"
PLACEHOLDER_PREFIX = "sandbay_secret_"
MAX_VALUE_BYTES = 64 * 1024
MAX_NAME = 128
MAX_DESCRIPTION = 1024
#: Secrets one environment may be given.
MAX_ATTACHED = 64


def new_placeholder() -> str:
    """An opaque token standing for a secret inside environments: random, so it tells
    nothing of the value, and long enough never to occur by chance in a request."""
    return PLACEHOLDER_PREFIX + secrets.token_hex(16)


def _check_value(value: SecretStr) -> SecretStr:
    raw = value.get_secret_value()
    if not raw:
        raise ValueError("must not be empty")
    if len(raw.encode()) > MAX_VALUE_BYTES:
        raise ValueError(f"must be at most {MAX_VALUE_BYTES} bytes")
    return value


def _check_hosts(value: list[str]) -> list[str]:
    return check_patterns(value)


def _check_name(value: str) -> str:
    if not SECRET_NAME.match(value):
        raise ValueError("must start with a letter or '_' and hold only letters, digits, '_', '-'")
    return value


def check_attached(value: dict[str, str]) -> dict[str, str]:
    """An environment's secrets: {environment variable: secret name}."""
    if len(value) > MAX_ATTACHED:
        raise ValueError(f"at most {MAX_ATTACHED} secrets")
    for var, name in value.items():
        if not ENV_NAME.match(var) or len(var) > 256:
            raise ValueError(f"variable name {var[:40]!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if not isinstance(name, str) or len(name) > MAX_NAME or not SECRET_NAME.match(name):
            raise ValueError(f"{var}: {str(name)[:40]!r} is not a secret name")
    return value


SecretName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME), AfterValidator(_check_name)
]
SecretValue = Annotated[SecretStr, AfterValidator(_check_value)]
HostPatterns = Annotated[list[str], AfterValidator(_check_hosts)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)]
AttachedSecrets = Annotated[dict[str, str], AfterValidator(check_attached)]


class SecretCreate(BaseModel):
    """A new secret of the organization."""

    model_config = ConfigDict(extra="forbid")

    name: SecretName = Field(description="Unique in the organization; environments name it")
    value: SecretValue = Field(description="Stored encrypted; never returned")
    description: Description | None = None
    hosts: HostPatterns = Field(
        default_factory=list,
        description="Host names (or `*.` wildcards) the value is sent to; every allowed "
        "host when empty",
    )


class SecretUpdate(BaseModel):
    """Change a secret; absent fields stay as they are (its placeholder never changes,
    so environments given it need nothing new)."""

    model_config = ConfigDict(extra="forbid")

    value: SecretValue | None = Field(None, description="A new value; never returned")
    description: Description | None = Field(None, description="null clears it")
    hosts: HostPatterns | None = None


class Secret(BaseModel):
    """A secret as the API shows it: never its value."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    placeholder: str = Field(description="What environments see in place of the value")
    hosts: list[str]
    created_at: datetime
    updated_at: datetime


class SecretList(BaseModel):
    data: list[Secret]
