"""Everything the platform offers, on one environment under gVisor (`runtime: runsc`),
each shown on real results: exec, files, processes and the terminal, logs, metrics,
previews, SSH with the real OpenSSH client, network policy, stop/start, restart,
archive and restore, delete; then the organization's default runtime (native API and
Daytona's SDK) and the refusals.

SQLite only: this exercises the engine's second runtime, not the database (every
database path it touches is the same for runc and is covered on PostgreSQL elsewhere).
The cases share one runsc environment and run in file order (the lifecycle last)."""

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from daytona import (
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaError,
    Resources,
    VolumeMount,
)
from websockets.sync.client import connect

from tests.support.agents import (
    AGENT_IMAGE,
    new_secret,
    put_claude_provider,
    require_agent_image,
    start_model_server,
)
from tests.support.engine import container_state
from tests.support.factories import (
    assert_envelope,
    create_env,
    delete,
    running_env,
    scoped_key,
    stop,
    wait_state,
)
from tests.support.inside import METRIC_FIELDS, run, sh
from tests.support.inside_app import start_app
from tests.support.polling import eventually
from tests.support.server import ADMIN_KEY, LiveServer, free_port
from tests.support.ssh import SshLogin

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]
HOST_RELEASE = os.uname().release
WORKLOAD = "echo gvisor-workload-says-hi; exec sleep infinity"
SERVE = "python3 -m http.server 8000"
KEPT = "/workspace/kept.txt"


def _container(client: docker.DockerClient, env_id: str) -> Any:
    return client.containers.get(f"sandbay-{env_id}")


def _engine_runtime(client: docker.DockerClient, env_id: str) -> str:
    return str(_container(client, env_id).attrs["HostConfig"]["Runtime"])


@pytest.fixture(scope="module")
def gvisor(server: LiveServer) -> Iterator[dict[str, Any]]:
    """The one runsc environment of the module (a workload that logs, an env var)."""
    with server.client() as api:
        env = running_env(
            api,
            name=f"gvisor-{uuid.uuid4().hex[:8]}",
            runtime="runsc",
            command=WORKLOAD,
            env={"SANDBAY_PROBE": "gvisor"},
        )
        try:
            yield env
        finally:
            if api.get(f"/v1/environments/{env['id']}").status_code == 200:
                delete(api, env["id"])


@pytest.fixture(scope="module")
def peer(server: LiveServer, gvisor: dict[str, Any]) -> Iterator[str]:
    """The address of another environment (runc) serving HTTP on port 8000."""
    with server.client() as api:
        env = running_env(api, name=f"gvisor-peer-{uuid.uuid4().hex[:8]}", command=SERVE)
        try:
            address = sh(api, env["id"], "hostname -i").split()[0]
            eventually(lambda: _reaches(api, env["id"], "127.0.0.1"), what="the peer listening")
            yield address
        finally:
            delete(api, env["id"])


def _reaches(api: httpx.Client, env: str, address: str) -> bool:
    probe = f"curl -s -o /dev/null --max-time 3 http://{address}:8000/"
    return bool(run(api, env, probe)["exit_code"] == 0)


def test_the_environment_runs_under_gvisor(
    api: httpx.Client, gvisor: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    assert gvisor["runtime"] == "runsc"
    assert api.get(f"/v1/environments/{gvisor['id']}").json()["runtime"] == "runsc"
    assert _engine_runtime(docker_client, gvisor["id"]) == "runsc"
    release = sh(api, gvisor["id"], "uname -r").strip()
    assert release and release != HOST_RELEASE  # gVisor's own kernel answers
    # On the host, the container's process is gVisor's sandbox (its kernel), not the workload.
    pid = _container(docker_client, gvisor["id"]).attrs["State"]["Pid"]
    assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"runsc-sandbox\0")


def test_exec_returns_output_exit_code_env_and_workspace_cwd(
    api: httpx.Client, gvisor: dict[str, Any]
) -> None:
    result = run(
        api, gvisor["id"], "echo $SANDBAY_PROBE $EXTRA; pwd; echo oops >&2; exit 3",
        env={"EXTRA": "more"},
    )  # fmt: skip
    assert result["exit_code"] == 3
    assert result["stdout"] == "gvisor more\n/workspace\n"
    assert result["stderr"] == "oops\n"
    assert run(api, gvisor["id"], ["pwd"], cwd="/tmp")["stdout"] == "/tmp\n"
    assert run(api, gvisor["id"], ["id", "-u"], user="nobody")["stdout"] == "65534\n"
    slow = run(api, gvisor["id"], "sleep 1001 & sleep 1002", timeout=1)
    assert slow["timed_out"] is True
    assert "sleep 100" not in sh(api, gvisor["id"], "ps -eo args")  # its whole tree killed


