"""Snapshots and forks as requests: a snapshot is recorded `creating` (the snapshots
loop copies the files outside any request), listed, read and deleted; a fork is
one snapshot of a live environment and N environments made from it by the normal
create path, each waiting (not due) until the copy is ready."""

from dataclasses import dataclass

from sandbay.db.cas import flush_unique
from sandbay.db.models import EnvironmentModel, EnvironmentSnapshotModel, OrganizationModel
from sandbay.db.queries import snapshots as queries
from sandbay.db.queries import tenancy as tenancy_queries
from sandbay.db.queries.environments import environment_from_model
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain import ids
from sandbay.domain.environments import Environment, EnvironmentCreate, EnvironmentKind
from sandbay.domain.errors import Conflict, InvalidRequest, NotFound
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.snapshots import (
    COPIED_SETTINGS,
    SNAPSHOTTABLE,
    ForkRequest,
    ForkResult,
    Snapshot,
    SnapshotCreate,
    SnapshotList,
    SnapshotState,
    check_snapshot_quota,
    fork_names,
    settings_of,
)
from sandbay.kit.clock import utcnow
from sandbay.services.environments.records import get_environment
from sandbay.services.environments.service import EnvironmentsService
from sandbay.services.events.record import record_environment_event, record_event
from sandbay.services.tenancy.auth import require

#: Event types that make the snapshots loop look at once.
REQUESTED = "environment.snapshot_requested"
DELETED = "environment.snapshot_deleted"


async def _admit(session: AsyncSession, org_id: str) -> None:
    """Refuse a snapshot past `max_snapshots`; the org's row lock serialises two
    requests of one org (an org without the quota takes none)."""
    org = await session.get(OrganizationModel, org_id)
    if org is None or org.max_snapshots is None:
        return
    await tenancy_queries.lock_org(session, org_id)
    count, _ = await queries.totals(session, org_id)
    check_snapshot_quota(count, org.max_snapshots)


async def _record(
    session: AsyncSession, env: EnvironmentModel, name: str | None, actor: str
) -> EnvironmentSnapshotModel:
    if env.kind is not EnvironmentKind.MANAGED:
        raise InvalidRequest("a self-hosted environment has no container to snapshot")
    if env.state.value not in SNAPSHOTTABLE:
        raise Conflict(
            f"environment is {env.state.value}; only a running, paused or stopped "
            "environment can be snapshotted"
        )
    await _admit(session, env.org_id)
    if name is not None and await queries.name_taken(session, env.org_id, name):
        raise Conflict(f"a snapshot named {name!r} already exists")
    snap_id = ids.new_id(ids.SNAPSHOT)
    columns = {c: getattr(env, c) for c in (*COPIED_SETTINGS, "env_unset")}
    snap = EnvironmentSnapshotModel(
        id=snap_id,
        org_id=env.org_id,
        environment_id=env.id,
        name=name or snap_id,
        image=env.image,
        settings=settings_of(columns),
    )
    session.add(snap)
    record_environment_event(
        session, env, REQUESTED, actor=actor, data={"snapshot_id": snap_id, "name": snap.name}
    )
    await flush_unique(session, f"a snapshot named {snap.name!r} already exists")
    return snap


def _visible(principal: Principal, ref: str, snap: EnvironmentSnapshotModel | None) -> Snapshot:
    if snap is None or not principal.may_see_environment(snap.environment_id):
        raise NotFound(f"snapshot {ref!r} not found")
    return Snapshot.model_validate(snap)


async def being_made(session: AsyncSession, environment_id: str) -> bool:
    """Whether a snapshot of the environment is being made (Daytona's `snapshotting`)."""
    return await queries.being_made(session, environment_id)


