"""Built images as records: create (recorded `pending`; the images loop builds it or
checks the runner has it), read, list, delete, activate, the build's log (followed
as it grows), and the image an environment create names: a built image of the
organization by name, a Dockerfile to build (the environment waits for it), or an
image the runner has. Builds that copy local files need object storage: the
credentials a client uploads its contexts with come from here."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sandbay.db.cas import flush_unique
from sandbay.db.models import ImageModel
from sandbay.db.queries import images as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain import ids
from sandbay.domain.build_contexts import PushAccess, check_context_hashes
from sandbay.domain.environments import Environment, ImageBuild
from sandbay.domain.errors import Conflict, InvalidRequest, NotFound
from sandbay.domain.images import (
    IMAGE_ID,
    TERMINAL,
    Image,
    ImageCreate,
    ImageState,
    build_name,
    built_ref,
    uses_context,
)
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.states import EnvState
from sandbay.kit.clock import utcnow
from sandbay.kit.loops import Hint
from sandbay.runtime.build_contexts import BuildContextStore
from sandbay.services.tenancy.auth import require, require_organization_wide

#: How often a follower looks for more of a build's log.
FOLLOW_POLL = 0.3
NO_CONTEXT = (
    "builds that copy local files (Image.add_local_file, add_local_dir, "
    "pip_install_from_requirements, a Dockerfile's COPY/ADD) are not supported by this "
    "server: it has no object storage to receive the build context (an operator "
    "configures one with SANDBAY_OBJECT_STORAGE__BUCKET and its key)"
)


@dataclass(frozen=True, slots=True)
class PlannedImage:
    """The image an environment gets, and whether it exists yet (else it waits)."""

    ref: str
    ready: bool


def _check_buildable(dockerfile: str, context_hashes: list[str], *, contexts: bool) -> None:
    """Local files need object storage (`contexts`); their hashes must be plain names."""
    if not contexts and (context_hashes or uses_context(dockerfile)):
        raise InvalidRequest(NO_CONTEXT)
    check_context_hashes(context_hashes)


def _build_name(dockerfile: str, context_hashes: list[str]) -> str:
    """One build per Dockerfile and set of contexts (files changed: built again)."""
    if not context_hashes:
        return build_name(dockerfile)
    return build_name(dockerfile + "\n#contexts " + " ".join(context_hashes))


@dataclass(frozen=True, slots=True)
class ImagesService:
    sessions: async_sessionmaker[AsyncSession]
    #: Wakes the images loop (a build or a removal is due).
    due: Hint
    #: Object storage for build contexts; None: builds with local files are refused.
    contexts: BuildContextStore | None = None

    async def create(self, session: AsyncSession, principal: Principal, body: ImageCreate) -> Image:
        org_id = require_organization_wide(principal, Permission.ENVIRONMENTS_WRITE)
        if (body.image is None) == (body.dockerfile is None):
            raise InvalidRequest("give either an image name or a build (Dockerfile), not both")
        if body.dockerfile is not None:
            _check_buildable(
                body.dockerfile, body.context_hashes, contexts=self.contexts is not None
            )
        elif body.context_hashes:
            raise InvalidRequest("context hashes come with a build (Dockerfile), not an image")
        if await queries.get_live(session, org_id, body.name) is not None:
            raise Conflict(f"Snapshot with name {body.name} already exists")
        image_id = ids.new_id(IMAGE_ID)
        row = ImageModel(
            **body.model_dump(exclude={"image"}),
            id=image_id,
            org_id=org_id,
            ref=body.image or built_ref(image_id),
        )
        session.add(row)
        await flush_unique(session, f"Snapshot with name {body.name} already exists")
        self.due()
        return Image.model_validate(row)

    async def push_access(self, principal: Principal) -> PushAccess:
        """Where the principal's organization uploads build contexts, and the key."""
        org_id = require_organization_wide(principal, Permission.ENVIRONMENTS_WRITE)
        if self.contexts is None:
            raise InvalidRequest(NO_CONTEXT)
        return await self.contexts.push_access(org_id)

    async def read(self, session: AsyncSession, principal: Principal, id_or_name: str) -> Image:
        return Image.model_validate(await _get(session, principal, id_or_name))

    async def page(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        page: int,
        limit: int,
        name: str | None = None,
    ) -> tuple[list[Image], int]:
        org_id = require(principal, Permission.ENVIRONMENTS_READ)
        rows, total = await queries.page(
            session, org_id, offset=(page - 1) * limit, limit=limit, name=name
        )
        return [Image.model_validate(r) for r in rows], total

    async def delete(self, session: AsyncSession, principal: Principal, id_or_name: str) -> None:
        """Refused while an environment that is not deleted runs it: its container
        would need the image again to be remade (after an archive, or if it vanished).
        A built image is then removed from the runner by the images loop."""
        require_organization_wide(principal, Permission.ENVIRONMENTS_WRITE)
        row = await _get(session, principal, id_or_name, Permission.ENVIRONMENTS_WRITE)
        users = await queries.users(session, row.org_id, row.ref)
        if users and row.dockerfile is not None:
            raise Conflict(
                f"Snapshot {row.name} is in use by {len(users)} sandbox(es) "
                f"({', '.join(users[:3])}); delete them first"
            )
        now = utcnow()
        row.deleted_at = now
        row.updated_at = now
        # Only what sandbay built is removed from the runner; a named image stays.
        row.state = ImageState.REMOVING if row.dockerfile is not None else ImageState.INACTIVE
        await session.flush()
        self.due()

    async def activate(self, session: AsyncSession, principal: Principal, id_or_name: str) -> Image:
        """Images are never deactivated here; activating an active one returns it."""
        require_organization_wide(principal, Permission.ENVIRONMENTS_WRITE)
        row = await _get(session, principal, id_or_name, Permission.ENVIRONMENTS_WRITE)
        if row.state is not ImageState.ACTIVE:
            raise InvalidRequest(f"Snapshot {row.name} is {row.state}, not inactive")
        return Image.model_validate(row)

    async def follow_log(
        self, principal: Principal, id_or_name: str, *, follow: bool
    ) -> AsyncIterator[str]:
        """The build's log; with `follow`, what it adds until the build ends. Each
        look is a short session of its own (the builder may be another process)."""
        sent = 0
        while True:
            async with self.sessions() as session:
                row = await _get(session, principal, id_or_name)
                log, done = row.build_log, row.state in TERMINAL or row.deleted_at is not None
            if len(log) > sent:
                yield log[sent:]
                sent = len(log)
            if done or not follow:
                return
            await asyncio.sleep(FOLLOW_POLL)


