"""Daytona's volumes (`/volumes…`): an organization's shared volumes, mounted into
sandboxes with `CreateSandbox.volumes` (several at once; a file one writes, another
reads). A volume is `ready` when created; a delete is refused while any sandbox that
is not destroyed mounts it, and then goes `pending_delete` → `deleted`."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from starlette.requests import HTTPConnection

from sandbay.api.deps import SessionDep, get_platform
from sandbay.dialects.kit import iso_millis, native
from sandbay.domain.volumes import Volume, VolumeCreate
from sandbay.services.volumes.service import VolumesService

from .errors import DaytonaPrincipal

router = APIRouter(prefix="/volumes", tags=["daytona"])


async def get_volumes(connection: HTTPConnection) -> VolumesService:
    return get_platform(connection).volumes


VolumesDep = Annotated[VolumesService, Depends(get_volumes)]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DaytonaCreateVolume(_Camel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    name: str


class DaytonaVolume(_Camel):
    """VolumeDto."""

    id: str
    name: str
    organization_id: str
    state: str
    created_at: str
    updated_at: str
    last_used_at: str | None
    error_reason: str | None

    @classmethod
    def of(cls, volume: Volume) -> "DaytonaVolume":
        return cls(
            id=volume.id,
            name=volume.name,
            organization_id=volume.org_id,
            state=volume.state.value,
            created_at=iso_millis(volume.created_at) or "",
            updated_at=iso_millis(volume.updated_at) or "",
            last_used_at=iso_millis(volume.last_used_at),
            error_reason=volume.error_reason,
        )


@router.post("")
async def create_volume(
    body: DaytonaCreateVolume, session: SessionDep, principal: DaytonaPrincipal, volumes: VolumesDep
) -> DaytonaVolume:
    """A new volume of the organization, ready at once (its storage is made when a
    sandbox first mounts it)."""
    volume = await volumes.create(session, principal, native(VolumeCreate, name=body.name))
    return DaytonaVolume.of(volume)


@router.get("")
async def list_volumes(
    session: SessionDep,
    principal: DaytonaPrincipal,
    volumes: VolumesDep,
    include_deleted: Annotated[bool, Query(alias="includeDeleted")] = False,
) -> list[DaytonaVolume]:
    """The organization's volumes, newest first."""
    found = await volumes.list(session, principal, include_deleted=include_deleted)
    return [DaytonaVolume.of(v) for v in found]


@router.get("/by-name/{name}")
async def get_volume_by_name(
    name: Annotated[str, Path(max_length=255)],
    session: SessionDep,
    principal: DaytonaPrincipal,
    volumes: VolumesDep,
) -> DaytonaVolume:
    """A live volume by name."""
    return DaytonaVolume.of(await volumes.read(session, principal, name))


@router.get("/{volumeId}")
async def get_volume(
    volume_id: Annotated[str, Path(alias="volumeId", max_length=255)],
    session: SessionDep,
    principal: DaytonaPrincipal,
    volumes: VolumesDep,
) -> DaytonaVolume:
    """A volume by ID (a deleted one too) or by name."""
    return DaytonaVolume.of(await volumes.read(session, principal, volume_id, include_deleted=True))


@router.delete("/{volumeId}")
async def delete_volume(
    volume_id: Annotated[str, Path(alias="volumeId", max_length=255)],
    session: SessionDep,
    principal: DaytonaPrincipal,
    volumes: VolumesDep,
) -> None:
    """Delete a volume: refused (409) while any sandbox that is not destroyed mounts
    it; its storage is removed in the background (`pending_delete` → `deleted`)."""
    await volumes.delete(session, principal, volume_id)
