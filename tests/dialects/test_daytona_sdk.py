"""Daytona's official Python SDK (PyPI `daytona`), unchanged, pointed at a live
sandbay (`api_url` = its base URL, an API key), drives a sandbox on real Docker
through create, get, list, labels, intervals, exec, code run, files, stop, start and
delete; what it did is checked through sandbay's native API and the engine."""

import docker
import httpx
import pytest
from daytona import (
    CreateSandboxFromImageParams,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaError,
    FileUpload,
    ListSandboxesQuery,
    SandboxState,
)

from tests.support.engine import read_file
from tests.support.factories import delete, wait_state
from tests.support.server import LiveServer


@pytest.fixture
def daytona(server: LiveServer) -> Daytona:
    return Daytona(DaytonaConfig(api_key=server.key, api_url=server.url))


def test_sdk_drives_a_sandbox_through_its_whole_life(
    daytona: Daytona, api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    sandbox = daytona.create(
        CreateSandboxFromSnapshotParams(
            name="sdk-life",
            env_vars={"GREETING": "hello"},
            labels={"team": "sdk"},
            auto_stop_interval=0,
        ),
        timeout=120,
    )
    assert sandbox.state == SandboxState.STARTED
    native = api.get(f"/v1/environments/{sandbox.id}").json()
    assert native["name"] == "sdk-life" and native["state"] == "running"
    assert native["env"] == {"GREETING": "hello"} and native["auto_stop_interval"] == 0
    assert native["labels"]["team"] == "sdk"

    # Process execute and code run.
    run = sandbox.process.exec("echo $GREETING; echo oops >&2; exit 3")
    assert run.exit_code == 3
    assert sorted(run.result.split()) == ["hello", "oops"]
    assert sandbox.process.exec("pwd", cwd="/tmp").result == "/tmp\n"
    code = sandbox.process.code_run("import os\nprint(6 * 7, os.environ['GREETING'])")
    assert (code.exit_code, code.result) == (0, "42 hello\n")
    assert sandbox.process.code_run("raise SystemExit(5)").exit_code == 5

    # Files: upload (one and many), download, list.
    sandbox.fs.upload_file(b"first file", "/workspace/sdk/a.txt")
    sandbox.fs.upload_files(
        [FileUpload(b"\x00\x01binary", "/workspace/sdk/b.bin"), FileUpload(b"c", "sdk/c.txt")]
    )
    assert read_file(docker_client, sandbox.id, "/workspace/sdk/a.txt") == b"first file"
    assert sandbox.fs.download_file("/workspace/sdk/b.bin") == b"\x00\x01binary"
    assert sandbox.fs.download_file("sdk/c.txt") == b"c"
    listed = {f.name: f for f in sandbox.fs.list_files("/workspace/sdk")}
    assert set(listed) == {"a.txt", "b.bin", "c.txt"}
    assert listed["a.txt"].size == 10 and not listed["a.txt"].is_dir
    with pytest.raises(DaytonaError):
        sandbox.fs.download_file("/workspace/sdk/missing.txt")

    # Labels and intervals.
    assert sandbox.set_labels({"team": "core", "tier": "2"}) == {"team": "core", "tier": "2"}
    sandbox.set_autostop_interval(45)
    sandbox.set_auto_archive_interval(120)
    sandbox.set_auto_delete_interval(600)
    native = api.get(f"/v1/environments/{sandbox.id}").json()
    assert native["labels"] == {"team": "core", "tier": "2"}
    assert (native["auto_stop_interval"], native["auto_archive_interval"]) == (45, 120)
    assert native["auto_delete_interval"] == 600

    # Get and list.
    again = daytona.get("sdk-life")
    assert again.id == sandbox.id and again.labels == {"team": "core", "tier": "2"}
    assert again.auto_stop_interval == 45 and again.env == {"GREETING": "hello"}
    found = [s.id for s in daytona.list(ListSandboxesQuery(labels={"tier": "2"}))]
    assert found == [sandbox.id]
    assert [s.id for s in daytona.list(ListSandboxesQuery(labels={"tier": "9"}))] == []

    # Stop and start keep the files.
    sandbox.stop()
    assert sandbox.state == SandboxState.STOPPED
    assert api.get(f"/v1/environments/{sandbox.id}").json()["state"] == "stopped"
    sandbox.start()
    assert sandbox.state == SandboxState.STARTED
    assert sandbox.fs.download_file("/workspace/sdk/a.txt") == b"first file"

    sandbox.delete()
    wait_state(api, sandbox.id, "deleted")


def test_sdk_creates_from_an_image_with_resources_and_stops_an_ephemeral_one(
    daytona: Daytona, api: httpx.Client, server: LiveServer
) -> None:
    image = api.get("/config").json()["defaultSnapshot"]
    sandbox = daytona.create(
        CreateSandboxFromImageParams(
            name="sdk-image", image=image, auto_delete_interval=0, public=True
        ),
        timeout=120,
    )
    native = api.get(f"/v1/environments/{sandbox.id}").json()
    assert native["image"] == image and native["public"] is True
    assert native["auto_delete_interval"] == 0
    sandbox.stop()  # the SDK takes `destroyed` as stopped for an ephemeral sandbox
    wait_state(api, sandbox.id, "deleted")


def test_sdk_sees_errors_with_their_status(daytona: Daytona, api: httpx.Client) -> None:
    with pytest.raises(DaytonaError) as missing:
        daytona.get("no-such-sandbox")
    assert missing.value.status_code == 404
    sandbox = daytona.create(CreateSandboxFromSnapshotParams(name="sdk-errors"), timeout=120)
    sandbox.stop()
    with pytest.raises(DaytonaError) as stopped:
        sandbox.process.exec("true")
    assert stopped.value.status_code == 409
    delete(api, sandbox.id)
