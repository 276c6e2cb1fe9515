"""Daytona's snapshots (`/snapshots…`): images the runner has or builds from the
SDK's declarative `Image` (a Dockerfile) in the background (`pending`, `building`,
then `active` or `build_failed`), with the build's log followed while it runs; the
build logs of a sandbox made from an `Image` (`/sandbox/{id}/build-logs…`). The
object-storage push for local files is in `storage`."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.requests import HTTPConnection

from sandbay.api.deps import SessionDep, get_platform
from sandbay.dialects.kit import iso_millis, native, number
from sandbay.domain.errors import InvalidRequest, NotFound
from sandbay.domain.images import Image, ImageCreate, image_id_of
from sandbay.domain.keys import Principal
from sandbay.services.environments import records as envs
from sandbay.services.images.service import ImagesService

from .errors import DaytonaPrincipal
from .shapes import TARGET, DaytonaBuildInfo

router = APIRouter(tags=["daytona"])
SnapshotId = Annotated[str, Path(alias="id", description="ID or name of the snapshot")]


async def get_images(connection: HTTPConnection) -> ImagesService:
    return get_platform(connection).images


ImagesDep = Annotated[ImagesService, Depends(get_images)]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DaytonaCreateSnapshot(_Camel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    name: str
    image_name: str | None = None
    entrypoint: list[str] | None = None
    cpu: int | None = Field(None, ge=1)
    gpu: int | None = Field(None, ge=0)
    gpu_type: list[str] | None = None
    memory: int | None = Field(None, ge=1, description="GB")
    disk: int | None = Field(None, ge=1, description="GB")
    build_info: DaytonaBuildInfo | None = None
    region_id: str | None = None
    sandbox_class: str | None = None

    def to_native(self) -> ImageCreate:
        if self.gpu_type:
            raise InvalidRequest("not supported by this server: gpuType")
        if self.region_id not in (None, "", TARGET):
            raise InvalidRequest(f"unknown region {self.region_id!r}: this server has {TARGET!r}")
        build = self.build_info
        return native(
            ImageCreate,
            name=self.name,
            image=self.image_name or None,
            dockerfile=build.dockerfile_content if build else None,
            context_hashes=(build.context_hashes or []) if build else [],
            entrypoint=self.entrypoint,
            cpu=self.cpu or 1,
            gpu=self.gpu or 0,
            memory_gb=self.memory or 1,
            disk_gb=self.disk or 3,
        )


class DaytonaSnapshot(_Camel):
    """SnapshotDto."""

    id: str
    organization_id: str
    general: bool
    name: str
    image_name: str
    state: str
    size: float | None
    entrypoint: list[str] | None
    cpu: int | float
    gpu: int | float
    mem: int | float
    disk: int | float
    error_reason: str | None
    created_at: str
    updated_at: str
    last_used_at: str | None
    build_info: dict[str, Any] | None
    region_ids: list[str]
    initial_runner_id: str | None
    ref: str
    source_sandbox_id: str | None
    sandbox_class: str | None

    @classmethod
    def of(cls, image: Image) -> "DaytonaSnapshot":
        build = None
        if image.dockerfile is not None:
            build = {
                "dockerfileContent": image.dockerfile,
                "contextHashes": image.context_hashes,
                "createdAt": iso_millis(image.created_at),
                "updatedAt": iso_millis(image.updated_at),
                "snapshotRef": image.ref,
            }
        return cls(
            id=image.id,
            organization_id=image.org_id,
            general=False,
            name=image.name,
            image_name=image.ref,
            state=image.state.value,
            size=None,
            entrypoint=image.entrypoint,
            cpu=number(image.cpu),
            gpu=image.gpu,
            mem=number(image.memory_gb),
            disk=image.disk_gb,
            error_reason=image.error_reason,
            created_at=iso_millis(image.created_at) or "",
            updated_at=iso_millis(image.updated_at) or "",
            last_used_at=iso_millis(image.last_used_at),
            build_info=build,
            region_ids=[TARGET],
            initial_runner_id=None,
            ref=image.ref,
            source_sandbox_id=None,
            sandbox_class=None,
        )


class DaytonaSnapshotPage(_Camel):
    items: list[DaytonaSnapshot]
    total: int
    page: int
    total_pages: int


class DaytonaUrl(BaseModel):
    url: str


def _text(chunks: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")


@router.post("/snapshots")
async def create_snapshot(
    body: DaytonaCreateSnapshot,
    session: SessionDep,
    principal: DaytonaPrincipal,
    images: ImagesDep,
) -> DaytonaSnapshot:
    """Register an image the runner has (`imageName`), or build one from `buildInfo`
    (the SDK's `Image`) in the background: it answers `pending`."""
    return DaytonaSnapshot.of(await images.create(session, principal, body.to_native()))


@router.get("/snapshots")
async def list_snapshots(
    session: SessionDep,
    principal: DaytonaPrincipal,
    images: ImagesDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    name: Annotated[str | None, Query(max_length=255)] = None,
    source_sandbox_id: Annotated[str | None, Query(alias="sourceSandboxId")] = None,
) -> DaytonaSnapshotPage:
    """The organization's snapshots, newest first, a page at a time."""
    if source_sandbox_id:
        return DaytonaSnapshotPage(items=[], total=0, page=page, total_pages=0)
    items, total = await images.page(session, principal, page=page, limit=limit, name=name)
    return DaytonaSnapshotPage(
        items=[DaytonaSnapshot.of(i) for i in items],
        total=total,
        page=page,
        total_pages=(total + limit - 1) // limit,
    )


@router.get("/snapshots/{id}")
async def get_snapshot(
    snapshot: SnapshotId, session: SessionDep, principal: DaytonaPrincipal, images: ImagesDep
) -> DaytonaSnapshot:
    """One snapshot, by ID or name."""
    return DaytonaSnapshot.of(await images.read(session, principal, snapshot))


@router.delete("/snapshots/{id}")
async def remove_snapshot(
    snapshot: SnapshotId, session: SessionDep, principal: DaytonaPrincipal, images: ImagesDep
) -> None:
    """Delete a snapshot; refused (409) while a sandbox that is not destroyed was made
    from a built one. What sandbay built is removed from the runner afterwards."""
    await images.delete(session, principal, snapshot)


@router.post("/snapshots/{id}/activate")
async def activate_snapshot(
    snapshot: SnapshotId, session: SessionDep, principal: DaytonaPrincipal, images: ImagesDep
) -> DaytonaSnapshot:
    """Snapshots here are never deactivated: an active one is returned as it is."""
    return DaytonaSnapshot.of(await images.activate(session, principal, snapshot))


@router.post("/snapshots/{id}/deactivate")
async def deactivate_snapshot(snapshot: SnapshotId, principal: DaytonaPrincipal) -> None:
    """Not offered: snapshots here stay active until deleted."""
    raise InvalidRequest("deactivating snapshots is not supported by this server")


@router.get("/snapshots/{id}/build-logs-url")
async def get_snapshot_build_logs_url(
    snapshot: SnapshotId,
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
    images: ImagesDep,
) -> DaytonaUrl:
    """Where the snapshot's build log is read (this server)."""
    image = await images.read(session, principal, snapshot)
    return DaytonaUrl(url=str(request.url_for("get_snapshot_build_logs", id=image.id)))


@router.get("/snapshots/{id}/build-logs")
async def get_snapshot_build_logs(
    snapshot: SnapshotId,
    session: SessionDep,
    principal: DaytonaPrincipal,
    images: ImagesDep,
    follow: bool = False,
) -> StreamingResponse:
    """The build's output as text; with `follow`, streamed until the build ends."""
    image = await images.read(session, principal, snapshot)
    return _text(images.follow_log(principal, image.id, follow=follow))


async def _sandbox_image(session: SessionDep, principal: Principal, sandbox: str) -> str:
    env = await envs.read_environment(session, principal, sandbox)
    image_id = image_id_of(env.image)
    if image_id is None:
        raise NotFound(f"Sandbox {sandbox} was not built from an image: it has no build logs")
    return image_id


@router.get("/sandbox/{sandboxIdOrName}/build-logs-url")
async def get_build_logs_url(
    sandbox: Annotated[str, Path(alias="sandboxIdOrName")],
    request: Request,
    session: SessionDep,
    principal: DaytonaPrincipal,
) -> DaytonaUrl:
    """Where the log of the sandbox's own build is read."""
    await _sandbox_image(session, principal, sandbox)
    return DaytonaUrl(url=str(request.url_for("get_build_logs", sandboxIdOrName=sandbox)))


@router.get("/sandbox/{sandboxIdOrName}/build-logs")
async def get_build_logs(
    sandbox: Annotated[str, Path(alias="sandboxIdOrName")],
    session: SessionDep,
    principal: DaytonaPrincipal,
    images: ImagesDep,
    follow: bool = False,
) -> StreamingResponse:
    """The sandbox's own build output; with `follow`, until the build ends."""
    image_id = await _sandbox_image(session, principal, sandbox)
    await images.read(session, principal, image_id)
    return _text(images.follow_log(principal, image_id, follow=follow))
