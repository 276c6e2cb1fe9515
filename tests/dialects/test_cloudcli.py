"""The CloudCLI dialect against a live server: the brief's stop example replayed
(its curl, host and key replaced), the brief's stop semantics on real Docker, the
rest of the environments API, its errors in CloudCLI's shape, and environments that
are the same objects through every surface."""

from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.engine import sh
from tests.support.factories import assert_message, delete, running_env, wait_state
from tests.support.server import LiveServer
from tests.support.ssh import password_ssh

#: Exercises the engine and the HTTP shapes; every database path it touches runs on both
#: databases elsewhere (tests/api, tests/services).
pytestmark = pytest.mark.usefixtures("sqlite_only")

API = "/api/v1/environments"
STOPPED_BODY = {"message": "Environment stopped successfully", "status": "stopped"}
TRAP_TERM = "trap 'echo drained > /workspace/marker; exit 0' TERM; while true; do sleep 0.1; done"


def curl_stop(server: LiveServer, env_id: str) -> httpx.Response:
    """`curl --location --request POST '{host}/api/v1/environments/{id}/stop'
    --header 'X-API-KEY: <api-key>'`: no body, no other header."""
    return httpx.post(
        f"{server.url}{API}/{env_id}/stop",
        headers={"X-API-KEY": server.key},
        follow_redirects=True,
        timeout=60,
    )


def assert_error(response: httpx.Response, status: int) -> str:
    """CloudCLI's Error: `{"error": "<message>"}`."""
    return assert_message(response, status, "error")


