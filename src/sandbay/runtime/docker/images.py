"""Images on the Docker engine: build one from a Dockerfile (with the files of the
build's context tars, if any; no registry, never a pull: bases must be on the
engine), look one up, remove one; and the storage of shared volumes. Blocking SDK
calls run on the provider's thread pool; a build's output is handed to `on_log` as
it comes."""

import contextlib
import io
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import IO

from docker.errors import APIError, ImageNotFound, NotFound

from sandbay.domain.errors import InvalidRequest, RuntimeFailure
from sandbay.runtime.docker.provider import DockerProvider, shared_volume_name

LABEL_IMAGE = "sandbay.image"
#: The Dockerfile's name in a context that has files: a context may hold a `Dockerfile`.
CONTEXT_DOCKERFILE = ".sandbay.Dockerfile"
#: Bytes of a merged context kept in memory before it spills to a temporary file.
SPOOL_BYTES = 16 * 1024 * 1024


class BuildFailed(RuntimeFailure):
    """The build ran and failed (a step's error): trying again cannot help."""

    permanent = True


def _context(dockerfile: str) -> io.BytesIO:
    buffer = io.BytesIO()
    data = dockerfile.encode()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _member_name(name: str) -> str:
    """A context member's path, relative and without `..` (else the build fails)."""
    path = PurePosixPath(name.removeprefix("./"))
    if path.is_absolute() or ".." in path.parts:
        raise BuildFailed(f"build context entry {name!r} points outside the context")
    return str(path)


def _merged_context(dockerfile: str, contexts: Sequence[Path]) -> IO[bytes]:
    """One build context: every context tar's entries (a later one wins on a shared
    path, as the engine extracts in order) and the Dockerfile under its own name."""
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    with tarfile.open(fileobj=out, mode="w") as merged:
        for path in contexts:
            try:
                with tarfile.open(path, mode="r:*") as source:
                    for member in source:
                        member.name = _member_name(member.name)
                        content = source.extractfile(member) if member.isfile() else None
                        merged.addfile(member, content)
            except tarfile.TarError as exc:
                raise BuildFailed(f"a build context is not a readable tar: {exc}") from exc
        data = dockerfile.encode()
        info = tarfile.TarInfo(CONTEXT_DOCKERFILE)
        info.size = len(data)
        merged.addfile(info, io.BytesIO(data))
    out.seek(0)
    return out


class DockerImages:
    """`ImageBuilder` over the provider's engine."""

    def __init__(self, provider: DockerProvider) -> None:
        self._provider = provider

    async def has(self, ref: str) -> bool:
        """Whether the engine holds `ref` (no registry is asked)."""
        return await self._provider.call(lambda api: self._has(api, ref))

    @staticmethod
    def _has(api: object, ref: str) -> bool:
        try:
            api.inspect_image(ref)  # type: ignore[attr-defined]
            return True
        except (ImageNotFound, NotFound):
            return False

    async def build(
        self,
        ref: str,
        dockerfile: str,
        *,
        labels: dict[str, str],
        on_log: Callable[[str], None],
        contexts: Sequence[Path] = (),
    ) -> None:
        """Build and tag `ref`; `on_log` gets the output (from the pool's thread).
        `contexts` are tars whose files the Dockerfile's COPY/ADD read."""
        await self._provider.call(
            lambda api: self._build(api, ref, dockerfile, labels, on_log, contexts)
        )

    @staticmethod
    def _build(
        api: object,
        ref: str,
        dockerfile: str,
        labels: dict[str, str],
        on_log: Callable[[str], None],
        contexts: Sequence[Path] = (),
    ) -> None:
        if contexts:
            with _merged_context(dockerfile, contexts) as fileobj:
                DockerImages._run_build(api, ref, fileobj, CONTEXT_DOCKERFILE, labels, on_log)
        else:
            DockerImages._run_build(api, ref, _context(dockerfile), None, labels, on_log)

    @staticmethod
    def _run_build(
        api: object,
        ref: str,
        fileobj: IO[bytes],
        dockerfile_name: str | None,
        labels: dict[str, str],
        on_log: Callable[[str], None],
    ) -> None:
        stream = api.build(  # type: ignore[attr-defined]
            fileobj=fileobj,
            custom_context=True,
            dockerfile=dockerfile_name,
            tag=ref,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            labels=labels,
        )
        try:
            for chunk in stream:
                if "stream" in chunk:
                    on_log(str(chunk["stream"]))
                elif "status" in chunk:
                    on_log(f"{chunk['status']}\n")
                if "error" in chunk:
                    message = str(chunk.get("error") or "").strip()
                    on_log(message + "\n")
                    raise BuildFailed(message or "the build failed")
        except APIError as exc:
            if exc.status_code and 400 <= exc.status_code < 500:
                raise BuildFailed(str(exc.explanation or exc)) from exc
            raise

    async def remove(self, ref: str) -> None:
        """Untag and remove `ref`; gone already is fine. An image still used by a
        container stays (the engine refuses), as the container needs it."""
        await self._provider.call(lambda api: self._remove(api, ref))

    @staticmethod
    def _remove(api: object, ref: str) -> None:
        try:
            api.remove_image(ref)  # type: ignore[attr-defined]
        except (ImageNotFound, NotFound):
            return
        except APIError as exc:
            if exc.status_code != 409:
                raise

    async def remove_volume(self, volume_id: str) -> None:
        """Remove a shared volume's storage; refused (400) while a container mounts it."""
        await self._provider.call(lambda api: self._remove_volume(api, volume_id))

    @staticmethod
    def _remove_volume(api: object, volume_id: str) -> None:
        with contextlib.suppress(NotFound):
            try:
                api.remove_volume(shared_volume_name(volume_id))  # type: ignore[attr-defined]
            except APIError as exc:
                if exc.status_code == 409:
                    raise InvalidRequest("the volume is still mounted by a container") from exc
                raise
