"""Images on the Docker engine: build one from a Dockerfile alone (an in-memory
context, no registry, never a pull: bases must be on the engine), look one up,
remove one; and the storage of shared volumes. Blocking SDK calls run on the
provider's thread pool; a build's output is handed to `on_log` as it comes."""

import contextlib
import io
import tarfile
from collections.abc import Callable

from docker.errors import APIError, ImageNotFound, NotFound

from sandbay.domain.errors import InvalidRequest, RuntimeFailure
from sandbay.runtime.docker.provider import DockerProvider, shared_volume_name

LABEL_IMAGE = "sandbay.image"


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
        self, ref: str, dockerfile: str, *, labels: dict[str, str], on_log: Callable[[str], None]
    ) -> None:
        """Build and tag `ref`; `on_log` gets the output (from the pool's thread)."""
        await self._provider.call(lambda api: self._build(api, ref, dockerfile, labels, on_log))

    @staticmethod
    def _build(
        api: object,
        ref: str,
        dockerfile: str,
        labels: dict[str, str],
        on_log: Callable[[str], None],
    ) -> None:
        stream = api.build(  # type: ignore[attr-defined]
            fileobj=_context(dockerfile),
            custom_context=True,
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
