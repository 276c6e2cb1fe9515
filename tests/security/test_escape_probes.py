"""Escape probes inside an environment under each runtime (issue 16): one program
(tests/security/probes.py) tries every way out once per runtime, as root, through
the exec API; each probe is its own case and none may get through."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbay.runtime.docker.names import CAPABILITIES, TOKEN_VAR, container_name
from tests.e2e.test_agent_lifecycle import CAPABILITY_BITS
from tests.security.probes import NAMES
from tests.support.factories import delete, running_env
from tests.support.inside import run
from tests.support.server import ADMIN_KEY, LiveServer

# SQLite only: the probes test the runtimes, not the database.
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]
RUNTIMES = ["runc", "runsc"]
PROBES = Path(__file__).with_name("probes.py").read_text()
#: The capabilities the README's "Isolation" section documents.
DOCUMENTED_CAPABILITIES = {
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "NET_BIND_SERVICE",
}


@dataclass
class Probed:
    runtime: str
    results: dict[str, dict[str, Any]]
    token: str


def _container(client: docker.DockerClient, environment_id: str) -> Any:
    return client.containers.get(container_name(environment_id))


@pytest.fixture(scope="module")
def peers(server: LiveServer, docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Addresses of two other environments: one in the same organization, one in
    another."""
    with server.client(key=ADMIN_KEY) as admin:
        created = admin.post("/v1/orgs", json={"name": "probe-other-org"})
        assert created.status_code == 201, created.text
        other_key = created.json()["api_key"]["key"]
    with server.client() as api, server.client(key=other_key) as stranger:
        ours = running_env(api, name="probe-peer")
        theirs = running_env(stranger, name="probe-stranger")
        try:
            yield [
                _container(docker_client, env["id"]).attrs["NetworkSettings"]["IPAddress"]
                for env in (ours, theirs)
            ]
        finally:
            delete(api, ours["id"])
            delete(stranger, theirs["id"])


@pytest.fixture(scope="module", params=RUNTIMES)
def probed(
    request: pytest.FixtureRequest,
    server: LiveServer,
    docker_client: docker.DockerClient,
    peers: list[str],
) -> Iterator[Probed]:
    runtime = str(request.param)
    with server.client() as api:
        env = running_env(api, name=f"probe-{runtime}", runtime=runtime)
        try:
            config = {"server_ports": [server.port, server.ssh_port], "peers": peers}
            result = run(api, env["id"], ["python3", "-c", PROBES, json.dumps(config)], timeout=120)
            assert result["exit_code"] == 0, result
            attrs = _container(docker_client, env["id"]).attrs
            assert attrs["HostConfig"]["Runtime"] == runtime
            container_env = attrs["Config"]["Env"]
            token = next(v.split("=", 1)[1] for v in container_env if v.startswith(TOKEN_VAR))
            yield Probed(runtime, json.loads(result["stdout"]), token)
        finally:
            delete(api, env["id"])


def _mask(names: set[str]) -> int:
    return sum(1 << CAPABILITY_BITS.index(name) for name in names)


def test_granted_capabilities_are_the_documented_ones() -> None:
    assert set(CAPABILITIES) == DOCUMENTED_CAPABILITIES


@pytest.mark.parametrize("probe", NAMES)
def test_probe_does_not_get_out(probed: Probed, probe: str) -> None:
    outcome = probed.results[probe]
    detail = outcome["detail"]
    assert probed.token not in detail, f"{probe} under {probed.runtime} read the agent's token"
    if probe == "capabilities":
        caps = {name: int(value, 16) for name, value in json.loads(detail).items()}
        allowed = _mask(DOCUMENTED_CAPABILITIES)
        for name in ("CapPrm", "CapEff", "CapBnd"):
            assert caps[name] & ~allowed == 0, (name, hex(caps[name]), detail)
        assert caps["CapInh"] == 0 and caps["CapAmb"] == 0, detail
    if probe == "seccomp_mode" and probed.runtime == "runc":
        # The engine's profile and envd's filter, stacked.
        assert "filters=2" in detail, detail
    assert outcome["escaped"] is False, f"{probe} got through under {probed.runtime}: {detail}"
