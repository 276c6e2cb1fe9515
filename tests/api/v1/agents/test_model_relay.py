"""The model relay on real Docker: while Claude Code runs in an environment, neither
the provider's key nor any sandbay key is in any process's environment, command
line or memory there, nor in any file; the agent still completes through the relay
(the scripted provider on the host sees the real key); the run's relay credential is
refused from another environment and from the host while the run lives, and
everywhere once it has ended."""

import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.agents import (
    AGENT_IMAGE,
    model_requests,
    new_secret,
    put_claude_provider,
    require_agent_image,
    start_model_server,
)
from tests.support.engine import read_file
from tests.support.factories import delete, running_env
from tests.support.polling import eventually
from tests.support.server import ADMIN_KEY, LiveServer, free_port

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]

SANDBAY_KEY = re.compile(rb"sbk_[a-z]+_[0-9a-f]{8}")
#: Where the platform, the agent CLI and its configuration write inside an environment.
SCANNED_DIRS = ("root", "workspace", "tmp", "etc", "opt", "home", "var", "run", ".sandbay")
MAX_FILE = 8 * 1024 * 1024
MAX_REGION = 512 * 1024 * 1024


def _pids(client: docker.DockerClient, env_id: str) -> list[int]:
    """The host pids of every process of the environment (its cgroup, from the host)."""
    top = client.containers.get(f"sandbay-{env_id}").top(ps_args="-eo pid")
    return [int(row[0]) for row in top["Processes"]]


def _agent_env(client: docker.DockerClient, env_id: str) -> dict[str, str] | None:
    """The environment of the running Claude Code process, read from the host."""
    for pid in _pids(client, env_id):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        pairs = dict(item.split("=", 1) for item in environ.split("\0") if "=" in item)
        if "ANTHROPIC_BASE_URL" in pairs:
            return pairs
    return None


def _memory_hits(pid: int, needles: list[bytes]) -> list[str]:
    """Every needle found in a process's readable memory (read from the host)."""
    hits = []
    try:
        maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb", buffering=0)  # noqa: SIM115
    except OSError:
        return []
    with mem:
        for line in maps:
            span, perms, *_rest = line.split()
            start, end = (int(x, 16) for x in span.split("-"))
            if perms[0] != "r" or end - start > MAX_REGION or "[vvar" in line:
                continue
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except OSError:
                continue
            hits += [f"pid {pid} memory" for needle in needles if needle in chunk]
            if SANDBAY_KEY.search(chunk):
                hits.append(f"pid {pid} memory: a sandbay key")
    return hits


def _scan(client: docker.DockerClient, env_id: str, needles: list[bytes]) -> list[str]:
    """Where a needle or a sandbay key shows up in the environment: each process's
    environment, command line and memory, and every file under the scanned
    directories of its root filesystem (through /proc/<pid>/root on the host, so the
    scan itself puts nothing inside)."""
    hits: list[str] = []
    pids = _pids(client, env_id)
    for pid in pids:
        for part in ("environ", "cmdline"):
            try:
                data = Path(f"/proc/{pid}/{part}").read_bytes()
            except OSError:
                continue
            hits += [f"pid {pid} {part}" for needle in needles if needle in data]
            if SANDBAY_KEY.search(data):
                hits.append(f"pid {pid} {part}: a sandbay key")
        hits += _memory_hits(pid, needles)
    root = Path(f"/proc/{pids[0]}/root")
    for top in SCANNED_DIRS:
        for dirpath, _dirs, files in os.walk(root / top):
            for name in files:
                path = Path(dirpath) / name
                try:
                    if not path.is_file() or path.stat().st_size > MAX_FILE:
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                shown = str(path.relative_to(root))
                hits += [f"file /{shown}" for needle in needles if needle in data]
                if SANDBAY_KEY.search(data):
                    hits.append(f"file /{shown}: a sandbay key")
    return hits


def _relay_status(
    client: docker.DockerClient, env_id: str, relay: str, credential: str, path: str = "v1/models"
) -> int:
    """What the relay answers a call made from inside `env_id` with `credential`."""
    command = [
        "curl", "-sS", "-m", "20", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
        "-H", f"x-api-key: {credential}", f"{relay}/{path}",
    ]  # fmt: skip
    result = client.containers.get(f"sandbay-{env_id}").exec_run(command)
    assert result.exit_code == 0, result.output
    return int(result.output.decode())


