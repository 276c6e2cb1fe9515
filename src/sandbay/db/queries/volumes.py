"""Queries of shared volumes: one by id or name, an organization's, those waiting
for their storage to be removed, and the live environments that mount one."""

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
from sandbay.db.models import VolumeModel as Vol
from sandbay.domain.volumes import VolumeState


async def get(
    session: AsyncSession, org_id: str, id_or_name: str, *, include_deleted: bool = False
) -> Vol | None:
    """A volume of `org_id` by id, or else a live one by name."""
    base = select(Vol).where(Vol.org_id == org_id)
    found = (await session.execute(base.where(Vol.id == id_or_name))).scalars().first()
    if found is not None and (include_deleted or found.deleted_at is None):
        return found
    live = base.where(Vol.name == id_or_name, Vol.deleted_at.is_(None))
    return (await session.execute(live)).scalars().first()


async def listing(session: AsyncSession, org_id: str, *, include_deleted: bool) -> Sequence[Vol]:
    query = select(Vol).where(Vol.org_id == org_id)
    if not include_deleted:
        query = query.where(Vol.deleted_at.is_(None))
    return (await session.execute(query.order_by(Vol.created_at.desc()))).scalars().all()


async def removable(session: AsyncSession, limit: int) -> list[str]:
    """Ids of deleted volumes whose storage is still to be removed."""
    query = select(Vol.id).where(Vol.state == VolumeState.PENDING_DELETE).limit(limit)
    return list((await session.execute(query)).scalars())


async def mounted_by(session: AsyncSession, org_id: str, volume_id: str) -> list[str]:
    """Live (not deleted) environments of the organization that mount the volume.
    Mounts are JSON, read here for the org's environments that have any."""
    query = select(Env.id, Env.volumes).where(Env.org_id == org_id, Env.deleted_at.is_(None))
    return [
        row[0]
        for row in await session.execute(query)
        if any(m.get("volume_id") == volume_id for m in row[1] or [])
    ]


async def set_state(session: AsyncSession, volume_id: str, state: VolumeState) -> None:
    await session.execute(update(Vol).where(Vol.id == volume_id).values(state=state))
