"""Shared volumes: an organization's named storage that several environments mount
at once (Daytona's volumes), their states, and the rules for where and what of a
volume an environment may mount."""

import posixpath
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

VOLUME_ID = "vol"
MAX_MOUNTS = 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
#: Paths an environment's own machinery owns: a volume is never mounted over them.
RESERVED_PATHS = ("/", "/.sandbay", "/proc", "/sys", "/dev", "/workspace")


class VolumeState(StrEnum):
    """Daytona's volume states that sandbay passes through."""

    PENDING_CREATE = "pending_create"
    CREATING = "creating"
    READY = "ready"
    PENDING_DELETE = "pending_delete"
    DELETING = "deleting"
    DELETED = "deleted"
    ERROR = "error"


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("must be 1-255 characters of letters, digits, '.', '_' or '-'")
    return value


def _check_mount_path(value: str) -> str:
    normal = posixpath.normpath(value)
    if not value.startswith("/") or any(c in value for c in "\x00:,") or len(value) > 1024:
        raise ValueError("must be an absolute path (without ':' or ',')")
    if any(normal == p or (p != "/" and normal.startswith(p + "/")) for p in RESERVED_PATHS):
        raise ValueError(f"{value!r} is reserved (not one of {', '.join(RESERVED_PATHS)})")
    return normal


def _check_subpath(value: str | None) -> str | None:
    if value is None or value.strip("/") == "":
        return None
    normal = posixpath.normpath(value.strip("/"))
    if normal.startswith("..") or any(c in value for c in "\x00:,") or len(value) > 1024:
        raise ValueError("must be a path inside the volume")
    return normal


VolumeName = Annotated[str, AfterValidator(_check_name)]


class VolumeMount(BaseModel):
    """One volume mounted into an environment: all of it, or the directory `subpath`
    of it (made on first use)."""

    model_config = ConfigDict(extra="forbid")

    volume_id: str = Field(min_length=1, max_length=255, description="ID or name")
    mount_path: Annotated[str, AfterValidator(_check_mount_path)]
    subpath: Annotated[str | None, AfterValidator(_check_subpath)] = None


def check_mounts(mounts: list[VolumeMount]) -> list[VolumeMount]:
    """At most `MAX_MOUNTS`, each at its own path."""
    if len(mounts) > MAX_MOUNTS:
        raise ValueError(f"at most {MAX_MOUNTS} volume mounts")
    paths = [m.mount_path for m in mounts]
    if len(set(paths)) != len(paths):
        raise ValueError("two volumes are mounted at one path")
    return mounts


Mounts = Annotated[list[VolumeMount], AfterValidator(check_mounts)]


class VolumeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: VolumeName


class Volume(BaseModel):
    """A volume as the services give it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    org_id: str
    name: str
    state: VolumeState
    error_reason: str | None
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