@dataclass(frozen=True, slots=True)
class SnapshotsService:
    environments: EnvironmentsService

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.environments.sessions

    async def request(
        self, session: AsyncSession, principal: Principal, env_ref: str, body: SnapshotCreate
    ) -> Snapshot:
        """Record the snapshot (`creating`); the snapshots loop copies the files."""
        env = await get_environment(session, principal, env_ref, Permission.ENVIRONMENTS_WRITE)
        return Snapshot.model_validate(await _record(session, env, body.name, principal.actor))

    async def fork(
        self, session: AsyncSession, principal: Principal, env_ref: str, body: ForkRequest
    ) -> ForkResult:
        """One snapshot of the source, and `count` environments made from it."""
        env = await get_environment(session, principal, env_ref, Permission.ENVIRONMENTS_WRITE)
        snap = await _record(session, env, None, principal.actor)
        made = []
        for name in fork_names(body.name_prefix, body.count, body.name):
            given = {"labels": body.labels} if body.labels is not None else {}
            create = EnvironmentCreate.model_validate({"snapshot": snap.id, "name": name, **given})
            made.append(await self.environments.create(session, principal, create))
        return ForkResult(snapshot=Snapshot.model_validate(snap), environments=made)

    async def forks(
        self, principal: Principal, env_ref: str, *, include_deleted: bool = False
    ) -> list[Environment]:
        """The environments made from this environment's snapshots (forks)."""
        async with self.sessions() as session:
            env = await get_environment(session, principal, env_ref, include_deleted=True)
            rows = await queries.forks_of(session, env.id, include_deleted=include_deleted)
            return [environment_from_model(r) for r in rows if principal.may_see_environment(r.id)]

    async def find(self, session: AsyncSession, principal: Principal, ref: str) -> Snapshot | None:
        """The organization's live snapshot `ref` (id or name), or None."""
        org_id = require(principal, Permission.ENVIRONMENTS_READ)
        snap = await queries.get_live(session, org_id, ref)
        return Snapshot.model_validate(snap) if snap is not None else None

    async def read(self, principal: Principal, ref: str) -> Snapshot:
        org_id = require(principal, Permission.ENVIRONMENTS_READ)
        async with self.sessions() as session:
            return _visible(principal, ref, await queries.get_live(session, org_id, ref))

    async def list(self, principal: Principal, env_ref: str | None = None) -> SnapshotList:
        """The organization's live snapshots (of one environment, if given), newest
        first, with the bytes they take and the quota."""
        org_id = require(principal, Permission.ENVIRONMENTS_READ)
        async with self.sessions() as session:
            env_id = None
            if env_ref is not None:
                env = await get_environment(session, principal, env_ref, include_deleted=True)
                env_id = env.id
            rows = await queries.list_live(session, org_id, environment_id=env_id)
            _, total = await queries.totals(session, org_id)
            org = await session.get(OrganizationModel, org_id)
        seen = [
            Snapshot.model_validate(r)
            for r in rows
            if principal.may_see_environment(r.environment_id)
        ]
        return SnapshotList(
            data=seen, total_bytes=total, max_snapshots=org.max_snapshots if org else None
        )

    async def delete(self, session: AsyncSession, principal: Principal, ref: str) -> Snapshot:
        """Mark it `deleting`; the snapshots loop removes its files. Refused while it
        is being made or while environments are still being made from it."""
        org_id = require(principal, Permission.ENVIRONMENTS_WRITE)
        snap = await queries.get_live(session, org_id, ref)
        _visible(principal, ref, snap)
        assert snap is not None
        if snap.state is SnapshotState.DELETING:
            return Snapshot.model_validate(snap)
        if snap.state is SnapshotState.CREATING:
            raise Conflict(f"snapshot {snap.name!r} is still being made; delete it once ready")
        if await queries.waiting_forks(session, snap.id):
            raise Conflict(f"environments are still being made from snapshot {snap.name!r}")
        snap.state, snap.updated_at = SnapshotState.DELETING, utcnow()
        record_event(
            session,
            org_id=org_id,
            environment_id=snap.environment_id,
            type=DELETED,
            actor=principal.actor,
            data={"snapshot_id": snap.id, "name": snap.name},
        )
        await session.flush()
        return Snapshot.model_validate(snap)
