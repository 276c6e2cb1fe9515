"""Where archived environments live: a directory by default. An archive is a set of
named files (workspace and root-filesystem layer tarballs, a manifest) written
atomically: a half-written archive is never seen as complete."""

import asyncio
import shutil
from pathlib import Path
from typing import Protocol

from sandbay.domain.errors import RuntimeFailure

MANIFEST = "manifest.json"


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
        return final if (final / MANIFEST).exists() else None

    async def delete(self, environment_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._final(environment_id), True)


class S3ArchiveStore:
    """Archives in an S3-compatible bucket under `prefix/<env id>/`; the manifest is
    uploaded last and deleted first, so it marks a complete archive. Files pass
    through a local staging directory."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        staging_root: Path,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        import boto3  # optional dependency: `pip install sandbay[s3]`

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.staging_root = staging_root
        self._s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _key(self, environment_id: str, name: str) -> str:
        return "/".join(p for p in (self.prefix, environment_id, name) if p)

    async def staging(self, environment_id: str) -> Path:
        path = self.staging_root / environment_id
        await asyncio.to_thread(shutil.rmtree, path, True)
        path.mkdir(parents=True)
        return path

    async def commit(self, environment_id: str, staged: Path) -> None:
        def upload() -> None:
            names = sorted(p.name for p in staged.iterdir())
            for name in [n for n in names if n != MANIFEST] + [MANIFEST]:
                self._s3.upload_file(
                    str(staged / name), self.bucket, self._key(environment_id, name)
                )
            shutil.rmtree(staged, ignore_errors=True)

        await asyncio.to_thread(upload)

    async def fetch(self, environment_id: str) -> Path | None:
        def download() -> Path | None:
            listed = self._s3.list_objects_v2(
                Bucket=self.bucket, Prefix=self._key(environment_id, "")
            )
            names = [o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", [])]
            if MANIFEST not in names:
                return None
            dest = self.staging_root / f"{environment_id}.restore"
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            for name in names:
                self._s3.download_file(
                    self.bucket, self._key(environment_id, name), str(dest / name)
                )
            return dest

        return await asyncio.to_thread(download)

    async def delete(self, environment_id: str) -> None:
        def remove() -> None:
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(environment_id, MANIFEST))
            listed = self._s3.list_objects_v2(
                Bucket=self.bucket, Prefix=self._key(environment_id, "")
            )
            for obj in listed.get("Contents", []):
                self._s3.delete_object(Bucket=self.bucket, Key=obj["Key"])
            shutil.rmtree(self.staging_root / f"{environment_id}.restore", ignore_errors=True)

        await asyncio.to_thread(remove)