@pytest.fixture(scope="module")
def bystander(server: LiveServer, docker_client: docker.DockerClient) -> Iterator[dict[str, Any]]:
    """Another environment of the organization, sharing nothing with the run's."""
    with server.client() as api:
        env = running_env(api)
        yield env
        delete(api, env["id"])


def test_no_key_in_the_environment_and_the_run_credential_works_only_for_its_run(
    server: LiveServer,
    api: httpx.Client,
    docker_client: docker.DockerClient,
    bystander: dict[str, Any],
) -> None:
    require_agent_image(docker_client)
    env_id = running_env(api, image=AGENT_IMAGE)["id"]
    secret, port = new_secret("sk-ant"), free_port()
    put_claude_provider(api, "relayed", port=port, secret=secret)
    path = "/workspace/relay/out.txt"
    # Each model answer takes 3 s: the run is live while the test looks inside.
    start_model_server(
        env_id, port=port, delay=3, path=path, content="relayed", final="Written through the relay."
    )
    answer: dict[str, Any] = {}
    body = {"prompt": "write it", "agent": "claude", "provider": "relayed", "project": "relay"}

    def run() -> None:
        url = f"/v1/environments/{env_id}/agent/execute"
        answer["run"] = api.post(url, json=body, timeout=300).json()

    runner = threading.Thread(target=run)
    runner.start()
    try:
        agent = eventually(
            lambda: _agent_env(docker_client, env_id), what="Claude Code running", timeout=60
        )
        eventually(lambda: model_requests(env_id), what="a model request")
        relay, credential = agent["ANTHROPIC_BASE_URL"], agent["ANTHROPIC_API_KEY"]
        assert "/v1/model-relay" in relay and credential.startswith("sbrelay.run.")
        assert credential != secret
        # Reachable from its own environment with its credential (the provider answers)...
        assert _relay_status(docker_client, env_id, relay, credential) == 200
        # ...but not from another environment, nor from the host, nor forged.
        assert _relay_status(docker_client, bystander["id"], relay, credential) == 401
        assert httpx.get(f"{relay}/v1/models", headers={"x-api-key": credential}).status_code == 401
        kind, run_id, mac = credential.split(".")[1:]
        forged = f"sbrelay.{kind}.{run_id}.{mac[::-1]}"
        assert _relay_status(docker_client, env_id, relay, forged) == 401
        # The path stays under the provider's base URL.
        for climbing in ("v1/../../x", "v1/%2e%2e/%2E%2E/x"):
            assert _relay_status(docker_client, env_id, relay, credential, climbing) == 400
        # The scan finds what is there (the relay credential in the agent's environment
        # and memory, root's line in /etc/passwd)...
        control = _scan(docker_client, env_id, [credential.encode(), b"root:x:0:0:"])
        assert any("environ" in h for h in control) and any("memory" in h for h in control)
        assert "file /etc/passwd" in control
        # ...and nothing of the provider's key or of any sandbay key anywhere inside.
        needles = [secret.encode(), server.key.encode(), ADMIN_KEY.encode()]
        assert _scan(docker_client, env_id, needles) == []
    finally:
        runner.join(300)
    run = answer["run"]
    assert run["status"] == "completed", run
    assert run["result"] == "Written through the relay."
    assert read_file(docker_client, env_id, path) == b"relayed"
    seen = [r for r in model_requests(env_id) if r["path"] != "/v1/models"]
    assert seen and {r["x_api_key"] for r in seen} == {secret}
    assert credential not in json.dumps(run)
    # The run has ended: its credential opens nothing, even from its own environment.
    assert _relay_status(docker_client, env_id, relay, credential) == 401
    api.delete("/v1/model-providers/relayed")
    delete(api, env_id)


def test_the_relay_refuses_anything_but_a_relay_credential(
    server: LiveServer, docker_client: docker.DockerClient, bystander: dict[str, Any]
) -> None:
    found = re.findall(r"model relay listening on (\S+):(\d+)", server.log_path.read_text())
    assert found, "the server did not log its relay's address"
    relay = f"http://{found[-1][0]}:{found[-1][1]}/v1/model-relay"
    for credential in ("", "sbrelay", server.key, "sbrelay.run.run_x.abc", "sbrelay.inst.x.y"):
        assert _relay_status(docker_client, bystander["id"], relay, credential) == 401
