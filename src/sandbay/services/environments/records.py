"""Environments as records: create, read, list, update. Lifecycle requests are in
`services.lifecycle`; engine work is the reconciler's. What callers get is the
domain shape (`Environment`); `get_environment` hands the row to other services
that change it."""

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pydantic import TypeAdapter

from sandbay.db.cas import flush_unique, with_cas_retry
from sandbay.db.models import EnvironmentModel, EnvironmentSnapshotModel, OrganizationModel
from sandbay.db.queries import environments as queries
from sandbay.db.queries import snapshots as snapshot_queries
from sandbay.db.queries.environments import environment_from_model
from sandbay.db.session import AsyncSession
from sandbay.domain import ids
from sandbay.domain.egress import TRUST_VARIABLES
from sandbay.domain.environments import (
    Environment,
    EnvironmentCreate,
    EnvironmentKind,
    EnvironmentList,
    EnvironmentUpdate,
    hostname_for,
    workload_argv,
)
from sandbay.domain.errors import Conflict, InvalidRequest, NotFound, PreconditionFailed
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.placement import Demand
from sandbay.domain.pools import WarmPoolSpec, claim_key
from sandbay.domain.runtime import (
    RUNSC_MIN_PIDS_LIMIT,
    ContainerSpec,
    NetworkRules,
    Runtime,
    SharedMount,
    recorded_runtime,
)
from sandbay.domain.snapshots import SnapshotState, fork_fields
from sandbay.domain.states import DesiredState, EnvState
from sandbay.domain.variables import change_variables
from sandbay.kit.clock import utcnow
from sandbay.runtime.provider import RuntimeProvider
from sandbay.services.egress import attached
from sandbay.services.environments import pools
from sandbay.services.environments.activity import record_activity
from sandbay.services.events.record import record_environment_event
from sandbay.services.images.service import plan_image
from sandbay.services.tenancy.auth import require
from sandbay.services.tenancy.quotas import admit
from sandbay.services.volumes.service import resolve_mounts

MIB = 1024 * 1024


class Cluster(Protocol):
    """Many runners (a Swarm): picks the one a new environment goes to."""

    async def place(
        self, session: AsyncSession, demand: Demand, *, exclude: Collection[str] = ()
    ) -> str:
        """The chosen runner's id (a pinned demand may name it by id or hostname), never
        one of `exclude`; 409 when none fits (saying why), 503 if none is up."""
        ...


@dataclass(frozen=True, slots=True)
class Placement:
    """Where new environments go and what they default to. With warm pools
    configured, a create first tries to claim a ready member (a compare-and-set
    that any replica may win, whichever process warmed it)."""

    runner_id: str
    default_image: str
    warm_pools: tuple[WarmPoolSpec, ...] = ()
    #: Object storage receives builds' local files (else such builds are refused).
    build_contexts: bool = False
    #: Runtime of a create that names none, in an organization with no default.
    default_runtime: Runtime = Runtime.RUNC
    #: With many runners, where each new environment goes (else: `runner_id`).
    cluster: Cluster | None = None


async def get_environment(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    permission: Permission = Permission.ENVIRONMENTS_READ,
    *,
    include_deleted: bool = False,
) -> EnvironmentModel:
    """An environment of the caller's org; another org's is 404, never 403."""
    org_id = require(principal, permission)
    env = await queries.get_live(session, org_id, id_or_name, include_deleted=include_deleted)
    return _visible(principal, id_or_name, env)


_Found = TypeVar("_Found", EnvironmentModel, Environment)


def _visible(principal: Principal, id_or_name: str, env: _Found | None) -> _Found:
    if env is None or not principal.may_see_environment(env.id):
        raise NotFound(f"environment {id_or_name!r} not found")
    return env


async def read_environment(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    permission: Permission = Permission.ENVIRONMENTS_READ,
    *,
    include_deleted: bool = False,
) -> Environment:
    """`get_environment` as the domain shape, read from its columns (a read changes
    nothing, so it needs no ORM row)."""
    org_id = require(principal, permission)
    env = await queries.read_live(session, org_id, id_or_name, include_deleted=include_deleted)
    return _visible(principal, id_or_name, env)


