"""The environment agent (docs/envd.md) through a real server: a workload cannot kill
it, it comes back with an `auto_restart` workload, its channel works under
`network_block_all` while the workload's own traffic does not, its token opens
nothing but its own agent (and is no API key), and running the agent as PID 1 adds
no privilege and no mount but its own read-only /.sandbay."""

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import httpx
import pytest

from sandbay.runtime.docker.names import AGENT_DIR, CAPABILITIES, TOKEN_VAR, container_name
from sandbay.runtime.envd.channel import PORT
from tests.support.factories import (
    assert_envelope,
    create_env,
    delete,
    events,
    running_env,
    state_changes,
    wait_state,
)
from tests.support.images import static_image
from tests.support.inside import run
from tests.support.polling import eventually
from tests.support.server import LiveServer

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]
BUSYBOX = "/bin/busybox"
TOKEN = "X-Sandbay-Preview-Token"
#: Linux capability numbers, in bit order (capability.h).
CAPABILITY_BITS = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]  # fmt: skip


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _bb(*argv: str) -> list[str]:
    return [BUSYBOX, *argv]


def _ok(api: httpx.Client, env_id: str, argv: list[str]) -> str:
    result = run(api, env_id, argv)
    assert result["exit_code"] == 0, result
    return str(result["stdout"])


def _address(docker_client: docker.DockerClient, env_id: str) -> str:
    """The environment's address on the engine's network (as the locator finds it)."""
    settings = docker_client.api.inspect_container(container_name(env_id))["NetworkSettings"]
    hosts = [n.get("IPAddress") for n in (settings.get("Networks") or {}).values()]
    host = next((h for h in hosts if h), settings.get("IPAddress"))
    assert host, settings
    return str(host)


def _pid1_start(api: httpx.Client, env_id: str) -> str:
    """PID 1's start time in clock ticks since boot: another process, another value."""
    stat = _ok(api, env_id, _bb("cat", "/proc/1/stat"))
    return stat.rsplit(")", 1)[1].split()[19]


@pytest.fixture
def static_envs(
    api: httpx.Client, docker_client: docker.DockerClient
) -> Iterator[Callable[..., dict[str, Any]]]:
    """Running environments of the shell-less image, deleted after the test."""
    image = static_image(docker_client)
    made: list[str] = []

    def make(**fields: Any) -> dict[str, Any]:
        env = create_env(api, name=_name("agent"), image=image, **fields)
        made.append(env["id"])
        return wait_state(api, env["id"], "running")

    yield make
    for env_id in made:
        delete(api, env_id)


def test_the_workload_cannot_kill_the_agent(
    api: httpx.Client, static_envs: Callable[..., dict[str, Any]]
) -> None:
    env = static_envs()
    env_id = env["id"]
    before = _pid1_start(api, env_id)
    changes = state_changes(api, env_id)
    # SIGKILL and the signals Go would die of, sent to PID 1 from inside.
    for signal in ("KILL", "SEGV", "BUS", "ABRT", "SYS"):
        killed = run(api, env_id, _bb("kill", f"-{signal}", "1"))
        assert killed["exit_code"] == 0, killed  # delivered, and nothing happens
        assert _ok(api, env_id, _bb("echo", "still", "here")) == "still here\n"
    # Every process the workload may signal (kill -1 spares only PID 1 and itself).
    run(api, env_id, _bb("kill", "-9", "-1"))
    assert _ok(api, env_id, _bb("echo", "after", "kill", "-1")) == "after kill -1\n"
    assert _pid1_start(api, env_id) == before  # the same agent, never restarted
    again = api.get(f"/v1/environments/{env_id}").json()
    assert again["state"] == "running" and again["started_at"] == env["started_at"]
    assert state_changes(api, env_id) == changes


