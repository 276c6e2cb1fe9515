"""Built images (Daytona's snapshots): their states, the shapes the services take and
give, and the pure rules of a build: which bases a runner that cannot pull has, and
the Dockerfile actually built once those are mapped."""

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from sandbay.domain.environments import NAME_RE

IMAGE_ID = "img"
#: The repository every built image is tagged in (`sandbay-image:<id>`).
BUILT_REPOSITORY = "sandbay-image"
MAX_DOCKERFILE = 256 * 1024
MAX_BUILD_LOG = 1024 * 1024
#: What a build that asks for `python:<version>-slim…` (Daytona's `debian_slim`) gets:
#: the base image every runner has (Debian bookworm with python3). A runner cannot pull.
PYTHON_SLIM = re.compile(r"^(docker\.io/)?(library/)?python:[0-9.]+-slim(-bookworm)?$")
_FROM = re.compile(r"^(?P<head>\s*FROM\s+(--\S+\s+)*)(?P<image>\S+)(?P<tail>.*)$", re.IGNORECASE)
_ALIAS = re.compile(r"^\s+AS\s+(\S+)", re.IGNORECASE)
_COPY = re.compile(r"^\s*(COPY|ADD)\s", re.IGNORECASE)
_SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}$")


class ImageState(StrEnum):
    """Daytona's snapshot states that sandbay passes through."""

    PENDING = "pending"
    BUILDING = "building"
    ACTIVE = "active"
    INACTIVE = "inactive"
    ERROR = "error"
    BUILD_FAILED = "build_failed"
    REMOVING = "removing"


TERMINAL = frozenset({ImageState.ACTIVE, ImageState.ERROR, ImageState.BUILD_FAILED})


def _check_name(value: str) -> str:
    if not _SNAPSHOT_NAME.match(value):
        raise ValueError("must be 1-255 characters of letters, digits and ._:/@-")
    return value


def _check_dockerfile(value: str | None) -> str | None:
    if value is not None and (len(value) > MAX_DOCKERFILE or "\x00" in value):
        raise ValueError(f"must be at most {MAX_DOCKERFILE} characters without NUL bytes")
    return value


SnapshotName = Annotated[str, AfterValidator(_check_name)]
Dockerfile = Annotated[str, AfterValidator(_check_dockerfile)]


class ImageCreate(BaseModel):
    """A built image: from an image the runner has (`image`) or a Dockerfile."""

    model_config = ConfigDict(extra="forbid")

    name: SnapshotName
    image: str | None = Field(None, max_length=512, description="An image the runner has")
    dockerfile: Dockerfile | None = None
    context_hashes: list[str] = Field(default_factory=list)
    entrypoint: list[str] | None = None
    cpu: float = Field(1, gt=0, le=1024)
    gpu: int = Field(0, ge=0, le=64)
    memory_gb: float = Field(1, gt=0, le=16 * 1024)
    disk_gb: int = Field(3, ge=1, le=64 * 1024)
    #: Made for one environment's own build (hidden from listings, named by its hash).
    for_build: bool = False


class Image(BaseModel):
    """An image as the services give it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    org_id: str
    name: str
    ref: str
    dockerfile: str | None
    context_hashes: list[str]
    entrypoint: list[str] | None
    state: ImageState
    error_reason: str | None
    cpu: float
    gpu: int
    memory_gb: float
    disk_gb: int
    for_build: bool
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    built_at: datetime | None


def built_ref(image_id: str) -> str:
    """The tag a build gets on the runner."""
    return f"{BUILT_REPOSITORY}:{image_id.removeprefix(IMAGE_ID + '_')}"


def build_name(dockerfile: str) -> str:
    """The name of the image an environment's own build makes: the same Dockerfile
    is built once per organization."""
    return "build-" + hashlib.sha256(dockerfile.encode()).hexdigest()[:24]


def is_plain_name(value: str) -> bool:
    """A name an environment may use as its image (valid as an environment name)."""
    return bool(NAME_RE.match(value))


def local_base(image: str) -> str | None:
    """The local image a base that cannot be pulled maps to, if any."""
    return "sandbay-base:latest" if PYTHON_SLIM.match(image) else None


def from_images(dockerfile: str) -> list[str]:
    """The images the Dockerfile's FROM lines name, not counting earlier stages."""
    stages: set[str] = set()
    out = []
    for line in dockerfile.splitlines():
        m = _FROM.match(line)
        if m is None:
            continue
        if m.group("image").lower() not in stages:
            out.append(m.group("image"))
        alias = _ALIAS.match(m.group("tail"))
        if alias:
            stages.add(alias.group(1).lower())
    return out


def uses_context(dockerfile: str) -> bool:
    """Whether any instruction reads files from the build context."""
    return any(_COPY.match(line) for line in dockerfile.splitlines())


#: What a python image has and the local base lacks: `python` and `pip` (Debian's,
#: allowed to install into the system's Python as the python image's pip does).
PYTHON_SHIM = (
    "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
    "RUN command -v pip >/dev/null || (apt-get update && apt-get install -y "
    "--no-install-recommends python3-pip python-is-python3 && rm -rf /var/lib/apt/lists/*)",
)


def localize(dockerfile: str) -> str:
    """The Dockerfile with each base the runner cannot pull mapped to its local one
    (a python base then gets `python` and `pip`, as the SDK's steps expect)."""
    out = []
    for line in dockerfile.splitlines():
        m = _FROM.match(line)
        mapped = local_base(m.group("image")) if m else None
        if m is None or mapped is None:
            out.append(line)
            continue
        out.extend((f"{m.group('head')}{mapped}{m.group('tail')}", *PYTHON_SHIM))
    return "\n".join(out) + "\n"


def missing_base_message(image: str) -> str:
    """Why a build cannot start: its base is not on the runner, which cannot pull."""
    return (
        f"base image {image!r} is not on the runner and images cannot be pulled here; "
        "use an image the runner has (e.g. Image.base('sandbay-base:latest')); "
        "python:<version>-slim bases (Image.debian_slim) map to sandbay-base:latest "
        "(Debian bookworm with python3)"
    )


def image_id_of(ref: str) -> str | None:
    """The id of the built image `ref` names, if it names one."""
    repository, _, tag = ref.partition(":")
    if repository != BUILT_REPOSITORY or not re.fullmatch(r"[0-9a-f]{32}", tag):
        return None
    return f"{IMAGE_ID}_{tag}"
