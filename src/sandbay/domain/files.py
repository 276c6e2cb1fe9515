"""Files inside an environment: the path rules every file operation applies first,
and the shapes of file metadata the native API gives."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from sandbay.domain.errors import InvalidRequest

WORKSPACE = "/workspace"
MAX_PATH_CHARS = 4096
MAX_LIST_ENTRIES = 10_000


def normalize_path(path: str, *, base: str = WORKSPACE) -> str:
    """An absolute, normalised path inside the environment. Relative paths are taken
    from /workspace; `..` is refused outright (not resolved), so no spelling of a
    path can climb anywhere; `.` and repeated slashes are dropped. Symlinks are the
    engine's to resolve, always inside the container's own root."""
    if not path or len(path) > MAX_PATH_CHARS:
        raise InvalidRequest(f"path must be 1-{MAX_PATH_CHARS} characters")
    if "\x00" in path:
        raise InvalidRequest("path must not contain NUL bytes")
    full = path if path.startswith("/") else f"{base}/{path}"
    parts = [p for p in full.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidRequest("path must not contain '..' segments")
    return "/" + "/".join(parts)


def parent_of(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


def name_of(path: str) -> str:
    return path.rsplit("/", 1)[-1] or "/"


class FileType(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    OTHER = "other"


class FileInfo(BaseModel):
    """Metadata of one path (Daytona's FileInfo, E2B's EntryInfo)."""

    name: str
    path: str
    type: FileType
    is_dir: bool
    size: int
    mode: str = Field(description="Permission bits in octal, e.g. 0644")
    modified_at: datetime
    owner: str | None = Field(None, description="Owner name (listings only)")
    group: str | None = Field(None, description="Group name (listings only)")
    link_target: str | None = None


class FileList(BaseModel):
    data: list[FileInfo]
    truncated: bool = Field(description="More entries matched than `limit`")


class MkdirRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    mode: Annotated[str, StringConstraints(pattern=r"^0?[0-7]{3,4}$")] = "0755"


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    destination: str
    overwrite: bool = Field(False, description="Replace an existing destination file")


class ContentMatch(BaseModel):
    """A line of a file that holds a searched text (its first match on that line)."""

    file: str
    line: int
    column: int
    content: str


class ReplaceOutcome(BaseModel):
    """What a replacement did to one file: how many matches it replaced, or why not."""

    file: str
    success: bool
    replacements: int = 0
    error: str | None = None
