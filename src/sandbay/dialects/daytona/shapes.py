"""Daytona's objects over sandbay's: the Sandbox (SandboxDto) every sandbox call
answers, its states, and CreateSandbox turned into a native create. Field names and
types are those of Daytona's OpenAPI and its Python SDK's models (`cpu`, `memory`
and `disk` are whole numbers there, so a fractional native quota is rounded up)."""

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from sandbay.dialects.kit import iso_millis, native, number, whole_up
from sandbay.domain.environments import (
    Environment,
    EnvironmentCreate,
    EnvironmentUpdate,
    ImageBuild,
)
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.images import ImageState, local_base
from sandbay.domain.states import DesiredState, EnvState

S = EnvState
STATE: dict[EnvState, str] = {
    S.CREATING: "creating",
    S.STARTING: "starting",
    S.RUNNING: "started",
    S.PAUSING: "pausing",
    S.PAUSED: "paused",
    S.RESUMING: "resuming",
    S.STOPPING: "stopping",
    S.STOPPED: "stopped",
    S.ARCHIVING: "archiving",
    S.ARCHIVED: "archived",
    S.RESTORING: "restoring",
    S.DELETING: "destroying",
    S.DELETED: "destroyed",
    S.ERROR: "error",
}
#: A sandbox waiting for its own image: Daytona's states while the build is queued
#: and while it runs (the SDK follows the build's log from these).
BUILD_STATE = {ImageState.PENDING: "pending_build", ImageState.BUILDING: "building_snapshot"}
NATIVE_STATE = {shown: state for state, shown in STATE.items()}
DESIRED: dict[DesiredState, str] = {
    DesiredState.RUNNING: "started",
    DesiredState.PAUSED: "paused",
    DesiredState.STOPPED: "stopped",
    DesiredState.ARCHIVED: "archived",
    DesiredState.DELETED: "destroyed",
}
#: One region: the runner's host. Daytona's `target` is echoed as this.
TARGET = "local"
MIB_PER_GB = 1024
_FROM = re.compile(r"^FROM\s+(?P<image>\S+)(\s+AS\s+\S+)?$", re.IGNORECASE)


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DaytonaSandbox(_Camel):
    """Daytona's Sandbox, with every field of the brief (and those the SDK requires)."""

    id: str
    organization_id: str
    name: str
    snapshot: str
    user: str
    env: dict[str, str]
    labels: dict[str, str]
    public: bool
    network_block_all: bool
    network_allow_list: str | None
    domain_allow_list: str | None = None
    target: str
    cpu: int
    gpu: int
    memory: int = Field(description="GB")
    disk: int = Field(description="GB")
    state: str
    desired_state: str
    auto_stop_interval: int | float
    auto_pause_interval: int | float = 0
    auto_archive_interval: int | float
    auto_delete_interval: int | float
    volumes: list[dict[str, Any]]
    created_at: str
    updated_at: str
    runner_id: str | None
    kvm: bool = False
    error_reason: str | None = None
    recoverable: bool = False
    last_activity_at: str | None = None
    auto_destroy_at: str | None = None
    toolbox_proxy_url: str

    @classmethod
    def of(
        cls, env: Environment, *, toolbox_url: str, build: ImageState | None = None
    ) -> "DaytonaSandbox":
        """`build`: the state of the image build a `creating` sandbox waits for."""
        return cls(
            id=env.id,
            organization_id=env.org_id,
            name=env.name,
            snapshot=env.image,
            user=env.user or "root",
            env=dict(env.env),
            labels=dict(env.labels),
            public=env.public,
            network_block_all=env.network_block_all,
            network_allow_list=",".join(env.network_allow_list) or None,
            domain_allow_list=",".join(env.network_domain_allow_list) or None,
            target=TARGET,
            cpu=whole_up(env.cpu),
            gpu=env.gpu,
            memory=whole_up(env.memory_mb / MIB_PER_GB),
            disk=env.disk_gb,
            state=BUILD_STATE.get(build, "") if build else STATE[env.state],
            desired_state=DESIRED[env.desired_state],
            auto_stop_interval=number(env.auto_stop_interval),
            auto_pause_interval=number(env.auto_pause_interval),
            auto_archive_interval=number(env.auto_archive_interval),
            auto_delete_interval=number(env.auto_delete_interval),
            volumes=[
                {"volumeId": v.volume_id, "mountPath": v.mount_path, "subpath": v.subpath}
                for v in env.volumes
            ],
            created_at=iso_millis(env.created_at) or "",
            updated_at=iso_millis(env.updated_at) or "",
            runner_id=env.runner_id,
            error_reason=env.error_message,
            # A start is tried again from `error`: the workspace volume survived.
            recoverable=env.state is S.ERROR and env.desired_state is not DesiredState.DELETED,
            last_activity_at=iso_millis(env.last_activity_at),
            auto_destroy_at=iso_millis(env.auto_destroy_at),
            toolbox_proxy_url=toolbox_url,
        )


class DaytonaSandboxList(_Camel):
    items: list[DaytonaSandbox]
    next_cursor: str | None


class DaytonaBuildInfo(_Camel):
    dockerfile_content: str = ""
    context_hashes: list[str] | None = None


