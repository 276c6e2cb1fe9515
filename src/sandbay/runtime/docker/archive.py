"""Archive and restore of Docker environments on a local overlay2 engine: the
container's writable layer (overlay2 upper dir, whiteouts and xattrs included) and
the workspace volume are tarred straight from the host, which is exact (deleted
files stay deleted) and fast. Needs the engine on this host and root."""

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from sandbay.domain.errors import RuntimeFailure
from sandbay.domain.runtime import ContainerInfo, ContainerSpec
from sandbay.runtime.archives import MANIFEST
from sandbay.runtime.docker.names import container_name, volume_name
from sandbay.runtime.docker.provider import DockerProvider

LAYER = "layer.tar.gz"
WORKSPACE = "workspace.tar.gz"
_TAR_OPTS = ["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "-I", "gzip -1"]


async def _tar(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "tar", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeFailure(f"tar {args[0]} failed: {err.decode(errors='replace')[-500:]}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DockerArchiver:
    """`Archiver` for `DockerProvider` (optional ability)."""

    def __init__(self, provider: DockerProvider) -> None:
        self._provider = provider

    async def _paths(self, environment_id: str) -> tuple[Path, Path, dict[str, Any]]:
        raw = await self._provider.call(
            lambda api: api.inspect_container(container_name(environment_id))
        )
        if raw["State"].get("Running"):
            raise RuntimeFailure("cannot archive a running container")
        driver = raw.get("GraphDriver", {})
        if driver.get("Name") != "overlay2":
            raise RuntimeFailure("archiving needs the overlay2 storage driver")
        upper = Path(driver["Data"]["UpperDir"])
        vol = await self._provider.call(lambda api: api.inspect_volume(volume_name(environment_id)))
        mountpoint = Path(vol["Mountpoint"])
        if not await asyncio.to_thread(lambda: upper.is_dir() and mountpoint.is_dir()):
            raise RuntimeFailure("archiving needs the Docker engine on this host (and root)")
        return upper, mountpoint, raw

    async def export(self, environment_id: str, dest: Path) -> dict[str, Any]:
        """Write layer, workspace and manifest into `dest`; the container must be stopped."""
        upper, mountpoint, raw = await self._paths(environment_id)
        await _tar("-c", *_TAR_OPTS, "-f", str(dest / LAYER), "-C", str(upper), ".")
        await _tar("-c", *_TAR_OPTS, "-f", str(dest / WORKSPACE), "-C", str(mountpoint), ".")
        manifest = {
            "environment_id": environment_id,
            "image": raw["Config"]["Image"],
            "files": {
                name: {"sha256": await asyncio.to_thread(_sha256, dest / name),
                       "bytes": (dest / name).stat().st_size}
                for name in (LAYER, WORKSPACE)
            },
        }  # fmt: skip
        (dest / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return manifest

    async def restore(self, spec: ContainerSpec, src: Path) -> ContainerInfo:
        """Create container and volume afresh and put the archived files back."""
        manifest = json.loads((src / MANIFEST).read_text())
        for name, meta in manifest["files"].items():
            if await asyncio.to_thread(_sha256, src / name) != meta["sha256"]:
                raise RuntimeFailure(f"archive file {name} is corrupt (checksum mismatch)")
        info = await self._provider.create(spec)
        upper, mountpoint, _ = await self._paths(spec.environment_id)
        await _tar("-x", *_TAR_OPTS, "-f", str(src / WORKSPACE), "-C", str(mountpoint))
        await _tar("-x", *_TAR_OPTS, "-f", str(src / LAYER), "-C", str(upper))
        return info
