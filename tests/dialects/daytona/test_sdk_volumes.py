"""Daytona's volumes through the unchanged SDK, sync and async, on real Docker: one
volume mounted into two sandboxes at once (a file one writes, the other reads, a
subpath seeing only its directory), delete refused while a sandbox that is not
destroyed mounts it and allowed after, and create, get (create=True), list."""

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator

import docker
import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaError,
    DaytonaNotFoundError,
    VolumeMount,
)

from tests.support.polling import eventually
from tests.support.server import LiveServer

#: Exercises the engine and the HTTP shapes; every database path it touches runs on both
#: databases elsewhere (tests/api, tests/services).
pytestmark = pytest.mark.usefixtures("sqlite_only")

VOLUME_LABEL = "sandbay.volume"


@pytest.fixture
def engine_volumes(server: LiveServer) -> Iterator[docker.DockerClient]:
    """Shared volumes' storage made during the test is removed afterwards."""
    engine = docker.from_env()
    before = {v.name for v in engine.volumes.list(filters={"label": VOLUME_LABEL})}
    yield engine
    for volume in engine.volumes.list(filters={"label": VOLUME_LABEL}):
        if volume.name not in before:
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
    engine.close()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_volume_shared_by_two_sandboxes(
    daytona: Daytona, engine_volumes: docker.DockerClient
) -> None:
    name = _name("shared")
    volume = daytona.volume.create(name)
    assert (volume.name, volume.state) == (name, "ready")
    assert daytona.volume.get(name).id == volume.id
    assert daytona.volume.get(name, create=True).id == volume.id
    assert name in [v.name for v in daytona.volume.list()]

    whole = daytona.create(
        CreateSandboxFromSnapshotParams(
            volumes=[VolumeMount(volume_id=volume.id, mount_path="/data")], auto_stop_interval=0
        ),
        timeout=120,
    )
    part = daytona.create(
        CreateSandboxFromSnapshotParams(
            volumes=[VolumeMount(volume_id=name, mount_path="/mnt/part", subpath="team/a")],
            auto_stop_interval=0,
        ),
        timeout=120,
    )
    try:
        # Written through the whole volume, read through the subpath, and back.
        whole.process.exec(
            "mkdir -p /data/team/a && echo hello > /data/team/a/note && echo top > /data/top"
        )
        assert part.process.exec("cat /mnt/part/note").result.strip() == "hello"
        assert part.process.exec("ls /mnt/part").result.split() == ["note"]  # not /data/top
        part.process.exec("echo back > /mnt/part/reply")
        assert whole.process.exec("cat /data/team/a/reply").result.strip() == "back"

        with pytest.raises(DaytonaError, match="in use"):
            daytona.volume.delete(volume)
        whole.stop()
        with pytest.raises(DaytonaError, match="in use"):  # stopped still mounts it
            daytona.volume.delete(volume)
    finally:
        daytona.delete(whole, wait=True)
        daytona.delete(part, wait=True)

    daytona.volume.delete(volume)
    with pytest.raises(DaytonaNotFoundError):
        daytona.volume.get(name)
    assert name not in [v.name for v in daytona.volume.list()]
    eventually(
        lambda: not engine_volumes.volumes.list(filters={"label": f"{VOLUME_LABEL}={volume.id}"}),
        what="the volume's storage removed",
    )
    again = daytona.volume.get(name, create=True)  # the name is free again: a new volume
    assert again.id != volume.id
    daytona.volume.delete(again)


def test_mounts_are_checked(daytona: Daytona) -> None:
    with pytest.raises(DaytonaNotFoundError):
        daytona.create(
            CreateSandboxFromSnapshotParams(
                volumes=[VolumeMount(volume_id=_name("missing"), mount_path="/data")]
            ),
            timeout=60,
        )
    volume = daytona.volume.create(_name("checked"))
    try:
        for path, subpath in (("relative", None), ("/workspace", None), ("/data", "../up")):
            with pytest.raises(DaytonaError):
                daytona.create(
                    CreateSandboxFromSnapshotParams(
                        volumes=[VolumeMount(volume_id=volume.id, mount_path=path, subpath=subpath)]
                    ),
                    timeout=60,
                )
        with pytest.raises(DaytonaError, match="already exists"):
            daytona.volume.create(volume.name)
    finally:
        daytona.volume.delete(volume)


def test_volumes_async(
    async_config: Callable[[], DaytonaConfig], engine_volumes: docker.DockerClient
) -> None:
    name = _name("async")

    async def body() -> None:
        async with AsyncDaytona(async_config()) as client:
            volume = await client.volume.get(name, create=True)
            assert volume.state == "ready"
            sandbox = await client.create(
                CreateSandboxFromSnapshotParams(
                    volumes=[VolumeMount(volume_id=volume.id, mount_path="/shared")],
                    auto_stop_interval=0,
                ),
                timeout=120,
            )
            try:
                await sandbox.process.exec("echo kept > /shared/file")
                with pytest.raises(DaytonaError, match="in use"):
                    await client.volume.delete(volume)
            finally:
                await client.delete(sandbox, wait=True)
            # A second sandbox sees what the first one left.
            second = await client.create(
                CreateSandboxFromSnapshotParams(
                    volumes=[VolumeMount(volume_id=name, mount_path="/again")],
                    auto_stop_interval=0,
                ),
                timeout=120,
            )
            try:
                assert (await second.process.exec("cat /again/file")).result.strip() == "kept"
            finally:
                await client.delete(second, wait=True)
            await client.volume.delete(volume)
            assert name not in [v.name for v in await client.volume.list()]

    asyncio.run(body())
