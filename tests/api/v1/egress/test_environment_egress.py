"""An environment's domain lists and secrets: set at create and by PATCH, shown on
GET, validated; the environment sees only the secrets' placeholders (in the
container's environment and in every process started later), never their values,
and the database holds only ciphertext."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.agents import new_secret
from tests.support.factories import assert_envelope, delete, running_env
from tests.support.inside import sh
from tests.support.polling import eventually
from tests.support.server import LiveServer


@pytest.fixture(scope="module")
def secrets(server: LiveServer) -> Iterator[dict[str, dict[str, Any]]]:
    made: dict[str, dict[str, Any]] = {}
    with server.client() as api:
        for name in ("egress_alpha", "egress_beta"):
            value = new_secret(f"sk-{name}")
            response = api.post("/v1/secrets", json={"name": name, "value": value})
            assert response.status_code == 201, response.text
            made[name] = {**response.json(), "value": value}
        yield made
        for secret in made.values():
            api.delete(f"/v1/secrets/{secret['id']}")


@pytest.fixture(scope="module")
def env(server: LiveServer, secrets: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    with server.client() as api:
        # No network at all: the fields and placeholders are what is shown here, not
        # the egress proxy (which a domain policy with a network would start through).
        made = running_env(
            api,
            name="egress-fields",
            network_block_all=True,
            network_domain_allow_list=["PyPI.org", "*.pypi.org", "pypi.org."],
            network_domain_deny_list=["evil.example.com"],
            secrets={"API_KEY": "egress_alpha"},
        )
        yield made
        delete(api, made["id"])


def _echo(api: httpx.Client, env_id: str, var: str) -> str:
    return sh(api, env_id, f'printf %s "${{{var}-unset}}"')


def _values_nowhere(values: list[str], text: str) -> None:
    for value in values:
        assert value not in text


def test_create_normalizes_the_lists_and_shows_the_secrets(env: dict[str, Any]) -> None:
    assert env["network_domain_allow_list"] == ["pypi.org", "*.pypi.org"]
    assert env["network_domain_deny_list"] == ["evil.example.com"]
    assert env["secrets"] == {"API_KEY": "egress_alpha"}


def test_the_environment_sees_only_placeholders(
    server: LiveServer,
    api: httpx.Client,
    docker_client: docker.DockerClient,
    env: dict[str, Any],
    secrets: dict[str, dict[str, Any]],
) -> None:
    alpha, beta = secrets["egress_alpha"], secrets["egress_beta"]
    values = [alpha["value"], beta["value"]]
    assert _echo(api, env["id"], "API_KEY") == alpha["placeholder"]
    # The container's own environment (the workload's) holds the placeholder too.
    container = docker_client.containers.get(env["container_id"])
    assert f"API_KEY={alpha['placeholder']}" in container.attrs["Config"]["Env"]
    _values_nowhere(values, str(container.attrs))

    patched = api.patch(
        f"/v1/environments/{env['id']}",
        json={"secrets": {"API_KEY": "egress_beta", "OTHER": "egress_alpha"}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["secrets"] == {"API_KEY": "egress_beta", "OTHER": "egress_alpha"}
    assert _echo(api, env["id"], "API_KEY") == beta["placeholder"]
    assert _echo(api, env["id"], "OTHER") == alpha["placeholder"]
    # A process session started afterwards sees the new map as well.
    base = f"/v1/environments/{env['id']}/processes"
    started = api.post(base, json={"command": 'printf %s "$API_KEY"'})
    assert started.status_code == 201, started.text
    output = eventually(
        lambda: api.get(f"{base}/{started.json()['id']}/output").json()["stdout"],
        what="the process's output",
    )
    assert output == beta["placeholder"]

    dropped = api.patch(f"/v1/environments/{env['id']}", json={"secrets": {"OTHER": "egress_beta"}})
    assert dropped.status_code == 200, dropped.text
    # Dropped from the map: unset for later processes, though the container holds it.
    assert _echo(api, env["id"], "API_KEY") == "unset"
    assert _echo(api, env["id"], "OTHER") == beta["placeholder"]

    lists = api.patch(
        f"/v1/environments/{env['id']}",
        json={"network_domain_allow_list": ["*.Example.org"], "network_domain_deny_list": []},
    )
    assert lists.status_code == 200, lists.text
    shown = api.get(f"/v1/environments/{env['id']}").json()
    assert shown["network_domain_allow_list"] == ["*.example.org"]
    assert shown["network_domain_deny_list"] == []
    assert shown["secrets"] == {"OTHER": "egress_beta"}

    environs = "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'; true"
    everything = sh(api, env["id"], environs)
    assert beta["placeholder"] in everything
    _values_nowhere(values, everything)
    for response in (patched, dropped, lists, api.get("/v1/events", params={"limit": 1000})):
        _values_nowhere(values, response.text)
    _values_nowhere(values, server.log_path.read_text())
    if server.database_url is None:  # SQLite: the files themselves hold only ciphertext
        assert (Path(server.data_dir) / "sandbay.db").is_file()
        for path in Path(server.data_dir).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(v.encode() in data for v in values), path


def test_bad_domain_lists_and_secrets_are_refused(api: httpx.Client, env: dict[str, Any]) -> None:
    url = f"/v1/environments/{env['id']}"
    for body in (
        {"network_domain_allow_list": ["https://pypi.org/simple"]},
        {"network_domain_allow_list": ["*.com"]},
        {"network_domain_deny_list": ["a..b"]},
        {"secrets": {"1BAD": "egress_alpha"}},
        {"secrets": {"GOOD": "not a name"}},
    ):
        assert_envelope(api.patch(url, json=body), 400, "invalid_request_error")
        assert_envelope(
            api.post("/v1/environments", json={"name": "egress-refused", **body}),
            400,
            "invalid_request_error",
        )
    missing = {"secrets": {"TOKEN": "no_such_secret"}}
    message = assert_envelope(api.patch(url, json=missing), 400, "invalid_request_error")
    assert "no_such_secret" in message
    message = assert_envelope(
        api.post("/v1/environments", json={"name": "egress-refused", **missing}),
        400,
        "invalid_request_error",
    )
    assert "no_such_secret" in message
    assert api.get("/v1/environments/egress-refused").status_code == 404
