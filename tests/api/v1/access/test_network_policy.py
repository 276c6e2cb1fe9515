"""Network policy on real Docker: `network_block_all` and `network_allow_list`,
enforced from the host in the environment's namespace, changed on a running
environment without a restart, kept across a stop and start. The destinations are
web servers in two other environments of the test (the project's own containers on
the Docker bridge); the test itself only talks to the API on loopback."""

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.factories import create_env, delete, events, stop, wait_state
from tests.support.polling import eventually

pytestmark = pytest.mark.docker
SERVE = "python3 -m http.server 8000"


def _exec(api: httpx.Client, env: str, command: list[str] | str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/v1/environments/{env}/exec", json={"command": command, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _reaches(api: httpx.Client, env: str, address: str) -> bool:
    probe = f"import socket; socket.create_connection(({address!r}, 8000), timeout=5)"
    return _exec(api, env, ["python3", "-c", probe])["exit_code"] == 0


def _address(api: httpx.Client, env: str) -> str:
    return str(_exec(api, env, "hostname -i")["stdout"].split()[0])


def _patch(api: httpx.Client, env: str, **fields: Any) -> dict[str, Any]:
    response = api.patch(f"/v1/environments/{env}", json=fields)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def envs(api: httpx.Client) -> Iterator[dict[str, dict[str, Any]]]:
    """A client environment and two servers (`b`, `c`) on port 8000."""
    tag = uuid.uuid4().hex[:8]
    made = {
        "a": create_env(api, name=f"net-a-{tag}"),
        "b": create_env(api, name=f"net-b-{tag}", command=SERVE),
        "c": create_env(api, name=f"net-c-{tag}", command=SERVE),
    }
    try:
        running = {k: wait_state(api, v["id"], "running") for k, v in made.items()}
        # `running` means the agent answers; the servers may still be binding.
        for server in ("b", "c"):
            eventually(
                lambda env=running[server]["id"]: _reaches(api, env, "127.0.0.1"),
                what=f"{server}'s server listening",
            )
        yield running
    finally:
        for env in made.values():
            delete(api, env["id"])


def test_policy_changes_apply_to_a_running_environment_without_restart(
    api: httpx.Client, envs: dict[str, dict[str, Any]]
) -> None:
    a = envs["a"]["id"]
    b, c = _address(api, envs["b"]["id"]), _address(api, envs["c"]["id"])
    # Other environments are refused by default; an allow list opens what it names.
    assert not _reaches(api, a, b) and not _reaches(api, a, c)

    assert _patch(api, a, network_block_all=True)["network_block_all"] is True
    assert not _reaches(api, a, b)
    assert not _reaches(api, a, c)

    _patch(api, a, network_block_all=False, network_allow_list=[f"{b}/32"])
    assert _reaches(api, a, b)  # only the allowed destination works
    assert not _reaches(api, a, c)

    _patch(api, a, network_allow_list=[f"{c}/32"])
    assert _reaches(api, a, c)
    assert not _reaches(api, a, b)

    _patch(api, a, network_allow_list=["0.0.0.0/0"])  # everything but other environments
    assert not _reaches(api, a, b) and not _reaches(api, a, c)

    after = _patch(api, a, network_allow_list=[])
    assert not _reaches(api, a, b) and not _reaches(api, a, c)
    assert after["started_at"] == envs["a"]["started_at"]  # never restarted
    assert after["container_id"] == envs["a"]["container_id"]
    applied = [e for e in events(api, a) if e["type"] == "environment.network_policy_applied"]
    assert len(applied) == 5


def test_blocked_environment_is_blocked_from_its_start_and_after_a_restart(
    api: httpx.Client, envs: dict[str, dict[str, Any]]
) -> None:
    b = _address(api, envs["b"]["id"])
    blocked = create_env(api, name=f"net-d-{uuid.uuid4().hex[:8]}", network_block_all=True)
    try:
        env_id = blocked["id"]
        wait_state(api, env_id, "running")
        assert not _reaches(api, env_id, b)
        # Root inside cannot lift it: no CAP_NET_ADMIN in the environment.
        undo = _exec(api, env_id, "ip link set eth0 down; ip route flush all", user="root")
        assert undo["exit_code"] != 0
        assert "not permitted" in undo["stderr"]

        stop(api, env_id, timeout=1)
        wait_state(api, env_id, "stopped")
        assert api.post(f"/v1/environments/{env_id}/start").status_code == 200
        wait_state(api, env_id, "running")
        assert not _reaches(api, env_id, b)
    finally:
        delete(api, blocked["id"])


def test_allow_list_is_validated(api: httpx.Client, envs: dict[str, dict[str, Any]]) -> None:
    response = api.patch(
        f"/v1/environments/{envs['a']['id']}", json={"network_allow_list": ["not-a-cidr"]}
    )
    assert response.status_code == 400