def test_an_auto_restarted_workload_comes_back_with_its_agent(api: httpx.Client) -> None:
    # The first run exits 3; the restarted one stays up.
    command = (
        "if [ -e /workspace/ran ]; then exec sleep infinity; fi; "
        "touch /workspace/ran; sleep 1; exit 3"
    )
    env = running_env(api, name=_name("agent-restart"), auto_restart=True, command=command)
    env_id = env["id"]
    try:

        def restarted() -> dict[str, Any] | None:
            current = dict(api.get(f"/v1/environments/{env_id}").json())
            return (
                current if current["restart_count"] >= 1 and current["state"] == "running" else None
            )

        back = eventually(restarted, what="the restart", timeout=60)
        assert back["exit_code"] == 3 and back["restart_count"] == 1, back
        restarts = [e for e in events(api, env_id) if e["data"].get("restart_count") == 1]
        assert len(restarts) == 1 and restarts[0]["data"]["exit_code"] == 3, restarts
        assert [to for _, to in state_changes(api, env_id)].count("running") >= 2
        # The agent answers in the restarted container: exec, files, and it is PID 1.
        assert _ok(api, env_id, ["cat", "/proc/1/cmdline"]).split("\0")[:2] == [
            f"{AGENT_DIR}/envd",
            "init",
        ]
        assert "sleep infinity" in _ok(api, env_id, ["ps", "-eo", "args"])
        file = api.get(f"/v1/environments/{env_id}/files/stat", params={"path": "/workspace/ran"})
        assert file.status_code == 200, file.text
    finally:
        delete(api, env_id)


def _fetch(api: httpx.Client, env_id: str, url: str, *headers: str) -> dict[str, Any]:
    """busybox wget of `url` from inside the environment (a refused connection fails
    at once: the policy rejects, it does not drop)."""
    argv = _bb("wget", "-q", "-O", "-")
    for header in headers:
        argv += ["--header", header]
    return run(api, env_id, [*argv, url], timeout=20)


def test_block_all_refuses_the_workloads_traffic_but_not_the_channel(
    api: httpx.Client,
    server: LiveServer,
    docker_client: docker.DockerClient,
    static_envs: Callable[..., dict[str, Any]],
) -> None:
    page = b"<p>reachable</p>\n"
    target = static_envs(command=_bb("httpd", "-f", "-p", "8000", "-h", "/workspace"))
    put = api.put(
        f"/v1/environments/{target['id']}/files",
        params={"path": "/workspace/index.html"},
        content=page,
    )
    assert put.status_code == 200, put.text
    blocked = static_envs(network_block_all=True)
    assert blocked["network_block_all"] is True
    env_id = blocked["id"]
    peer = _address(docker_client, target["id"])

    refused = _fetch(api, env_id, f"http://{peer}:8000/")
    assert refused["exit_code"] != 0 and refused["timed_out"] is False, refused
    assert "can't connect" in refused["stderr"], refused
    agent = _fetch(api, env_id, f"http://{peer}:{PORT}/v1/health")  # nor another's agent
    assert agent["exit_code"] != 0 and "can't connect" in agent["stderr"], agent

    # The channel still works: exec (above), files, a process and its preview.
    base = f"/v1/environments/{env_id}/files"
    assert (
        api.put(base, params={"path": "/workspace/site/index.html"}, content=page).status_code
        == 200
    )
    assert api.get(base, params={"path": "/workspace/site/index.html"}).content == page
    started = api.post(
        f"/v1/environments/{env_id}/processes",
        json={"command": _bb("httpd", "-f", "-p", "8080", "-h", "/workspace/site")},
    )
    assert started.status_code == 201, started.text
    link = api.get(f"/v1/environments/{env_id}/preview/8080")
    assert link.status_code == 200, link.text
    with server.client(key="") as anon:

        def served() -> httpx.Response | None:
            response = anon.get(f"/preview/{env_id}/8080/", headers={TOKEN: link.json()["token"]})
            return None if response.status_code == 502 else response

        preview = eventually(served, what="the preview", timeout=30)
        assert preview.status_code == 200 and preview.content == page, preview.text

    # The refusal was the policy's: lifted to a list naming the peer (another
    # environment is reached only so), the same request goes through.
    lifted = api.patch(
        f"/v1/environments/{env_id}",
        json={"network_block_all": False, "network_allow_list": [f"{peer}/32"]},
    )
    assert lifted.status_code == 200, lifted.text
    reached = eventually(
        lambda: (r := _fetch(api, env_id, f"http://{peer}:8000/"))["exit_code"] == 0 and r,
        what="the lifted policy",
        timeout=30,
    )
    assert reached["stdout"] == page.decode()


