"""Queries of built images: one by id or name, a page of an organization's, the
builds due (pending, or building under a lease that ran out), and which live
environments run one."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import EnvironmentModel as Env
from sandbay.db.models import ImageModel as Img
from sandbay.domain.images import ImageState


async def get_live(session: AsyncSession, org_id: str, id_or_name: str) -> Img | None:
    """An image of `org_id` that is not deleted, by id or else by name."""
    base = select(Img).where(Img.org_id == org_id, Img.deleted_at.is_(None))
    found = (await session.execute(base.where(Img.id == id_or_name))).scalars().first()
    if found is None:
        found = (await session.execute(base.where(Img.name == id_or_name))).scalars().first()
    return found


async def build_state(session: AsyncSession, org_id: str, ref: str) -> ImageState | None:
    """The state of the organization's build that makes `ref`, if one does."""
    query = select(Img.state).where(Img.org_id == org_id, Img.ref == ref, Img.deleted_at.is_(None))
    return (await session.execute(query.limit(1))).scalars().first()


async def page(
    session: AsyncSession, org_id: str, *, offset: int, limit: int, name: str | None
) -> tuple[Sequence[Img], int]:
    """A page of the organization's images (newest first) and how many there are;
    the ones made for an environment's own build are not listed."""
    where = [Img.org_id == org_id, Img.deleted_at.is_(None), Img.for_build.is_(False)]
    if name:
        where.append(Img.name.contains(name, autoescape=True))
    total = (await session.execute(select(func.count()).select_from(Img).where(*where))).scalar()
    rows = await session.execute(
        select(Img).where(*where).order_by(Img.created_at.desc()).offset(offset).limit(limit)
    )
    return rows.scalars().all(), int(total or 0)


async def due_builds(session: AsyncSession, now: datetime, limit: int) -> list[str]:
    """Images waiting for the builder, or whose builder went away mid-build."""
    query = (
        select(Img.id)
        .where(
            Img.deleted_at.is_(None),
            or_(
                Img.state == ImageState.PENDING,
                (Img.state == ImageState.BUILDING) & (Img.lease_expires_at < now),
            ),
        )
        .order_by(Img.created_at)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def claim(
    session: AsyncSession, image_id: str, *, token: str, now: datetime, until: datetime
) -> bool:
    """Take a due image for building (one claimant wins)."""
    result = await session.execute(
        update(Img)
        .where(
            Img.id == image_id,
            Img.deleted_at.is_(None),
            or_(
                Img.state == ImageState.PENDING,
                (Img.state == ImageState.BUILDING) & (Img.lease_expires_at < now),
            ),
        )
        .values(
            state=ImageState.BUILDING,
            lease_token=token,
            lease_expires_at=until,
            build_log="",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def append_log(
    session: AsyncSession, image_id: str, *, token: str, log: str, until: datetime
) -> bool:
    """Write the build's log so far and renew the lease; False once it is not ours."""
    result = await session.execute(
        update(Img)
        .where(Img.id == image_id, Img.lease_token == token)
        .values(build_log=log, lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def finish(
    session: AsyncSession,
    image_id: str,
    *,
    token: str,
    state: ImageState,
    log: str,
    error: str | None,
    now: datetime,
) -> bool:
    result = await session.execute(
        update(Img)
        .where(Img.id == image_id, Img.lease_token == token)
        .values(
            state=state,
            build_log=log,
            error_reason=error,
            lease_token=None,
            lease_expires_at=None,
            updated_at=now,
            built_at=now if state is ImageState.ACTIVE else None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def removable(session: AsyncSession, limit: int) -> list[tuple[str, str]]:
    """(id, ref) of deleted images whose built image is still to be removed."""
    query = (
        select(Img.id, Img.ref)
        .where(Img.deleted_at.is_not(None), Img.state == ImageState.REMOVING)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in await session.execute(query)]


async def users(session: AsyncSession, org_id: str, ref: str) -> list[str]:
    """Live environments of the organization whose image is `ref`."""
    query = select(Env.id).where(Env.org_id == org_id, Env.image == ref, Env.deleted_at.is_(None))
    return list((await session.execute(query.limit(10))).scalars())


async def waiting_on(session: AsyncSession, ref: str) -> Sequence[Env]:
    """Environments held for this image's build (created, not yet due)."""
    query = select(Env).where(
        Env.image == ref, Env.deleted_at.is_(None), Env.next_attempt_at.is_(None)
    )
    return (await session.execute(query)).scalars().all()