class DaytonaCreateSandbox(_Camel):
    """CreateSandbox. Fields for abilities sandbay lacks (KVM, GPU types, outbound
    proxies, links) are refused when set."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    name: str | None = None
    snapshot: str | None = None
    build_info: DaytonaBuildInfo | None = None
    user: str | None = None
    env: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    public: bool | None = None
    network_block_all: bool | None = None
    network_allow_list: str | None = None
    target: str | None = None
    cpu: int | None = None
    gpu: int | None = None
    memory: int | None = Field(None, description="GB")
    disk: int | None = Field(None, description="GB")
    auto_stop_interval: int | None = None
    auto_archive_interval: int | None = None
    auto_delete_interval: int | None = None
    auto_pause_interval: int | None = None
    ttl_minutes: int | None = None
    volumes: list[dict[str, Any]] | None = None
    kvm: bool | None = None
    gpu_type: list[str] | None = None
    secrets: list[dict[str, str]] | None = Field(None, max_length=256)
    domain_allow_list: str | None = Field(None, max_length=4096)
    outbound_proxy_url: str | None = None
    linked_sandbox: str | None = None

    def unsupported(self) -> list[str]:
        """Fields set to something sandbay cannot do yet."""
        asked = {
            "kvm": bool(self.kvm),
            "gpuType": bool(self.gpu_type),
            "outboundProxyUrl": bool(self.outbound_proxy_url),
            "linkedSandbox": bool(self.linked_sandbox),
        }
        return [field for field, wanted in asked.items() if wanted]


def image_of(body: DaytonaCreateSandbox) -> tuple[str | None, ImageBuild | None]:
    """The snapshot (a snapshot's name or an image), the image of a build that is only
    `FROM <image>` (what the SDK sends for `CreateSandboxFromImageParams(image=
    "debian:12")`; a python slim base maps to the local one), or else the build the
    sandbox waits for (the SDK's declarative `Image`)."""
    if body.build_info is None:
        return body.snapshot, None
    if body.snapshot:
        raise InvalidRequest("Cannot specify a snapshot when using a build info entry")
    dockerfile = body.build_info.dockerfile_content
    lines = [
        line.strip()
        for line in dockerfile.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    match = _FROM.match(lines[0]) if len(lines) == 1 else None
    if match is not None and not body.build_info.context_hashes:
        return local_base(match.group("image")) or match.group("image"), None
    if not lines:
        raise InvalidRequest("buildInfo.dockerfileContent is empty")
    build = native(
        ImageBuild, dockerfile=dockerfile, context_hashes=body.build_info.context_hashes or []
    )
    return None, build


def volumes_of(body: DaytonaCreateSandbox) -> list[dict[str, Any]]:
    """SandboxVolume entries (`volumeId` is an ID or a name) as native mounts."""
    return [
        {
            "volume_id": v.get("volumeId") or v.get("volume_id"),
            "mount_path": v.get("mountPath") or v.get("mount_path"),
            "subpath": v.get("subpath"),
        }
        for v in body.volumes or []
    ]


def split_list(value: str | None) -> list[str]:
    """A comma-separated list (Daytona's CIDR and domain lists) as its entries."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def secrets_of(entries: list[dict[str, str]] | None) -> dict[str, str]:
    """Daytona's `[{VAR: secret name}, …]` as sandbay's `{VAR: secret name}`; a
    variable named twice is refused rather than one entry silently winning."""
    merged: dict[str, str] = {}
    for entry in entries or []:
        for var, name in entry.items():
            if var in merged:
                raise InvalidRequest(f"secrets: {var[:64]!r} is named twice")
            merged[var] = name
    return merged


def to_create(body: DaytonaCreateSandbox) -> EnvironmentCreate:
    unsupported = body.unsupported()
    if unsupported:
        raise InvalidRequest(f"not supported by this server: {', '.join(unsupported)}")
    allow = split_list(body.network_allow_list)
    domains = split_list(body.domain_allow_list)
    image, build = image_of(body)
    return native(
        EnvironmentCreate,
        name=body.name or None,
        image=image,
        build=build,
        volumes=volumes_of(body),
        user=body.user,
        env=body.env,
        labels=body.labels,
        public=body.public,
        network_block_all=body.network_block_all,
        network_allow_list=allow or None,
        network_domain_allow_list=domains or None,
        secrets=secrets_of(body.secrets) or None,
        cpu=body.cpu,
        gpu=body.gpu,
        memory_mb=body.memory * MIB_PER_GB if body.memory else None,
        disk_gb=body.disk,
        auto_stop_interval=body.auto_stop_interval,
        auto_pause_interval=body.auto_pause_interval,
        auto_archive_interval=body.auto_archive_interval,
        auto_delete_interval=body.auto_delete_interval,
    )


def interval_update(kind: str, minutes: int) -> EnvironmentUpdate:
    """`autostop`, `autopause`, `autoarchive` or `autodelete` in minutes, as a native
    update."""
    field = {
        "autostop": "auto_stop_interval",
        "autopause": "auto_pause_interval",
        "autoarchive": "auto_archive_interval",
        "autodelete": "auto_delete_interval",
    }[kind]
    return native(EnvironmentUpdate, **{field: minutes})
