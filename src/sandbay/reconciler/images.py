"""The images loop: builds the images that are due (a lease per build, so a crashed
builder's work is taken up again), checks that a named image is on the runner,
writes each build's log as it grows, then lets the environments that waited for a
build go on (or fails them with its reason); and removes what deletes left on the
runner (built images, shared volumes' storage). A build that copies local files
first downloads its organization's context tars from object storage."""

import asyncio
import contextlib
import logging
import secrets
import tempfile
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from sandbay.db.cas import commit_unless_stale
from sandbay.db.models import ImageModel
from sandbay.db.queries import images as queries
from sandbay.db.queries import volumes as volume_queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.errors import RuntimeFailure, SandbayError
from sandbay.domain.images import (
    MAX_BUILD_LOG,
    ImageState,
    from_images,
    localize,
    missing_base_message,
)
from sandbay.domain.states import EnvState
from sandbay.domain.volumes import VolumeState
from sandbay.kit.clock import utcnow
from sandbay.kit.loops import PeriodicLoop
from sandbay.runtime.build_contexts import BuildContextStore
from sandbay.runtime.provider import ImageBuilder
from sandbay.services.environments.transitions import transition
from sandbay.services.events.record import record_environment_event

log = logging.getLogger(__name__)
ACTOR = "system:images"
LEASE = timedelta(seconds=30)
FLUSH_SECONDS = 0.5
BUILDS_AT_ONCE = 2
_T = TypeVar("_T")
NO_STORE = "this build copies local files but this server has no object storage for them"


class BuildLog:
    """A build's output, appended from the builder's thread, read as text (its
    tail past `MAX_BUILD_LOG`)."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def add(self, text: str) -> None:
        self._parts.append(text)

    def text(self) -> str:
        return "".join(self._parts)[-MAX_BUILD_LOG:]


class _Permanent(RuntimeFailure):
    permanent = True


class ImagesLoop(PeriodicLoop):
    name = "images"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        builder: ImageBuilder,
        interval: float,
        contexts: BuildContextStore | None = None,
    ) -> None:
        super().__init__(interval)
        self._sessions = sessions
        self._builder = builder
        self._contexts = contexts

    async def sweep(self) -> None:
        async with self._sessions() as session:
            due = await queries.due_builds(session, utcnow(), BUILDS_AT_ONCE)
        await asyncio.gather(*(self._build(image_id) for image_id in due))
        await self._remove_images()
        await self._remove_volumes()

    async def _build(self, image_id: str) -> None:
        token = secrets.token_hex(16)
        async with self._sessions() as session:
            now = utcnow()
            if not await queries.claim(session, image_id, token=token, now=now, until=now + LEASE):
                return
            await session.commit()
            row = await session.get(ImageModel, image_id)
            assert row is not None
            ref, dockerfile, org_id = row.ref, row.dockerfile, row.org_id
            hashes = list(row.context_hashes or [])
        output = BuildLog()
        error: str | None = None
        try:
            if dockerfile is None:
                if not await self._builder.has(ref):
                    error = f"image {ref!r} is not on the runner and images cannot be pulled here"
            else:
                error = await self._build_with_log(
                    image_id, token, ref, dockerfile, org_id, hashes, output
                )
        except RuntimeFailure as exc:
            if not exc.permanent:
                raise  # the lease runs out and the build is tried again
            error = exc.message
        state = ImageState.ACTIVE if error is None else ImageState.BUILD_FAILED
        if error is not None and dockerfile is None:
            state = ImageState.ERROR
        async with self._sessions() as session:
            done = await queries.finish(
                session,
                image_id,
                token=token,
                state=state,
                log=output.text(),
                error=error,
                now=utcnow(),
            )
            if done:
                await self._settle_waiting(session, ref, error)
            await commit_unless_stale(session)

    async def _fetch_contexts(
        self, org_id: str, hashes: list[str], dest: Path, output: BuildLog
    ) -> list[Path]:
        """The build's context tars, downloaded from the organization's prefix only
        (another organization's hash is not found there)."""
        if self._contexts is None:
            raise _Permanent(NO_STORE)
        output.add(f"Fetching {len(hashes)} build context(s) from object storage\n")
        try:
            return await self._contexts.fetch(org_id, hashes, dest)
        except RuntimeFailure as exc:
            if exc.permanent:
                output.add(exc.message + "\n")
            raise

    async def _build_with_log(
        self,
        image_id: str,
        token: str,
        ref: str,
        dockerfile: str,
        org_id: str,
        hashes: list[str],
        output: BuildLog,
    ) -> str | None:
        """Fetch the contexts and build, flushing the log (and renewing the lease)
        meanwhile; the reason it cannot be built, or None once built."""
        local = localize(dockerfile)
        for base in from_images(local):
            if not await self._builder.has(base):
                output.add(missing_base_message(base) + "\n")
                return missing_base_message(base)
        if local != dockerfile:
            output.add("Bases mapped to local images (this runner cannot pull):\n" + local)
        with tempfile.TemporaryDirectory(prefix="sandbay-context-") as scratch:
            contexts: list[Path] = []
            if hashes:
                fetch = self._fetch_contexts(org_id, hashes, Path(scratch), output)
                contexts = await self._renewing(image_id, token, output, fetch)
            await self._renewing(
                image_id,
                token,
                output,
                self._builder.build(
                    ref,
                    local,
                    labels={"sandbay.image": image_id, "sandbay.org": org_id},
                    on_log=output.add,
                    contexts=contexts,
                ),
            )
        return None

    async def _renewing(
        self, image_id: str, token: str, output: BuildLog, work: Awaitable[_T]
    ) -> _T:
        """`work`'s result, the log flushed and the lease renewed while it runs."""
        task = asyncio.ensure_future(work)
        while not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), FLUSH_SECONDS)
            async with self._sessions() as session:
                await queries.append_log(
                    session, image_id, token=token, log=output.text(), until=utcnow() + LEASE
                )
                await session.commit()
        return await task

    async def _settle_waiting(self, session: AsyncSession, ref: str, error: str | None) -> None:
        """Environments created to run this build go on, or fail with its reason."""
        for env in await queries.waiting_on(session, ref):
            if error is None:
                env.next_attempt_at = utcnow()
                record_environment_event(session, env, "environment.image_built", actor=ACTOR)
            elif env.state is EnvState.CREATING:
                transition(
                    session, env, EnvState.ERROR, actor=ACTOR, reason=f"build failed: {error}"
                )

    async def _remove_images(self) -> None:
        async with self._sessions() as session:
            removable = await queries.removable(session, 8)
        for image_id, ref in removable:
            try:
                await self._builder.remove(ref)
            except SandbayError:
                log.warning("could not remove image %s", ref, exc_info=True)
                continue
            async with self._sessions() as session:
                row = await session.get(ImageModel, image_id)
                if row is not None:
                    row.state = ImageState.INACTIVE
                await session.commit()

    async def _remove_volumes(self) -> None:
        async with self._sessions() as session:
            removable = await volume_queries.removable(session, 8)
        for volume_id in removable:
            try:
                await self._builder.remove_volume(volume_id)
            except SandbayError:
                # Still mounted by a container going away: the next sweep tries again.
                log.info("volume %s not removed yet", volume_id, exc_info=True)
                continue
            async with self._sessions() as session:
                await volume_queries.set_state(session, volume_id, VolumeState.DELETED)
                await session.commit()
