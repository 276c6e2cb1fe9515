"""Where archived environments live: a directory by default. An archive is a set of
named files (workspace and root-filesystem layer tarballs, a manifest) written
atomically: a half-written archive is never seen as complete."""

import asyncio
import shutil
from pathlib import Path
from typing import Protocol

from sandbay.domain.errors import RuntimeFailure


class ArchiveStore(Protocol):
    async def staging(self, environment_id: str) -> Path:
        """An empty local directory to write an archive's files into."""
        ...

    async def commit(self, environment_id: str, staged: Path) -> None:
        """Make the staged files the environment's archive (atomically)."""
        ...

    async def fetch(self, environment_id: str) -> Path | None:
        """A local directory holding the archive's files, or None if there is none."""
        ...

    async def delete(self, environment_id: str) -> None: ...


class DirectoryArchiveStore:
    """Archives under `root/<env id>/`; staging in `root/.staging/` on the same
    filesystem, so commit is a rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _final(self, environment_id: str) -> Path:
        if "/" in environment_id or environment_id.startswith("."):
            raise RuntimeFailure(f"bad environment id {environment_id!r}")
        return self.root / environment_id

    async def staging(self, environment_id: str) -> Path:
        path = self.root / ".staging" / environment_id
        await asyncio.to_thread(shutil.rmtree, path, True)
        path.mkdir(parents=True)
        return path

    async def commit(self, environment_id: str, staged: Path) -> None:
        final = self._final(environment_id)

        def swap() -> None:
            old = final.with_name(final.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                final.rename(old)
            staged.rename(final)
            shutil.rmtree(old, ignore_errors=True)

        await asyncio.to_thread(swap)

    async def fetch(self, environment_id: str) -> Path | None:
        final = self._final(environment_id)
        return final if (final / "manifest.json").exists() else None

    async def delete(self, environment_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._final(environment_id), True)