def test_files_upload_list_download_and_delete(api: httpx.Client, gvisor: dict[str, Any]) -> None:
    url = f"/v1/environments/{gvisor['id']}/files"
    blob = os.urandom(300_000)
    put = api.put(url, params={"path": "/workspace/up/blob.bin"}, content=blob)
    assert put.status_code == 200, put.text
    assert put.json()["size"] == len(blob)
    listed = api.get(f"{url}/list", params={"path": "/workspace/up"})
    assert listed.status_code == 200, listed.text
    assert [(f["name"], f["size"]) for f in listed.json()["data"]] == [("blob.bin", len(blob))]
    got = api.get(url, params={"path": "/workspace/up/blob.bin"})
    assert got.status_code == 200 and got.content == blob
    assert sh(api, gvisor["id"], "wc -c < /workspace/up/blob.bin").strip() == str(len(blob))
    assert api.delete(url, params={"path": "/workspace/up/blob.bin"}).status_code == 204
    assert_envelope(api.get(url, params={"path": "/workspace/up/blob.bin"}), 404, "not_found_error")
    assert run(api, gvisor["id"], "test -e /workspace/up/blob.bin")["exit_code"] == 1


def test_background_process_and_terminal(
    api: httpx.Client, gvisor: dict[str, Any], server: LiveServer
) -> None:
    base = f"/v1/environments/{gvisor['id']}/processes"
    started = api.post(base, json={"command": "read line; echo got $line", "stdin": True})
    assert started.status_code == 201, started.text
    url = f"{base}/{started.json()['id']}"
    assert api.post(f"{url}/stdin", json={"data": "hello\n"}).status_code == 200
    eventually(lambda: api.get(url).json()["status"] == "exited", what="the process exit")
    assert api.get(f"{url}/output").json()["stdout"] == "got hello\n"
    assert api.get(url).json()["exit_code"] == 0

    ws_url = f"ws://127.0.0.1:{server.port}/v1/environments/{gvisor['id']}/pty?cols=90&rows=20"
    with connect(ws_url, additional_headers={"X-API-KEY": server.key}) as socket:
        assert json.loads(socket.recv(timeout=30))["type"] == "session"
        socket.send(b"stty size; uname -r; exit 5\n")
        frames: list[str | bytes] = []
        while not frames or not isinstance(frames[-1], str):
            frames.append(socket.recv(timeout=30))
    screen = b"".join(f for f in frames if isinstance(f, bytes))
    assert b"20 90" in screen
    assert json.loads(frames[-1]) == {"type": "exit", "exit_code": 5}


def test_logs_show_the_workload_output(api: httpx.Client, gvisor: dict[str, Any]) -> None:
    url = f"/v1/environments/{gvisor['id']}/logs"
    logs = eventually(lambda: api.get(url).text, what="the workload's first line")
    assert logs == "gvisor-workload-says-hi\n"


def test_metrics_are_sampled(api: httpx.Client, gvisor: dict[str, Any]) -> None:
    def online() -> list[Any]:
        data = api.get(f"/v1/environments/{gvisor['id']}/metrics").json()["data"]
        return [s for s in data if s["online"]]

    sample = eventually(online, what="an online metrics sample")[-1]
    assert set(sample) >= METRIC_FIELDS
    assert sample["memory_bytes"] > 0 and sample["memory_limit_bytes"] > 0
    assert sample["cpu_percent"] >= 0 and sample["pids"] >= 1


def test_preview_reaches_a_server_inside(
    api: httpx.Client, gvisor: dict[str, Any], server: LiveServer
) -> None:
    start_app(api, gvisor["id"], 8000)
    link = api.get(f"/v1/environments/{gvisor['id']}/preview/8000").json()
    with server.client(key="") as anon:
        answer = anon.get(
            f"/preview/{gvisor['id']}/8000/hello",
            headers={"X-Sandbay-Preview-Token": link["token"]},
        )
    assert answer.status_code == 200, answer.text
    assert answer.text == "hello from inside\n"


def test_ssh_runs_a_command(api: httpx.Client, gvisor: dict[str, Any], tmp_path: Path) -> None:
    credential = api.get(f"/v1/environments/{gvisor['id']}/ssh")
    assert credential.status_code == 200, credential.text
    login = SshLogin.write(credential.json(), tmp_path)
    result = login.ssh("sh", "-c", "'uname -r; echo $SANDBAY_PROBE; exit 4'")
    assert result.returncode == 4, result.stderr
    release, probe = result.stdout.decode().split()
    assert release != HOST_RELEASE and probe == "gvisor"


