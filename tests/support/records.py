"""Keyword-only record factories for in-process tests: rows written directly
(no HTTP, no service), each with every column a test does not care about filled
in, and flushed so that it has its id and version."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from sandbay.db.models import ApiKeyModel, EnvironmentModel, OrganizationModel, WorkItemModel
from sandbay.domain import ids
from sandbay.domain.environments import EnvironmentKind
from sandbay.domain.keys import KeyKind, Permission, Principal, generate_key, hash_key
from sandbay.domain.states import DesiredState, EnvState
from sandbay.domain.work import LeasePolicy, WorkState
from sandbay.kit.clock import utcnow

RUNNER = "services-tests"
R = TypeVar("R")

#: The intent an environment found in a state most plausibly carries.
DESIRED_IN: dict[EnvState, DesiredState] = {
    EnvState.CREATING: DesiredState.RUNNING,
    EnvState.STARTING: DesiredState.RUNNING,
    EnvState.RUNNING: DesiredState.RUNNING,
    EnvState.PAUSING: DesiredState.PAUSED,
    EnvState.PAUSED: DesiredState.PAUSED,
    EnvState.RESUMING: DesiredState.RUNNING,
    EnvState.STOPPING: DesiredState.STOPPED,
    EnvState.STOPPED: DesiredState.STOPPED,
    EnvState.ARCHIVING: DesiredState.ARCHIVED,
    EnvState.ARCHIVED: DesiredState.ARCHIVED,
    EnvState.RESTORING: DesiredState.RUNNING,
    EnvState.DELETING: DesiredState.DELETED,
    EnvState.DELETED: DesiredState.DELETED,
    EnvState.ERROR: DesiredState.RUNNING,
}


async def _flushed(session: AsyncSession, row: R) -> R:
    """`row` added and flushed, so that it has its id and version."""
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True, slots=True)
class Key:
    """An API key row and its secret (shown once, as the API does)."""

    row: ApiKeyModel
    secret: str

    @property
    def principal(self) -> Principal:
        """The caller this key authenticates as."""
        row = self.row
        return Principal(
            org_id=row.org_id,
            key_id=row.id,
            kind=KeyKind(row.kind),
            permissions=frozenset(Permission(p) for p in row.permissions),
            environment_ids=frozenset(row.environment_ids)
            if row.environment_ids is not None
            else None,
            expires_at=row.expires_at,
        )


async def create_org(
    session: AsyncSession, *, name: str | None = None, **quotas: Any
) -> OrganizationModel:
    """An organization; `quotas` are its `max_running_*` columns (unlimited if absent)."""
    org = OrganizationModel(
        id=ids.new_id(ids.ORGANIZATION),
        name=name or f"org-{uuid.uuid4().hex[:10]}",
        created_at=utcnow(),
        quota_version=0,
        **quotas,
    )
    return await _flushed(session, org)


async def create_key(
    session: AsyncSession,
    *,
    org: OrganizationModel,
    permissions: list[Permission] | None = None,
    environment_ids: list[str] | None = None,
    expires_at: datetime | None = None,
    name: str = "test",
) -> Key:
    """An organization key, or a scoped one when `permissions` is given."""
    kind = KeyKind.ORGANIZATION if permissions is None else KeyKind.SCOPED
    secret = generate_key(kind)
    row = ApiKeyModel(
        id=ids.new_id(ids.API_KEY),
        org_id=org.id,
        name=name,
        kind=kind.value,
        prefix=secret[:12],
        key_hash=hash_key(secret),
        permissions=sorted(p.value for p in permissions or []),
        environment_ids=environment_ids,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    return Key(row=await _flushed(session, row), secret=secret)


async def create_environment_record(
    session: AsyncSession,
    *,
    org: OrganizationModel,
    state: EnvState = EnvState.RUNNING,
    desired: DesiredState | None = None,
    **fields: Any,
) -> EnvironmentModel:
    """An environment found in `state` (no container behind it: nothing here calls
    an engine). A running one has been running for a minute unless `started_at`
    says otherwise; `fields` set any other column."""
    now = utcnow()
    env_id = ids.new_id(ids.ENVIRONMENT)
    columns: dict[str, Any] = {
        "id": env_id,
        "org_id": org.id,
        "name": env_id,
        "kind": EnvironmentKind.MANAGED,
        "image": "sandbay-base:latest",
        "command": None,
        "install_command": None,
        "env": {},
        "labels": {},
        "user": None,
        "cpu": 1.0,
        "memory_mb": 512,
        "disk_gb": 10,
        "gpu": 0,
        "pids_limit": 1024,
        "public": False,
        "network_block_all": False,
        "network_allow_list": [],
        "auto_stop_interval": 0,
        "auto_archive_interval": 0,
        "auto_delete_interval": -1,
        "auto_restart": False,
        "max_lifetime": 0,
        "pre_stop": None,
        "state": state,
        "desired_state": desired or DESIRED_IN[state],
        "runner_id": RUNNER,
        "restart_count": 0,
        "restart_streak": 0,
        "running_seconds": 0.0,
        "stop_force": False,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "state_changed_at": now,
        "last_activity_at": now,
        "next_attempt_at": None,
        "started_at": now - timedelta(minutes=1) if state is EnvState.RUNNING else None,
        "deleted_at": now if state is EnvState.DELETED else None,
    }
    columns.update(fields)
    return await _flushed(session, EnvironmentModel(**columns))


async def create_work_item(
    session: AsyncSession,
    *,
    env: EnvironmentModel,
    state: WorkState = WorkState.QUEUED,
    on_lease_expired: LeasePolicy = LeasePolicy.REQUEUE,
    max_attempts: int = 3,
    **fields: Any,
) -> WorkItemModel:
    """A work item on `env` (a self-hosted environment) found in `state`."""
    now = utcnow()
    columns: dict[str, Any] = {
        "id": ids.new_id(ids.WORK_ITEM),
        "org_id": env.org_id,
        "environment_id": env.id,
        "state": state,
        "data": {},
        "meta": {},
        "on_lease_expired": on_lease_expired,
        "max_attempts": max_attempts,
        "attempts": 0 if state is WorkState.QUEUED else 1,
        "deliveries": 0,
        "created_at": now,
        "updated_at": now,
    }
    columns.update(fields)
    return await _flushed(session, WorkItemModel(**columns))
