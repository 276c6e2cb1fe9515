"""Daytona's snapshots through the unchanged SDK, sync and async, on real Docker: a
declarative `Image` built by the runner in the background with its log followed
(`on_logs`), sandboxes made from the snapshot by name and from an `Image` of their
own, the bases that cannot be had said so, and the snapshot's delete refused while
a sandbox runs it."""

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromImageParams,
    CreateSandboxFromSnapshotParams,
    CreateSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaError,
    DaytonaNotFoundError,
    Image,
)

from sandbay.domain.images import PYTHON_SHIM, from_images, localize
from tests.support.polling import eventually
from tests.support.server import LiveServer

#: Exercises the engine and the HTTP shapes; every database path it touches runs on both
#: databases elsewhere (tests/api, tests/services).
pytestmark = pytest.mark.usefixtures("sqlite_only")

BUILT_LABEL = "sandbay.image"


@pytest.fixture
def built_images(server: LiveServer) -> Iterator[None]:
    """Images this test built are removed afterwards, whatever the test left."""
    engine = docker.from_env()
    # Low-level lists: the high-level one inspects each image, racing the images loop.
    before = {i["Id"] for i in engine.api.images(filters={"label": BUILT_LABEL})}
    yield
    for image in engine.api.images(filters={"label": BUILT_LABEL}):
        if image["Id"] not in before:
            for tag in image.get("RepoTags") or [image["Id"]]:
                with contextlib.suppress(docker.errors.APIError):
                    engine.images.remove(tag, force=True)
    engine.close()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _fresh() -> str:
    """A step no earlier build cached, that lasts long enough for the SDK's once-a-second
    look to see the build running (it follows the log only from then on)."""
    return f"echo fresh {uuid.uuid4().hex} && sleep 2"


def _marker_image() -> Image:
    return (
        Image.base("sandbay-base:latest")
        .run_commands(_fresh(), "echo built > /opt/marker")
        .env({"BUILT_BY": "sandbay"})
        .workdir("/opt")
    )


def test_snapshot_built_from_an_image_runs_sandboxes(daytona: Daytona, built_images: None) -> None:
    name = _name("marker")
    logs: list[str] = []
    snapshot = daytona.snapshot.create(
        CreateSnapshotParams(name=name, image=_marker_image()), on_logs=logs.append, timeout=300
    )
    assert snapshot.state == "active" and snapshot.name == name
    assert snapshot.build_info is not None
    assert "echo built > /opt/marker" in (snapshot.build_info.dockerfile_content or "")
    text = "\n".join(logs)
    # The SDK prints the states as its enum shows them (SnapshotState.PENDING).
    assert f"Creating snapshot {name} (SnapshotState.PENDING)" in text
    assert f"Creating snapshot {name} (SnapshotState.BUILDING)" in text
    assert "echo built > /opt/marker" in text  # the build's own output, followed
    assert f"Created snapshot {name} (SnapshotState.ACTIVE)" in text

    assert daytona.snapshot.get(name).id == snapshot.id
    assert daytona.snapshot.get(snapshot.id).name == name
    assert name in [s.name for s in daytona.snapshot.list(limit=200).items]
    assert daytona.snapshot.activate(name).state == "active"

    sandbox = daytona.create(
        CreateSandboxFromSnapshotParams(snapshot=name, auto_stop_interval=0), timeout=120
    )
    try:
        assert sandbox.process.exec("cat /opt/marker").result.strip() == "built"
        assert sandbox.process.exec("echo $BUILT_BY").result.strip() == "sandbay"
        # Daytona refuses nothing here; sandbay refuses: a remade container needs it.
        with pytest.raises(DaytonaError, match="in use"):
            daytona.snapshot.delete(name)
    finally:
        daytona.delete(sandbox, wait=True)
    daytona.snapshot.delete(name)
    with pytest.raises(DaytonaNotFoundError):
        daytona.snapshot.get(name)
    engine = docker.from_env()
    try:
        eventually(
            # The low-level list: the high-level one inspects each image, racing the removal.
            lambda: not engine.api.images(filters={"label": f"{BUILT_LABEL}={snapshot.id}"}),
            what="the built image removed from the runner",
        )
    finally:
        engine.close()