def test_an_agent_token_opens_only_its_own_agent_and_is_no_api_key(
    api: httpx.Client,
    server: LiveServer,
    docker_client: docker.DockerClient,
    static_envs: Callable[..., dict[str, Any]],
) -> None:
    b = static_envs()["id"]
    # A lists B, or the network would refuse it before B's agent could.
    a = static_envs(network_allow_list=[f"{_address(docker_client, b)}/32"])["id"]
    # The workload of A cannot read A's token from PID 1 (non-dumpable, and its initial
    # environment no longer holds it), and no process it starts gets it ...
    assert f"{TOKEN_VAR}=" not in run(api, a, _bb("cat", "/proc/1/environ"))["stdout"]
    assert TOKEN_VAR not in _ok(api, a, _bb("env"))
    # ... and whoever had it anyway (the engine's view of the container) opens only A.
    config_env = docker_client.api.inspect_container(container_name(a))["Config"]["Env"]
    token = next(e for e in config_env if e.startswith(f"{TOKEN_VAR}="))[len(TOKEN_VAR) + 1 :]
    assert len(token) >= 32
    bearer = f"Authorization: Bearer {token}"

    own = _fetch(api, a, f"http://127.0.0.1:{PORT}/v1/health", bearer)
    assert own["exit_code"] == 0 and '"status":"ok"' in own["stdout"].replace(" ", ""), own
    other = _fetch(api, a, f"http://{_address(docker_client, b)}:{PORT}/v1/health", bearer)
    assert other["exit_code"] != 0 and "401" in other["stderr"], other
    anonymous = _fetch(api, a, f"http://127.0.0.1:{PORT}/v1/health")
    assert anonymous["exit_code"] != 0 and "401" in anonymous["stderr"], anonymous

    # Nor is it a key to the platform's API, in either header.
    with server.client(key="") as anon:
        for headers in ({"Authorization": f"Bearer {token}"}, {"X-API-KEY": token}):
            for path in ("/v1/environments", f"/v1/environments/{a}"):
                assert_envelope(anon.get(path, headers=headers), 401, "authentication_error")
            refused = anon.post(
                f"/v1/environments/{a}/exec", headers=headers, json={"command": _bb("id")}
            )
            assert_envelope(refused, 401, "authentication_error")


def _status(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


#: Mount points Docker makes in every container (besides those under /proc, /dev and
#: /sys), and the platform's workspace volume.
_DOCKER_MOUNTS = {"/", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/workspace"}


@pytest.mark.parametrize("image", ["base", "static"])
def test_the_agent_adds_one_read_only_mount_and_no_privilege(
    api: httpx.Client, docker_client: docker.DockerClient, image: str
) -> None:
    """The probes of test_lifecycle (CapDrop, no-new-privileges) seen from inside: PID 1
    (the agent) has exactly the capabilities, no-new-privs and seccomp filter of a
    command it runs, and /.sandbay is the one mount Docker did not make, read-only."""
    fields = {"image": static_image(docker_client)} if image == "static" else {}
    env = running_env(api, name=_name(f"agent-sec-{image}"), **fields)
    env_id = env["id"]
    tool: Callable[..., list[str]] = _bb if image == "static" else (lambda *argv: list(argv))
    try:
        mounts = {}
        for line in _ok(api, env_id, tool("cat", "/proc/self/mountinfo")).splitlines():
            fields_ = line.split()
            point = fields_[4].replace("\\040", " ")
            mounts[point] = fields_[5].split(",")  # the mount's own options
        extra = {
            point
            for point in mounts
            if point not in _DOCKER_MOUNTS
            and not point.startswith(("/proc/", "/dev/", "/sys/"))
            and point not in ("/proc", "/dev", "/sys")
        }
        assert extra == {AGENT_DIR}, sorted(mounts)
        assert "ro" in mounts[AGENT_DIR] and "rw" not in mounts[AGENT_DIR], mounts[AGENT_DIR]
        written = run(api, env_id, tool("touch", f"{AGENT_DIR}/planted"))
        assert written["exit_code"] != 0 and "Read-only file system" in written["stderr"], written

        agent = _status(_ok(api, env_id, tool("cat", "/proc/1/status")))
        command = _status(_ok(api, env_id, tool("cat", "/proc/self/status")))
        assert agent["Name"] == "envd" and command["Pid"] != "1", (agent, command)
        expected = sum(1 << CAPABILITY_BITS.index(name) for name in CAPABILITIES)
        for key in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
            assert agent[key] == command[key], key
        assert int(agent["CapEff"], 16) == expected, agent["CapEff"]
        assert int(agent["CapBnd"], 16) == expected, agent["CapBnd"]
        assert agent["NoNewPrivs"] == command["NoNewPrivs"] == "1"
        assert agent["Seccomp"] == command["Seccomp"] == "2"  # the engine's default filter
        assert agent["Seccomp_filters"] == command["Seccomp_filters"]
    finally:
        delete(api, env_id)