async def _check_fits(
    provider: RuntimeProvider, body: EnvironmentCreate, image: str | None, runtime: Runtime
) -> None:
    host = await provider.host_resources()
    if runtime not in host.runtimes:
        raise InvalidRequest(
            f"runtime {runtime.value!r} is not installed on the runner "
            f"(it has {', '.join(sorted(host.runtimes))}); `make setup` installs runsc"
        )
    if runtime is Runtime.RUNSC and body.gpu:
        raise InvalidRequest("runtime 'runsc' (gVisor) cannot pass GPUs through: use runc")
    if runtime is Runtime.RUNSC and body.pids_limit < RUNSC_MIN_PIDS_LIMIT:
        raise InvalidRequest(
            f"pids_limit {body.pids_limit} is too small for runtime 'runsc' (gVisor): its "
            f"limit counts the sandbox's own threads (about 10 per process inside); give "
            f"at least {RUNSC_MIN_PIDS_LIMIT}"
        )
    if body.cpu > host.cpus:
        raise InvalidRequest(f"cpu {body.cpu:g} exceeds the runner's {host.cpus:g} CPUs")
    if body.memory_mb * MIB > host.memory_bytes:
        raise InvalidRequest(
            f"memory_mb {body.memory_mb} exceeds the runner's {host.memory_bytes // MIB} MB"
        )
    if body.gpu > host.gpus:
        raise InvalidRequest(f"gpu {body.gpu} requested; the runner has {host.gpus}")
    if image is not None and not await provider.image_available(image):
        raise InvalidRequest(f"image {image!r} not found on the runner or its registry")


async def create_environment(
    session: AsyncSession,
    principal: Principal,
    body: EnvironmentCreate,
    *,
    provider: RuntimeProvider,
    placement: Placement,
) -> Environment:
    """Validate, record the environment in `creating` with desired state `running`
    and let the reconciler build it. Nothing is written if validation fails."""
    org_id = require(principal, Permission.ENVIRONMENTS_WRITE)
    if principal.environment_ids is not None:
        raise InvalidRequest("a key restricted to given environments cannot create new ones")
    seed, body = await _seeded(session, org_id, body)
    await attached.check_attachable(session, principal, org_id, body.secrets)
    planned = await plan_image(
        session,
        org_id,
        body.image,
        body.build,
        default=placement.default_image,
        contexts=placement.build_contexts,
    )
    image = planned.ref
    mounts = await resolve_mounts(session, org_id, body.volumes)
    # An image still to be built is not on the runner yet: the environment waits for it.
    runtime = (
        body.runtime or await _org_default_runtime(session, org_id) or placement.default_runtime
    )
    await _check_fits(provider, body, image if planned.ready else None, runtime)
    if body.kind is EnvironmentKind.MANAGED:
        await admit(session, org_id, cpu=body.cpu, memory_mb=body.memory_mb)
    if body.name and await queries.name_taken(session, org_id, body.name):
        raise Conflict(f"an environment named {body.name!r} already exists")
    # Pools may also be made through the API at any time: a matching create always
    # looks for a ready member (one indexed query).
    pooled = (
        planned.ready
        and not mounts
        and runtime is Runtime.RUNC
        and seed is None
        and not body.runner_labels
    )
    key = claim_key(org_id, image, body) if pooled else None
    if key is not None:
        claimed = await pools.claim(session, key, body, body.name, principal.actor)
        if claimed is not None:
            return environment_from_model(claimed)
    env_id = ids.new_id(ids.ENVIRONMENT)
    name = body.name or env_id
    runner_id = None
    if body.kind is EnvironmentKind.MANAGED:
        runner_id = placement.runner_id
        if placement.cluster is not None:
            demand = Demand(
                cpu=body.cpu,
                memory_bytes=body.memory_mb * MIB,
                image=image or "",
                labels=body.runner_labels,
                key=env_id,
            )
            runner_id = await placement.cluster.place(session, demand)
    elif body.runner_labels:
        raise InvalidRequest("runner_labels place managed environments only")
    # Every field of the request is a column; the model fills in its bookkeeping.
    env = EnvironmentModel(
        **body.model_dump(
            exclude={"name", "image", "build", "volumes", "runtime", "snapshot", "runner_labels"}
        ),
        volumes=[m.model_dump() for m in mounts],
        runtime=runtime.value,
        id=env_id,
        org_id=org_id,
        name=name,
        image=image,
        runner_id=runner_id,
    )
    if not planned.ready:
        env.next_attempt_at = None  # not due until the images loop has built its image
    if seed is not None:
        env.snapshot_id = seed.id
        if seed.state is not SnapshotState.READY:
            env.next_attempt_at = None  # not due until the snapshots loop has copied it
    session.add(env)
    record_environment_event(
        session, env, "environment.created", actor=principal.actor, data={"image": image}
    )
    # The unique index refuses a name another create took meanwhile.
    await flush_unique(session, f"an environment named {name!r} already exists")
    return environment_from_model(env)