def test_failed_build_says_why(daytona: Daytona, built_images: None) -> None:
    image = Image.base("sandbay-base:latest").run_commands(_fresh(), "echo about to fail", "exit 3")
    logs: list[str] = []
    with pytest.raises(DaytonaError, match="Failed to create snapshot"):
        daytona.snapshot.create(
            CreateSnapshotParams(name=_name("failing"), image=image),
            on_logs=logs.append,
            timeout=300,
        )
    assert "about to fail" in "\n".join(logs)


def test_a_base_the_runner_lacks_is_refused_naming_the_mapping(daytona: Daytona) -> None:
    with pytest.raises(DaytonaError) as caught:
        daytona.snapshot.create(
            CreateSnapshotParams(name=_name("nobase"), image=Image.base("no-such/base:1")),
            timeout=120,
        )
    assert "cannot be pulled" in str(caught.value) and "sandbay-base:latest" in str(caught.value)


def test_local_files_need_object_storage_which_is_refused(daytona: Daytona, tmp_path: Path) -> None:
    local = tmp_path / "hello.txt"
    local.write_text("hi")
    image = Image.base("sandbay-base:latest").add_local_file(local, "/opt/hello.txt")
    with pytest.raises(DaytonaError, match="object storage"):
        daytona.snapshot.create(CreateSnapshotParams(name=_name("local"), image=image))


def test_sandbox_from_its_own_image_builds_then_starts(
    daytona: Daytona, built_images: None
) -> None:
    image = Image.base("sandbay-base:latest").run_commands(
        _fresh(), f"echo own-{uuid.uuid4().hex[:6]} > /opt/own"
    )
    logs: list[str] = []
    sandbox = daytona.create(
        CreateSandboxFromImageParams(image=image, auto_stop_interval=0),
        timeout=300,
        on_snapshot_create_logs=logs.append,
    )
    try:
        assert sandbox.state == "started"
        # The SDK followed the build's log: the sandbox showed `pending_build`.
        assert any("echo own-" in line for line in logs), logs
        assert sandbox.process.exec("cat /opt/own").result.startswith("own-")
    finally:
        daytona.delete(sandbox, wait=True)


def test_snapshot_lifecycle_async(
    async_config: Callable[[], DaytonaConfig], built_images: None
) -> None:
    name = _name("async")

    async def body() -> None:
        async with AsyncDaytona(async_config()) as client:
            logs: list[str] = []
            image = Image.base("sandbay-base:latest").run_commands(
                _fresh(), "echo async > /opt/marker"
            )
            snapshot = await client.snapshot.create(
                CreateSnapshotParams(name=name, image=image), on_logs=logs.append, timeout=300
            )
            assert snapshot.state == "active"
            assert any("echo async" in line for line in logs)
            sandbox = await client.create(
                CreateSandboxFromSnapshotParams(snapshot=name, auto_stop_interval=0), timeout=120
            )
            try:
                result = await sandbox.process.exec("cat /opt/marker")
                assert result.result.strip() == "async"
            finally:
                await client.delete(sandbox, wait=True)
            await client.snapshot.delete(name)
            with pytest.raises(DaytonaNotFoundError):
                await client.snapshot.get(name)

    asyncio.run(body())


def test_debian_slim_maps_to_the_local_base_with_python_and_pip() -> None:
    dockerfile = Image.debian_slim("3.12").pip_install("six").dockerfile()
    local = localize(dockerfile)
    assert "FROM python:" not in local
    assert local.startswith("FROM sandbay-base:latest\n" + "\n".join(PYTHON_SHIM) + "\n")
    assert "RUN python -m pip install six" in local  # the SDK's own steps follow
    assert from_images(local) == ["sandbay-base:latest"]
    assert from_images("FROM a:1 AS build\nRUN x\nFROM build\n") == ["a:1"]