def test_network_policy_blocks_and_reopens(
    api: httpx.Client, gvisor: dict[str, Any], peer: str
) -> None:
    env_id = gvisor["id"]
    url = f"/v1/environments/{env_id}"
    assert not _reaches(api, env_id, peer)  # other environments: refused by default
    assert api.patch(url, json={"network_allow_list": [f"{peer}/32"]}).status_code == 200
    assert _reaches(api, env_id, peer)
    assert api.patch(url, json={"network_block_all": True}).status_code == 200
    assert not _reaches(api, env_id, peer)
    assert api.patch(url, json={"network_block_all": False}).status_code == 200
    assert _reaches(api, env_id, peer)  # the list is in force again
    assert api.patch(url, json={"network_allow_list": []}).status_code == 200
    assert not _reaches(api, env_id, peer)


def test_stop_then_start_keeps_files_and_the_runtime(
    api: httpx.Client, gvisor: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    env_id = gvisor["id"]
    sh(api, env_id, f"echo kept > {KEPT}")
    stop(api, env_id, timeout=1)
    wait_state(api, env_id, "stopped")
    assert api.post(f"/v1/environments/{env_id}/start").status_code == 200
    again = wait_state(api, env_id, "running")
    assert again["runtime"] == "runsc" and _engine_runtime(docker_client, env_id) == "runsc"
    assert sh(api, env_id, f"cat {KEPT}") == "kept\n"


def test_restart_comes_back_under_gvisor(
    api: httpx.Client, gvisor: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    env_id = gvisor["id"]
    before = api.get(f"/v1/environments/{env_id}").json()["started_at"]
    assert api.post(f"/v1/environments/{env_id}/restart").status_code == 200
    again = eventually(
        lambda: (e := wait_state(api, env_id, "running"))["started_at"] != before and e,
        what="a new start",
    )
    assert again["runtime"] == "runsc" and _engine_runtime(docker_client, env_id) == "runsc"
    assert sh(api, env_id, "uname -r").strip() != HOST_RELEASE


def test_archive_then_start_restores_files_under_gvisor(
    api: httpx.Client, gvisor: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    env_id = gvisor["id"]
    sh(api, env_id, "echo rooted > /root/rootfile")
    assert api.post(f"/v1/environments/{env_id}/archive").status_code == 200
    assert wait_state(api, env_id, "archived")["container_id"] is None
    assert container_state(docker_client, env_id) is None
    assert api.post(f"/v1/environments/{env_id}/start").status_code == 200
    again = wait_state(api, env_id, "running")
    assert again["runtime"] == "runsc" and _engine_runtime(docker_client, env_id) == "runsc"
    assert sh(api, env_id, f"cat {KEPT} /root/rootfile") == "kept\nrooted\n"
    assert sh(api, env_id, "uname -r").strip() != HOST_RELEASE


def test_delete_removes_the_container(
    api: httpx.Client, gvisor: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    delete(api, gvisor["id"])
    assert container_state(docker_client, gvisor["id"]) is None


@pytest.fixture(scope="module")
def gvisor_org(server: LiveServer) -> str:
    """An organization of its own (its default runtime changes nothing elsewhere)."""
    with server.client(key=ADMIN_KEY) as admin:
        created = admin.post("/v1/orgs", json={"name": f"gvisor-{uuid.uuid4().hex[:8]}"})
        assert created.status_code == 201, created.text
        return str(created.json()["api_key"]["key"])


def test_org_default_runtime_applies_to_creates_without_one(
    server: LiveServer, gvisor_org: str, docker_client: docker.DockerClient
) -> None:
    with server.client(key=gvisor_org) as org:
        limited = scoped_key(org, "no-org-admin", "environments:write", "environments:read")
        with server.client(key=limited) as scoped:
            refused = scoped.patch("/v1/orgs/current", json={"default_runtime": "runsc"})
            assert refused.status_code == 403, refused.text
        changed = org.patch("/v1/orgs/current", json={"default_runtime": "runsc"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["default_runtime"] == "runsc"
        assert org.get("/v1/orgs/current").json()["default_runtime"] == "runsc"
        env = create_env(org, name="by-default")
        assert env["runtime"] == "runsc"
        explicit = create_env(org, name="explicit-runc", runtime="runc")
        assert explicit["runtime"] == "runc"
        for made in (env, explicit):
            wait_state(org, made["id"], "running")
        assert _engine_runtime(docker_client, env["id"]) == "runsc"
        assert _engine_runtime(docker_client, explicit["id"]) == "runc"
        delete(org, env["id"])
        delete(org, explicit["id"])


def test_daytona_sandbox_gets_the_org_default_runtime_shares_a_volume_and_resizes_stopped(
    server: LiveServer, gvisor_org: str, docker_client: docker.DockerClient
) -> None:
    """A sandbox of the SDK (no runtime in its request) in an organization whose
    default is runsc runs under gVisor; a shared volume mounted there and in a runc
    environment carries files both ways (gVisor's mounts are not cached as its own);
    a resize waits for a stop, since gVisor cannot change a running sandbox's limits."""
    with server.client(key=gvisor_org) as org:
        org.patch("/v1/orgs/current", json={"default_runtime": "runsc"}).raise_for_status()
        daytona = Daytona(DaytonaConfig(api_key=gvisor_org, api_url=server.url))
        volume = daytona.volume.create(f"gvisor-{uuid.uuid4().hex[:8]}")
        mount = {"volume_id": volume.id, "mount_path": "/data"}
        sandbox = daytona.create(
            CreateSandboxFromSnapshotParams(
                volumes=[VolumeMount(volume_id=volume.id, mount_path="/data")]
            )
        )
        peer = create_env(org, name="runc-peer", runtime="runc", volumes=[mount])
        try:
            assert _engine_runtime(docker_client, sandbox.id) == "runsc"
            answer = sandbox.process.exec("uname -r; echo from-gvisor > /data/a")
            assert answer.exit_code == 0
            assert answer.result.split()[0] != HOST_RELEASE
            wait_state(org, peer["id"], "running")
            assert sh(org, peer["id"], "cat /data/a; echo from-runc > /data/b") == "from-gvisor\n"
            assert sandbox.process.exec("cat /data/b").result.strip() == "from-runc"
            # gVisor has no live update of its limits: refused while it runs, done stopped.
            with pytest.raises(DaytonaError, match="gVisor"):
                sandbox.resize(Resources(memory=2))
            sandbox.stop()
            sandbox.resize(Resources(memory=2))
            sandbox.start()
            meminfo = sandbox.process.exec("head -1 /proc/meminfo").result.split()
            assert meminfo[1:] == [str(2 * 1024 * 1024), "kB"]  # gVisor's kernel sees it
        finally:
            daytona.delete(sandbox, wait=True)
            delete(org, peer["id"])
            daytona.volume.delete(volume)


def test_unknown_runtime_and_gpu_under_gvisor_are_refused(
    api: httpx.Client, gvisor_org: str, server: LiveServer
) -> None:
    kata = api.post("/v1/environments", json={"runtime": "kata"})
    assert "runsc" in assert_envelope(kata, 400, "invalid_request_error")
    gpu = api.post("/v1/environments", json={"runtime": "runsc", "gpu": 1})
    assert "gVisor" in assert_envelope(gpu, 400, "invalid_request_error")
    # gVisor's pids limit counts its own host threads (~10 a process): reaching it ends
    # the sandbox, so a limit it cannot live with is refused, and the floor holds 20.
    small = api.post("/v1/environments", json={"runtime": "runsc", "pids_limit": 256})
    assert "at least 512" in assert_envelope(small, 400, "invalid_request_error")
    env = running_env(api, name="gvisor-pids-floor", runtime="runsc", pids_limit=512)
    try:
        # A forked child shows as `sh` until its exec: wait (bounded) for all 20 sleeps.
        spawn = (
            "for i in $(seq 20); do sleep 300 >/dev/null 2>&1 & done; "
            "for i in $(seq 100); do [ $(ps -e | grep -c sleep) -ge 20 ] && break; "
            "sleep 0.1; done; ps -e | grep -c sleep"
        )
        assert sh(api, env["id"], spawn) == "20\n"
        assert sh(api, env["id"], "echo alive") == "alive\n"
    finally:
        delete(api, env["id"])
    with server.client(key=gvisor_org) as org:
        bad_default = org.patch("/v1/orgs/current", json={"default_runtime": "kata"})
    assert_envelope(bad_default, 400, "invalid_request_error")


def test_claude_code_agent_runs_under_gvisor(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    """The real Claude Code CLI, its model the scripted server behind the model relay."""
    require_agent_image(docker_client)
    env = running_env(api, image=AGENT_IMAGE, runtime="runsc")
    secret, port = new_secret("sk-ant"), free_port()
    put_claude_provider(api, "claude-gvisor", port=port, secret=secret)
    path, content = "/workspace/g/hello.txt", "hi from gvisor"
    start_model_server(env["id"], port=port, path=path, content=content, final="Done.")
    body = {"prompt": "Create hello.txt", "agent": "claude", "project": "g",
            "provider": "claude-gvisor"}  # fmt: skip
    try:
        answer = api.post(f"/v1/environments/{env['id']}/agent/execute", json=body, timeout=300)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "completed", answer.json()
        assert sh(api, env["id"], f"cat {path}") == content
    finally:
        api.delete("/v1/model-providers/claude-gvisor")
        delete(api, env["id"])