async def waiting_build(session: AsyncSession, env: Environment) -> ImageState | None:
    """The build a `creating` environment waits for (pending or building), if any."""
    if env.state is not EnvState.CREATING:
        return None
    state = await queries.build_state(session, env.org_id, env.image)
    return state if state in (ImageState.PENDING, ImageState.BUILDING) else None


async def _get(
    session: AsyncSession,
    principal: Principal,
    id_or_name: str,
    permission: Permission = Permission.ENVIRONMENTS_READ,
) -> ImageModel:
    org_id = require(principal, permission)
    row = await queries.get_live(session, org_id, id_or_name)
    if row is None:
        raise NotFound(f"Snapshot {id_or_name} not found")
    return row


async def plan_image(
    session: AsyncSession,
    org_id: str,
    image: str | None,
    build: ImageBuild | None,
    *,
    default: str,
    contexts: bool = False,
) -> PlannedImage:
    """What an environment create runs: its own build (one per distinct Dockerfile
    and contexts per organization, built again if it failed), a built image of the
    organization by name (it must be active), or `image` as the runner knows it.
    `contexts`: whether object storage receives builds' local files."""
    now = utcnow()
    if build is not None:
        _check_buildable(build.dockerfile, build.context_hashes, contexts=contexts)
        name = _build_name(build.dockerfile, build.context_hashes)
        row = await queries.get_live(session, org_id, name)
        if row is None:
            image_id = ids.new_id(IMAGE_ID)
            row = ImageModel(
                id=image_id,
                org_id=org_id,
                name=name,
                ref=built_ref(image_id),
                dockerfile=build.dockerfile,
                context_hashes=list(build.context_hashes),
                cpu=1,
                memory_gb=1,
                disk_gb=3,
                for_build=True,
            )
            session.add(row)
            await flush_unique(session, "the same build was asked for at once; try again")
        elif row.state in (ImageState.ERROR, ImageState.BUILD_FAILED):
            row.state, row.error_reason, row.updated_at = ImageState.PENDING, None, now
        row.last_used_at = now
        return PlannedImage(ref=row.ref, ready=row.state is ImageState.ACTIVE)
    if image is None:
        return PlannedImage(ref=default, ready=True)
    row = await queries.get_live(session, org_id, image)
    if row is None:
        return PlannedImage(ref=image, ready=True)
    if row.state is not ImageState.ACTIVE:
        raise InvalidRequest(f"Snapshot {row.name} is {row.state.value}")
    row.last_used_at = now
    return PlannedImage(ref=row.ref, ready=True)