async def _seeded(
    session: AsyncSession, org_id: str, body: EnvironmentCreate
) -> tuple[EnvironmentSnapshotModel | None, EnvironmentCreate]:
    """A create from a snapshot: the snapshot (ready, or still being made) and the
    request with the snapshot's settings under the fields it gave."""
    if body.snapshot is None:
        return None, body
    snap = await snapshot_queries.get_live(session, org_id, body.snapshot)
    if snap is None:
        raise NotFound(f"snapshot {body.snapshot!r} not found")
    if snap.state not in (SnapshotState.READY, SnapshotState.CREATING):
        why = f": {snap.error}" if snap.error else ""
        raise Conflict(f"snapshot {snap.name!r} is {snap.state.value}{why}")
    if body.build is not None or body.kind is not EnvironmentKind.MANAGED:
        raise InvalidRequest("an environment made from a snapshot takes its image: no build")
    if body.image is not None and body.image != snap.image:
        raise InvalidRequest(
            f"snapshot {snap.name!r} holds a layer of image {snap.image!r}, not {body.image!r}"
        )
    given = body.model_dump(include=body.model_fields_set - {"name", "snapshot", "image"})
    fields = fork_fields(dict(snap.settings), given)
    return snap, EnvironmentCreate.model_validate({**fields, "name": body.name})


async def _org_default_runtime(session: AsyncSession, org_id: str) -> Runtime | None:
    org = await session.get(OrganizationModel, org_id)
    return Runtime(org.default_runtime) if org is not None and org.default_runtime else None


def _page(
    principal: Principal,
    states: list[EnvState] | None,
    labels: list[str] | None,
    limit: int,
    cursor: str | None,
) -> queries.PageQuery:
    org_id = require(principal, Permission.ENVIRONMENTS_READ)
    wanted: dict[str, str] = {}
    for item in labels or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"label filter {item[:60]!r} must be key=value")
        wanted[key] = value
    return queries.PageQuery(
        org_id=org_id,
        states=states or None,
        labels=wanted,
        only_ids=principal.environment_ids,
        limit=limit,
        cursor=cursor,
    )


async def list_environments(
    session: AsyncSession,
    principal: Principal,
    *,
    states: list[EnvState] | None,
    labels: list[str] | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Environment], str | None]:
    """One page and the next cursor (None on the last page)."""
    page = _page(principal, states, labels, limit, cursor)
    rows = await queries.list_page_rows(session, page, _COLUMNS)
    more = len(rows) > limit
    data = _ENVIRONMENTS.validate_python(rows[:limit])
    return data, (data[-1].id if more and data else None)


async def environment_page(
    session: AsyncSession,
    principal: Principal,
    *,
    states: list[EnvState] | None,
    labels: list[str] | None,
    limit: int,
    cursor: str | None,
) -> EnvironmentList:
    """The native listing, validated straight from column rows (no ORM identities:
    a page of 1,000 costs a third of the entity path)."""
    page = _page(principal, states, labels, limit, cursor)
    rows = await queries.list_page_rows(session, page, _COLUMNS)
    more = len(rows) > limit
    data = _ENVIRONMENTS.validate_python(rows[:limit])
    return EnvironmentList(
        data=data, has_more=more, next_cursor=data[-1].id if more and data else None
    )


_ENVIRONMENTS = TypeAdapter(list[Environment])
_COLUMNS = queries.SHAPE_COLUMNS


