"""Disk limits for environments on a local overlay2 engine.

Each environment's root layer and `/workspace` live on one ext4 file system of
`disk_gb`, kept in a sparse file beside its workspace volume's data
(`<volume dir>/disk.img`, mounted at `<volume dir>/disk`). Its `workspace/` is bound
onto the volume's `_data` and its `layer/` onto the container's overlay2 layer
directory (upper and work dirs must share a file system), so writing past the size
fails with ENOSPC inside the environment, `df` there shows the limit, and nothing
outside it is touched. Why this and not the engine's own size option: overlay2 has
one only on XFS with project quotas, which this kernel lacks; btrfs qgroups answer
EDQUOT and need the engine's whole data root on btrfs. The file goes with the volume
(the engine's removal of the volume deletes it); mounts are made again after a
reboot at the next start. Needs root and the engine's files on this host.
"""

import contextlib
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbay.domain.errors import RuntimeFailure
from sandbay.runtime.docker.names import volume_name

log = logging.getLogger(__name__)

IMAGE = "disk.img"
MOUNT = "disk"
_WORKSPACE = "workspace"
_LAYER = "layer"
#: Which container layer directory the disk's `layer/` belongs to: a container made
#: again (vanished, or replaced) gets a fresh layer, as without a disk.
_LAYER_OWNER = ".layer-dir"
GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class DiskUsage:
    used_bytes: int
    limit_bytes: int


def _sh(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeFailure(f"{argv[0]} failed: {(done.stderr or done.stdout).strip()[-300:]}")


def supported(docker_root: str, driver: str) -> str | None:
    """Why disk limits cannot be enforced here, or None when they can."""
    if driver != "overlay2":
        return f"the engine's storage driver is {driver!r}, not overlay2"
    if os.geteuid() != 0:
        return "the server does not run as root"
    if not Path(docker_root).is_dir():
        return "the engine's files are not on this host"
    if shutil.which("mkfs.ext4") is None:
        return "mkfs.ext4 is not installed (e2fsprogs)"
    if not Path("/dev/loop-control").exists():
        return "this kernel has no loop devices"
    return None


def volume_dir(volume_mountpoint: str) -> Path:
    """The volume's own directory (its `_data` is the mount point)."""
    return Path(volume_mountpoint).parent


def of(volumes_root: Path, environment_id: str) -> Path:
    """The directory of an environment's workspace volume (where its disk is)."""
    return volumes_root / volume_name(environment_id)


def exists(vdir: Path) -> bool:
    return (vdir / IMAGE).is_file()


def make(vdir: Path, size_gb: int) -> None:
    """A fresh, sparse ext4 image of `size_gb` (no space is taken until written).
    No reserved blocks; inode tables left uninitialised (they read as zeros from the
    sparse file, so the kernel need not write them)."""
    # Made under another name and renamed once formatted: a crash in between leaves
    # no half-made disk for the next attempt to mount.
    image = vdir / (IMAGE + ".new")
    try:
        with image.open("wb") as f:
            f.truncate(size_gb * GIB)
        _sh("mkfs.ext4", "-q", "-F", "-m", "0", "-i", "8192",
            "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", str(image))  # fmt: skip
    except OSError as exc:
        image.unlink(missing_ok=True)
        raise RuntimeFailure(f"cannot make a {size_gb} GB disk here: {exc.strerror}") from exc
    except RuntimeFailure:
        image.unlink(missing_ok=True)
        raise
    image.rename(vdir / IMAGE)


def _mounted(vdir: Path) -> Path:
    """The disk's mount point, mounted (after a reboot, again)."""
    mnt = vdir / MOUNT
    if not os.path.ismount(mnt):
        mnt.mkdir(exist_ok=True)
        _sh("mount", "-o", "loop,noinit_itable", str(vdir / IMAGE), str(mnt))
    return mnt


def _bind(source: Path, target: Path) -> None:
    if not os.path.ismount(target):
        _sh("mount", "--bind", str(source), str(target))


def _copy_dir(src: Path, dst: Path) -> None:
    """Make `dst` a copy of the directory `src`: its contents (`cp -a`) and its own
    owner and mode, so what is bound over `src` looks as `src` did."""
    dst.mkdir()
    _sh("cp", "-a", f"{src}/.", str(dst))
    stat = src.stat()
    os.chown(dst, stat.st_uid, stat.st_gid)
    dst.chmod(stat.st_mode & 0o7777)


def attach_workspace(vdir: Path) -> None:
    """Bind the disk's workspace onto the volume's data, carrying over what is there
    (the engine copies the image's /workspace into an empty volume)."""
    mnt = _mounted(vdir)
    data, ws = vdir / "_data", mnt / _WORKSPACE
    if os.path.ismount(data):
        return
    if not ws.exists():
        _copy_dir(data, ws)
    _bind(ws, data)


def attach_layer(vdir: Path, layer_dir: Path) -> None:
    """Bind the disk's layer onto the container's overlay2 layer directory. A layer
    the disk does not know (a container made anew) starts from the engine's fresh one."""
    mnt = _mounted(vdir)
    if os.path.ismount(layer_dir):
        return
    layer, owner = mnt / _LAYER, mnt / _LAYER_OWNER
    known = owner.read_text() if owner.exists() else None
    if known != str(layer_dir):
        if layer.exists():
            shutil.rmtree(layer)
        _copy_dir(layer_dir, layer)
        owner.write_text(str(layer_dir))
    _bind(layer, layer_dir)


def attached(vdir: Path) -> bool:
    """Whether every mount of the disk is in place (no engine call needed to know)."""
    try:
        layer = Path((vdir / MOUNT / _LAYER_OWNER).read_text())
    except OSError:
        return False
    return os.path.ismount(vdir / "_data") and os.path.ismount(layer)


def layer_dir(upper_dir: str) -> Path:
    """The overlay2 layer directory holding a container's upper (`diff`) and work dirs."""
    return Path(upper_dir).parent


def detach(vdir: Path) -> None:
    """Undo every mount of the disk (before the engine removes the container or the
    volume); a missing one is fine."""
    mnt = vdir / MOUNT
    targets = [vdir / "_data"]
    with contextlib.suppress(OSError):
        targets.append(Path((mnt / _LAYER_OWNER).read_text()))
    targets.append(mnt)
    for target in targets:
        if os.path.ismount(target):
            try:
                _sh("umount", str(target))
            except RuntimeFailure:
                # Busy (a copy reading it): gone from the tree now, freed when done.
                _sh("umount", "--lazy", str(target))


def usage(vdir: Path) -> DiskUsage | None:
    """Bytes used and the size of a mounted disk; None without one."""
    mnt = vdir / MOUNT
    if not os.path.ismount(mnt):
        return None
    st = os.statvfs(mnt)
    return DiskUsage(
        used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize, limit_bytes=st.f_blocks * st.f_frsize
    )