def test_brief_stop_example_answers_the_documented_body(
    server: LiveServer, api: httpx.Client
) -> None:
    env = running_env(api, name="cloudcli-brief")
    response = curl_stop(server, env["id"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == STOPPED_BODY
    assert wait_state(api, env["id"], "stopped")["desired_state"] == "stopped"
    delete(api, env["id"])


def test_stop_signals_processes_keeps_workspace_and_restarts_on_the_same_host(
    server: LiveServer, api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    env = running_env(api, name="cloudcli-semantics", command=TRAP_TERM)
    sh(docker_client, env["id"], "echo kept > /workspace/file")
    assert curl_stop(server, env["id"]).json() == STOPPED_BODY
    stopped = wait_state(api, env["id"], "stopped")
    assert stopped["exit_code"] == 0  # the workload's SIGTERM trap ran: a graceful stop
    started = api.post(f"{API}/{env['id']}/start")
    assert started.status_code == 200, started.text
    assert started.json() == {"message": "Environment starting", "status": "starting"}
    again = wait_state(api, env["id"], "running")
    assert again["runner_id"] == env["runner_id"] and again["container_id"] == env["container_id"]
    assert sh(docker_client, env["id"], "cat /workspace/file /workspace/marker") == (
        "kept\ndrained\n"
    )
    delete(api, env["id"])


def test_stop_of_a_stopped_environment_is_400_and_of_an_unknown_one_404(
    server: LiveServer, api: httpx.Client
) -> None:
    env = running_env(api, name="cloudcli-stop-errors")
    assert curl_stop(server, env["id"]).status_code == 200
    wait_state(api, env["id"], "stopped")
    assert "stopped" in assert_error(curl_stop(server, env["id"]), 400)
    assert_error(curl_stop(server, "env_" + "0" * 32), 404)
    assert_error(curl_stop(server, "no-such-environment"), 404)
    delete(api, env["id"])


def test_errors_of_keys_and_states_are_cloudcli_errors(
    server: LiveServer, api: httpx.Client
) -> None:
    env = running_env(api, name="cloudcli-errors")
    with server.client(key="sbk_org_not-a-key") as bad:
        assert_error(bad.get(API), 401)
        assert_error(bad.post(f"{API}/{env['id']}/stop"), 401)
    with server.client(key="") as anonymous:
        assert_error(anonymous.get(f"{API}/{env['id']}"), 401)
    assert "running" in assert_error(api.post(f"{API}/{env['id']}/start"), 400)
    assert "running" in assert_error(api.delete(f"{API}/{env['id']}"), 400)
    assert_error(api.post(API, json={"name": "x", "subdomain": "Not Valid"}), 400)
    assert_error(api.get(f"{API}/no-such-environment"), 404)
    delete(api, env["id"])


def _environment(body: dict[str, Any]) -> dict[str, Any]:
    fields = {"id", "name", "subdomain", "status", "access_url", "github_url"}
    assert fields | {"created_at", "updated_at"} == set(body), body
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")
    return body


def test_create_list_get_start_stop_delete_through_cloudcli(api: httpx.Client) -> None:
    created = api.post(API, json={"name": "My Backend API", "subdomain": "cloudcli-crud"})
    assert created.status_code == 201, created.text
    env = _environment(created.json())
    assert env["name"] == "My Backend API" and env["subdomain"] == "cloudcli-crud"
    assert env["status"] == "starting"
    native = wait_state(api, env["id"], "running")
    assert native["name"] == "cloudcli-crud"  # the subdomain names it everywhere

    assert _environment(api.get(f"{API}/cloudcli-crud").json())["status"] == "running"
    running = api.get(API, params={"status": "running"}).json()["environments"]
    assert env["id"] in [e["id"] for e in running]
    stopped = api.get(API, params={"status": "stopped"}).json()["environments"]
    assert env["id"] not in [e["id"] for e in stopped]

    assert api.post(f"{API}/{env['id']}/stop").json() == STOPPED_BODY
    wait_state(api, env["id"], "stopped")
    assert _environment(api.get(f"{API}/{env['id']}").json())["status"] == "stopped"
    removed = api.delete(f"{API}/{env['id']}")
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"message": "Environment deleted successfully"}
    wait_state(api, env["id"], "deleted")
    assert_error(api.get(f"{API}/{env['id']}"), 404)


def test_environments_of_every_surface_are_the_same_objects(api: httpx.Client) -> None:
    env = running_env(api, name="cloudcli-shared")
    for path in (f"{API}/{env['id']}", f"{API}/cloudcli-shared"):
        seen = api.get(path).json()
        assert (seen["id"], seen["name"], seen["status"]) == (env["id"], env["name"], "running")
    app = api.get(f"/v1/apps/{env['id']}").json()
    sandbox = api.get(f"/sandbox/{env['name']}").json()
    assert app["_id"] == sandbox["id"] == env["id"]
    # Stopped through Daytona, seen stopped through CloudCLI.
    assert api.post(f"/sandbox/{env['id']}/stop").status_code == 200
    wait_state(api, env["id"], "stopped")
    assert api.get(f"{API}/{env['id']}").json()["status"] == "stopped"
    delete(api, env["id"])


def test_ssh_credentials_log_a_real_openssh_client_in(
    server: LiveServer, api: httpx.Client, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    env = running_env(api, name="cloudcli-ssh")
    sh(docker_client, env["id"], "echo hello-cloudcli > /workspace/hello")
    with server.client(key="") as anon:
        answer = anon.get(
            f"/api/v1/environments/{env['id']}/ssh", headers={"X-API-KEY": server.key}
        )
    assert answer.status_code == 200, answer.text
    cred = answer.json()
    assert set(cred) == {
        "host", "port", "username", "password", "private_key", "expires_at", "ssh_command"
    }  # fmt: skip
    assert cred["ssh_command"].startswith("ssh ") and cred["password"] and cred["private_key"]
    known = tmp_path / "known_hosts"
    known.write_text(api.get(f"/v1/environments/{env['id']}/ssh").json()["known_hosts"])
    ran = password_ssh(cred, known, tmp_path, "cat", "/workspace/hello")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == b"hello-cloudcli\n"
    missing = api.get("/api/v1/environments/env_" + "0" * 32 + "/ssh")
    assert missing.status_code == 404 and "error" in missing.json()
    delete(api, env["id"])
