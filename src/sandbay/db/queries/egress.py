"""Queries of egress by name: an organization's secrets, by id or name, and the ones
an environment is given."""

from collections.abc import Collection

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import OrgSecretModel


async def secret_of(session: AsyncSession, org_id: str, id_or_name: str) -> OrgSecretModel | None:
    """The organization's secret with this id or name (names never look like ids)."""
    query = select(OrgSecretModel).where(
        OrgSecretModel.org_id == org_id,
        or_(OrgSecretModel.id == id_or_name, OrgSecretModel.name == id_or_name),
    )
    return (await session.execute(query)).scalars().first()


async def secrets_of(session: AsyncSession, org_id: str) -> list[OrgSecretModel]:
    """An organization's secrets, by name."""
    query = (
        select(OrgSecretModel).where(OrgSecretModel.org_id == org_id).order_by(OrgSecretModel.name)
    )
    return list((await session.execute(query)).scalars())


async def secrets_named(
    session: AsyncSession, org_id: str, names: Collection[str]
) -> list[OrgSecretModel]:
    """The organization's secrets among `names` (those that exist)."""
    if not names:
        return []
    query = select(OrgSecretModel).where(
        OrgSecretModel.org_id == org_id, OrgSecretModel.name.in_(sorted(set(names)))
    )
    return list((await session.execute(query)).scalars())
