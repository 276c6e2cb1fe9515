"""API keys and what they allow: organization keys may do everything in their org,
scoped keys carry explicit permissions (DESIGN §1)."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from sandbay.domain.runtime import Runtime

ORG_KEY_PREFIX = "sbk_org_"
SCOPED_KEY_PREFIX = "sbk_"
DISPLAY_PREFIX_LEN = 12


class Permission(StrEnum):
    ENVIRONMENTS_READ = "environments:read"
    ENVIRONMENTS_WRITE = "environments:write"
    ENVIRONMENTS_LIFECYCLE = "environments:lifecycle"
    ENVIRONMENTS_EXEC = "environments:exec"
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    WORK_READ = "work:read"
    WORK_WRITE = "work:write"
    AGENTS_EXECUTE = "agents:execute"
    MODEL_PROVIDERS_READ = "model_providers:read"
    MODEL_PROVIDERS_WRITE = "model_providers:write"
    # The organization's secrets (their values are never readable, only their metadata).
    SECRETS_READ = "secrets:read"
    SECRETS_WRITE = "secrets:write"
    # OpenClaw instances (the Chowder dialect), per instance through `environment_ids`.
    INSTANCES_READ = "instances:read"
    INSTANCES_INTERACT = "instances:interact"
    INSTANCES_CONFIGURE = "instances:configure"


class KeyKind(StrEnum):
    ORGANIZATION = "organization"
    SCOPED = "scoped"


def generate_key(kind: KeyKind) -> str:
    """A new secret; its prefix says what kind it is, as `sbk_org_…` or `sbk_…`."""
    prefix = ORG_KEY_PREFIX if kind is KeyKind.ORGANIZATION else SCOPED_KEY_PREFIX
    return prefix + secrets.token_urlsafe(30)


def hash_key(secret: str) -> str:
    """Keys are long random strings, so one SHA-256 is enough and keeps auth fast."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an organization key, a scoped key, or the operator (admin)."""

    org_id: str | None
    key_id: str | None
    kind: KeyKind | None
    permissions: frozenset[Permission]
    environment_ids: frozenset[str] | None = None
    is_admin: bool = False
    system: str | None = None  # set for the platform acting on its own (auto-stop, …)
    expires_at: datetime | None = None

    @classmethod
    def for_system(cls, org_id: str, name: str) -> "Principal":
        """The platform acting in an organization: all permissions, its own actor name."""
        return cls(
            org_id=org_id,
            key_id=None,
            kind=KeyKind.ORGANIZATION,
            permissions=frozenset(),
            system=name,
        )

    @property
    def actor(self) -> str:
        if self.system:
            return f"system:{self.system}"
        return "admin" if self.is_admin else f"key:{self.key_id}"

    def allows(self, permission: Permission) -> bool:
        return self.kind is KeyKind.ORGANIZATION or permission in self.permissions

    def may_see_environment(self, environment_id: str) -> bool:
        return self.environment_ids is None or environment_id in self.environment_ids

    @property
    def reach(self) -> "KeyReach":
        return KeyReach(
            organization=self.kind is KeyKind.ORGANIZATION,
            permissions=self.permissions,
            environment_ids=self.environment_ids,
            expires_at=self.expires_at,
        )


@dataclass(frozen=True, slots=True)
class KeyReach:
    """How far a key reaches, in the three bounds a key may not exceed when it mints
    or revokes another: permissions (an organization key has all), environments
    (None: every one) and expiry (None: never)."""

    organization: bool
    permissions: frozenset[Permission]
    environment_ids: frozenset[str] | None
    expires_at: datetime | None

    def excess(self, other: "KeyReach") -> tuple[str, frozenset[str]] | None:
        """The first bound `other` goes past (`permissions`, `environments`,
        `expiry`) with what it adds, or None when `other` is no wider than this key."""
        if other.organization and not self.organization:
            return "organization", frozenset()
        if not self.organization and (missing := other.permissions - self.permissions):
            return "permissions", frozenset(p.value for p in missing)
        if self.environment_ids is not None:
            if other.environment_ids is None:
                return "environments", frozenset()
            if outside := other.environment_ids - self.environment_ids:
                return "environments", outside
        if self.expires_at is not None and (
            other.expires_at is None or other.expires_at > self.expires_at
        ):
            return "expiry", frozenset()
        return None

    def covers_environments(self, environment_ids: list[str] | None) -> bool:
        """Whether a key with these environments stays within this key's limit."""
        if self.environment_ids is None:
            return True
        return environment_ids is not None and set(environment_ids) <= self.environment_ids


class ApiKeyCreate(BaseModel):
    """A new key. Without `permissions` it is an organization key (all permissions)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    permissions: list[Permission] | None = Field(
        None, description="Scoped key permissions; null makes an organization key"
    )
    environment_ids: list[str] | None = Field(
        None, description="Restrict a scoped key to these environments", max_length=1000
    )
    expires_at: AwareDatetime | None = Field(
        None, description="When the key stops working (with a time zone); never when null"
    )


class ApiKey(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    org_id: str
    name: str
    kind: KeyKind
    prefix: str
    permissions: list[Permission]
    environment_ids: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The secret; shown only once")


class ApiKeyList(BaseModel):
    data: list[ApiKey]


class OrganizationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]


class Organization(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    created_at: datetime
    default_runtime: Runtime | None = Field(
        None, description="Runtime of environments created without one; null: the server's"
    )


class OrganizationUpdate(BaseModel):
    """What an organization key may change of its organization."""

    model_config = ConfigDict(extra="forbid")

    default_runtime: Runtime | None = Field(
        None, description="runc or runsc (gVisor); null: the server's default"
    )


class OrganizationCreated(Organization):
    api_key: ApiKeyCreated