async def update_environment(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    body: EnvironmentUpdate,
    *,
    if_versions: frozenset[int] | None = None,
) -> Environment:
    """`if_versions` (from `If-Match`): change it only at one of these versions, checked
    under the compare-and-set, so a writer that read an older version gets a 412."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)

    async def attempt() -> EnvironmentModel:
        env = await get_environment(session, principal, id_or_name, Permission.ENVIRONMENTS_WRITE)
        if if_versions is not None and env.version not in if_versions:
            raise PreconditionFailed(f"the environment is at version {env.version} now")
        if not changes:
            return env
        new_name, old_env = changes.get("name", env.name), dict(env.env)
        old_secrets = dict(env.secrets or {})
        if new_name != env.name and await queries.name_taken(session, env.org_id, new_name):
            raise Conflict(f"an environment named {new_name!r} already exists")
        if "secrets" in changes:
            await attached.check_attachable(session, principal, env.org_id, changes["secrets"])
        for attr, value in changes.items():
            setattr(env, attr, value)
        if "env" in changes:
            # The container keeps the variables it was created with: a name the new
            # set drops is unset for every later process.
            dropped = sorted(set(old_env) - set(changes["env"]))
            change = change_variables(
                old_env, list(env.env_unset or ()), set_=changes["env"], unset=dropped,
                unset_value_prefix=None,
            )  # fmt: skip
            env.env, env.env_unset = change.env, change.unset
        if "secrets" in changes:
            env.env_unset = attached.unset_after_change(
                env.env, list(env.env_unset or ()), old_secrets, changes["secrets"]
            )
        record_environment_event(
            session,
            env,
            "environment.updated",
            actor=principal.actor,
            data={"fields": sorted(changes)},
        )
        # A policy change (e.g. auto-stop) may make the environment due for the reconciler.
        env.next_attempt_at = utcnow()
        await session.flush()
        return env

    env = await with_cas_retry(session, attempt)
    await record_activity(session, env.id)
    return environment_from_model(env)


def container_spec(
    env: EnvironmentModel, *, instance: str, placeholders: dict[str, str] | None = None
) -> ContainerSpec:
    """The engine's view of an environment (a domain shape, never the ORM row).
    `placeholders` are its secrets' ({variable: placeholder}, `egress.attached`),
    over its own variables: the container never holds a secret's value."""
    return ContainerSpec(
        environment_id=env.id,
        org_id=env.org_id,
        instance=instance,
        image=env.image,
        argv=workload_argv(env.command, env.install_command),
        keep_alive=env.command is None and env.install_command is None,
        env={**(TRUST_VARIABLES if placeholders else {}), **env.env, **(placeholders or {})},
        user=env.user,
        hostname=hostname_for(env.name),
        cpu=env.cpu,
        memory_mb=env.memory_mb,
        disk_gb=env.disk_gb,
        pids_limit=env.pids_limit,
        network=network_rules(env),
        mounts=tuple(
            SharedMount(volume_id=m["volume_id"], path=m["mount_path"], subpath=m.get("subpath"))
            for m in env.volumes or ()
        ),
        runtime=recorded_runtime(env.runtime),
    )


def network_rules(env: EnvironmentModel) -> NetworkRules:
    """The CIDR rules, and whether traffic goes through the egress proxy: when the
    environment has a domain policy or secrets to swap in (and any network at all)."""
    block_all = bool(env.network_block_all)
    by_name = env.network_domain_allow_list or env.network_domain_deny_list or env.secrets
    return NetworkRules(
        block_all=block_all,
        allow=tuple(env.network_allow_list or ()),
        proxied=not block_all and bool(by_name),
    )


async def move_environment(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    runner: str | None,
    *,
    placement: Placement,
) -> Environment:
    """Give an archived environment another runner (`runner`, by id or hostname, or
    the best other one): its next start restores it there from the archive store,
    root filesystem and /workspace as they were archived."""
    env = await get_environment(session, principal, id_or_name, Permission.ENVIRONMENTS_WRITE)
    if placement.cluster is None:
        raise Conflict(
            "there is one runner, so nowhere to move it to (point SANDBAY_DOCKER_HOST at a "
            "Swarm manager to have many)"
        )
    if env.kind is not EnvironmentKind.MANAGED:
        raise Conflict("a self-hosted environment runs where its worker is")
    if env.state is not EnvState.ARCHIVED or env.desired_state is not DesiredState.ARCHIVED:
        raise Conflict(
            f"environment is {env.state.value}; archive it first (POST "
            f"/v1/environments/{env.id}/archive): a runner restores only from the archive"
        )
    demand = Demand(
        cpu=env.cpu, memory_bytes=env.memory_mb * MIB, image=env.image, key=env.id, pinned=runner
    )
    before = env.runner_id
    chosen = await placement.cluster.place(
        session, demand, exclude=() if runner is not None or before is None else (before,)
    )
    if chosen != before:
        env.runner_id = chosen
        record_environment_event(
            session, env, "environment.moved", actor=principal.actor,
            reason="its next start restores it on this runner",
            data={"from_runner_id": before, "to_runner_id": chosen},
        )  # fmt: skip
        await session.flush()
    return environment_from_model(env)
