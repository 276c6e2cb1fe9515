"""Shared volumes as records: create, read, list, delete (refused while any live
environment mounts one), and the mounts an environment create asks for, resolved to
the organization's ready volumes. The storage itself is the runner's: made when an
environment first mounts the volume, removed by the images loop after a delete."""

from dataclasses import dataclass

from sandbay.db.cas import flush_unique
from sandbay.db.models import VolumeModel
from sandbay.db.queries import volumes as queries
from sandbay.db.session import AsyncSession
from sandbay.domain import ids
from sandbay.domain.errors import Conflict, InvalidRequest, NotFound
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.volumes import VOLUME_ID, Volume, VolumeCreate, VolumeMount, VolumeState
from sandbay.kit.clock import utcnow
from sandbay.kit.loops import Hint
from sandbay.services.tenancy.auth import require, require_organization_wide


@dataclass(frozen=True, slots=True)
class VolumesService:
    #: Wakes the loop that removes a deleted volume's storage.
    removed: Hint

    async def create(
        self, session: AsyncSession, principal: Principal, body: VolumeCreate
    ) -> Volume:
        """A new volume, ready at once (its storage is made on first mount)."""
        org_id = require_organization_wide(principal, Permission.ENVIRONMENTS_WRITE)
        if await queries.get(session, org_id, body.name) is not None:
            raise Conflict(f"Volume with name {body.name} already exists")
        row = VolumeModel(id=ids.new_id(VOLUME_ID), org_id=org_id, name=body.name)
        session.add(row)
        await flush_unique(session, f"Volume with name {body.name} already exists")
        return Volume.model_validate(row)

    async def read(
        self,
        session: AsyncSession,
        principal: Principal,
        id_or_name: str,
        *,
        include_deleted: bool = False,
    ) -> Volume:
        org_id = require(principal, Permission.ENVIRONMENTS_READ)
        row = await queries.get(session, org_id, id_or_name, include_deleted=include_deleted)
        if row is None:
            raise NotFound(f"Volume {id_or_name} not found")
        return Volume.model_validate(row)

    async def list(
        self, session: AsyncSession, principal: Principal, *, include_deleted: bool = False
    ) -> list[Volume]:
        org_id = require(principal, Permission.ENVIRONMENTS_READ)
        rows = await queries.listing(session, org_id, include_deleted=include_deleted)
        return [Volume.model_validate(r) for r in rows]

    async def delete(self, session: AsyncSession, principal: Principal, id_or_name: str) -> Volume:
        """Mark it `pending_delete` (its name is free at once); refused while any
        environment that is not deleted mounts it, whatever its state."""
        org_id = require_organization_wide(principal, Permission.ENVIRONMENTS_WRITE)
        row = await queries.get(session, org_id, id_or_name)
        if row is None:
            raise NotFound(f"Volume {id_or_name} not found")
        users = await queries.mounted_by(session, org_id, row.id)
        if users:
            raise Conflict(
                f"Volume {row.name} is in use by {len(users)} sandbox(es) "
                f"({', '.join(users[:3])}); delete them first"
            )
        now = utcnow()
        row.state = VolumeState.PENDING_DELETE
        row.deleted_at = now
        row.updated_at = now
        await session.flush()
        self.removed()
        return Volume.model_validate(row)


async def resolve_mounts(
    session: AsyncSession, org_id: str, mounts: list[VolumeMount]
) -> list[VolumeMount]:
    """The mounts with each volume named by its id, every one a ready volume of the
    organization (another organization's is not found, as if it did not exist)."""
    out = []
    now = utcnow()
    for mount in mounts:
        row = await queries.get(session, org_id, mount.volume_id)
        if row is None:
            raise NotFound(f"Volume {mount.volume_id} not found")
        if row.state is not VolumeState.READY:
            raise InvalidRequest(f"Volume {row.name} is not in a ready state ({row.state})")
        row.last_used_at = now
        out.append(mount.model_copy(update={"volume_id": row.id}))
    return out
