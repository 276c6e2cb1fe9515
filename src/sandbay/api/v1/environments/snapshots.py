"""Snapshots of environments and forks: /v1/environments/{env}/snapshots and /fork,
/v1/snapshots."""

from typing import Annotated

from fastapi import APIRouter, Body, Path, status

from sandbay.api.deps import EnvRef, PrincipalDep, SessionDep, SnapshotsDep
from sandbay.domain.snapshots import (
    ForkRequest,
    ForkResult,
    Snapshot,
    SnapshotCreate,
    SnapshotList,
)

SnapshotRef = Annotated[str, Path(description="snapshot id (snap_…) or name", max_length=100)]

router = APIRouter(prefix="/v1", tags=["snapshots"])


@router.post("/environments/{env}/snapshots", status_code=status.HTTP_202_ACCEPTED)
async def create_snapshot(
    env: EnvRef,
    session: SessionDep,
    principal: PrincipalDep,
    snapshots: SnapshotsDep,
    body: Annotated[SnapshotCreate | None, Body()] = None,
) -> Snapshot:
    """Snapshot a running, paused or stopped environment: its root layer and
    /workspace, copied in the background (`creating`, then `ready` or `failed` with
    its `error`). A running one is frozen for the copy alone (`frozen_ms`) and keeps
    running. Counts toward the organization's `max_snapshots`."""
    return await snapshots.request(session, principal, env, body or SnapshotCreate())


@router.get("/environments/{env}/snapshots")
async def list_environment_snapshots(
    env: EnvRef, principal: PrincipalDep, snapshots: SnapshotsDep
) -> SnapshotList:
    """The environment's live snapshots, newest first."""
    return await snapshots.list(principal, env)


@router.post("/environments/{env}/fork", status_code=status.HTTP_202_ACCEPTED)
async def fork_environment(
    env: EnvRef,
    session: SessionDep,
    principal: PrincipalDep,
    snapshots: SnapshotsDep,
    body: Annotated[ForkRequest | None, Body()] = None,
) -> ForkResult:
    """Fork: one snapshot of the environment (frozen only for the copy; it keeps
    running), then `count` new environments made from it, each with its own id,
    name, volume and network identity, its labels and settings, and no SSH
    credentials or preview tokens. They are `creating` until the copy is ready."""
    return await snapshots.fork(session, principal, env, body or ForkRequest())


@router.get("/snapshots")
async def list_snapshots(principal: PrincipalDep, snapshots: SnapshotsDep) -> SnapshotList:
    """The organization's live snapshots, newest first, and the bytes they take."""
    return await snapshots.list(principal)


@router.get("/snapshots/{snapshot_id}")
async def get_snapshot(
    snapshot_id: SnapshotRef, principal: PrincipalDep, snapshots: SnapshotsDep
) -> Snapshot:
    """One snapshot, by id or name."""
    return await snapshots.read(principal, snapshot_id)


@router.delete("/snapshots/{snapshot_id}", status_code=status.HTTP_202_ACCEPTED)
async def delete_snapshot(
    snapshot_id: SnapshotRef, session: SessionDep, principal: PrincipalDep, snapshots: SnapshotsDep
) -> Snapshot:
    """Delete: its files are removed in the background (`deleting`). 409 while it is
    being made or environments are still being made from it."""
    return await snapshots.delete(session, principal, snapshot_id)
