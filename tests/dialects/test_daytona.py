"""The Daytona dialect over HTTP against a live server: the brief's stop example
replayed (its curl, host and key replaced) with every field of the brief,
`stopping` then `stopped`, `autoDeleteInterval: 0`, the organization header, the
sandbox and toolbox error shapes, and sandboxes shared with every surface."""

import time
from typing import Any

import httpx
import pytest

from tests.support.factories import delete, running_env, wait_state
from tests.support.server import LiveServer

#: Exercises the engine and the HTTP shapes; every database path it touches runs on both
#: databases elsewhere (tests/api, tests/services).
pytestmark = pytest.mark.usefixtures("sqlite_only")

#: The brief's fields, with their documented JSON types.
SANDBOX_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "organizationId": (str,),
    "name": (str,),
    "snapshot": (str,),
    "user": (str,),
    "env": (dict,),
    "labels": (dict,),
    "public": (bool,),
    "networkBlockAll": (bool,),
    "networkAllowList": (str, type(None)),
    "target": (str,),
    "cpu": (int, float),
    "gpu": (int, float),
    "memory": (int, float),
    "disk": (int, float),
    "state": (str,),
    "desiredState": (str,),
    "autoStopInterval": (int, float),
    "autoArchiveInterval": (int, float),
    "autoDeleteInterval": (int, float),
    "volumes": (list,),
    "createdAt": (str,),
    "updatedAt": (str,),
    "runnerId": (str,),
}
API_ERROR_FIELDS = {"path", "timestamp", "statusCode", "error", "message"}
TOOLBOX_ERROR_FIELDS = {"statusCode", "message", "code", "timestamp", "path", "method", "source"}


def assert_sandbox(body: dict[str, Any]) -> dict[str, Any]:
    for field, types in SANDBOX_FIELDS.items():
        assert field in body, field
        assert isinstance(body[field], types), (field, body[field])
    return body


def assert_api_error(response: httpx.Response, status: int, path: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == API_ERROR_FIELDS, body
    assert body["statusCode"] == status and body["path"] == path
    assert isinstance(body["error"], str) and body["timestamp"].endswith("Z")
    return str(body["message"])


def assert_toolbox_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == TOOLBOX_ERROR_FIELDS, body
    assert (body["statusCode"], body["code"]) == (status, code)
    return str(body["message"])


def curl_stop(server: LiveServer, sandbox: str, org: str) -> httpx.Response:
    """`curl -X POST {host}/sandbox/{id}/stop -H "Authorization: Bearer KEY"
    -H "X-Daytona-Organization-ID: ORG"`."""
    return httpx.post(
        f"{server.url}/sandbox/{sandbox}/stop",
        headers={"Authorization": f"Bearer {server.key}", "X-Daytona-Organization-ID": org},
        timeout=60,
    )


def create_sandbox(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/sandbox", json=fields)
    assert response.status_code == 200, response.text
    return assert_sandbox(response.json())


def test_brief_stop_example_returns_the_sandbox_stopping_then_stopped(
    server: LiveServer, api: httpx.Client
) -> None:
    sandbox = create_sandbox(
        api,
        name="daytona-brief",
        env={"NODE_ENV": "development"},
        labels={"project": "my-app", "environment": "dev"},
        autoStopInterval=60,
        autoArchiveInterval=10080,
        autoDeleteInterval=-1,
        cpu=1,
        memory=1,
        disk=3,
        networkAllowList="10.0.0.0/8,192.168.0.0/16",
    )
    wait_state(api, sandbox["id"], "running")
    response = curl_stop(server, sandbox["id"], sandbox["organizationId"])
    assert response.status_code == 200, response.text
    stopped = assert_sandbox(response.json())
    assert (stopped["state"], stopped["desiredState"]) == ("stopping", "stopped")
    assert stopped["id"] == sandbox["id"] and stopped["name"] == "daytona-brief"
    assert stopped["env"] == {"NODE_ENV": "development"}
    assert stopped["labels"] == {"project": "my-app", "environment": "dev"}
    assert (stopped["cpu"], stopped["gpu"], stopped["memory"], stopped["disk"]) == (1, 0, 1, 3)
    assert (stopped["autoStopInterval"], stopped["autoArchiveInterval"]) == (60, 10080)
    assert stopped["autoDeleteInterval"] == -1 and stopped["volumes"] == []
    assert stopped["networkAllowList"] == "10.0.0.0/8,192.168.0.0/16"
    assert stopped["public"] is False and stopped["networkBlockAll"] is False
    native = api.get(f"/v1/environments/{sandbox['id']}").json()
    assert stopped["snapshot"] == native["image"] and stopped["runnerId"] == native["runner_id"]
    assert native["memory_mb"] == 1024 and native["disk_gb"] == 3

    wait_state(api, sandbox["id"], "stopped")
    after = assert_sandbox(api.get(f"/sandbox/{sandbox['id']}").json())
    assert (after["state"], after["desiredState"]) == ("stopped", "stopped")
    delete(api, sandbox["id"])


def test_auto_delete_zero_deletes_the_sandbox_once_stopped(
    server: LiveServer, api: httpx.Client
) -> None:
    sandbox = create_sandbox(api, name="daytona-ephemeral", autoDeleteInterval=0)
    wait_state(api, sandbox["id"], "running")
    stopped = curl_stop(server, sandbox["id"], sandbox["organizationId"]).json()
    assert stopped["state"] == "stopping" and stopped["autoDeleteInterval"] == 0
    wait_state(api, sandbox["id"], "deleted")
    gone = api.get(f"/sandbox/{sandbox['id']}")
    assert_api_error(gone, 404, f"/sandbox/{sandbox['id']}")


def test_organization_header_must_name_the_keys_organization(
    server: LiveServer, api: httpx.Client
) -> None:
    env = running_env(api, name="daytona-org")
    path = f"/sandbox/{env['id']}/stop"
    message = assert_api_error(curl_stop(server, env["id"], "org_someone-else"), 403, path)
    assert message == "Invalid authentication context"
    assert api.get(f"/v1/environments/{env['id']}").json()["state"] == "running"
    # Without the header the key's own organization is meant.
    assert api.post(path).status_code == 200
    delete(api, env["id"])


def test_errors_of_ids_keys_and_states_are_daytona_errors(
    server: LiveServer, api: httpx.Client
) -> None:
    assert_api_error(
        api.post("/sandbox/no-such-sandbox/stop"), 404, "/sandbox/no-such-sandbox/stop"
    )
    with server.client(key="sbk_org_not-a-key") as bad:
        assert_api_error(bad.get("/sandbox"), 401, "/sandbox")
    with server.client(key="") as anonymous:
        assert_api_error(anonymous.get("/sandbox/x"), 401, "/sandbox/x")
    assert_api_error(api.post("/sandbox", json={"volumes": [{"volumeId": "v"}]}), 400, "/sandbox")
    assert_api_error(api.get("/sandbox", params={"verbose": 1}), 400, "/sandbox?verbose=1")

    env = running_env(api, name="daytona-state")
    assert api.post(f"/sandbox/{env['id']}/stop").status_code == 200
    wait_state(api, env["id"], "stopped")
    stop_again = api.post(f"/sandbox/{env['id']}/stop")
    message = assert_api_error(stop_again, 400, f"/sandbox/{env['id']}/stop")
    assert message == "Sandbox is not in a stoppable state"
    # The toolbox of a stopped sandbox: the daemon's error shape.
    execute = api.post(f"/toolbox/{env['id']}/process/execute", json={"command": "true"})
    assert "stopped" in assert_toolbox_error(execute, 409, "CONFLICT")
    missing = api.post("/toolbox/no-such-sandbox/process/execute", json={"command": "true"})
    assert_toolbox_error(missing, 404, "NOT_FOUND")
    delete(api, env["id"])


def test_stop_during_a_state_change_is_409(api: httpx.Client) -> None:
    env = running_env(api, name="daytona-busy", command="trap '' TERM; sleep infinity")
    # A graceful stop that SIGTERM cannot finish: it stays `stopping` for its grace.
    assert api.post(f"/v1/environments/{env['id']}/stop", json={"timeout": 60}).status_code == 200
    busy = api.post(f"/sandbox/{env['id']}/stop")
    message = assert_api_error(busy, 409, f"/sandbox/{env['id']}/stop")
    assert message == "Sandbox state change in progress"
    api.post(f"/v1/environments/{env['id']}/stop", json={"force": True})
    wait_state(api, env["id"], "stopped")
    delete(api, env["id"])


def test_toolbox_timeout_and_missing_file_use_the_daemon_shapes(api: httpx.Client) -> None:
    env = running_env(api, name="daytona-toolbox-errors")
    slow = api.post(
        f"/toolbox/{env['id']}/process/execute", json={"command": "sleep 30", "timeout": 1}
    )
    assert_toolbox_error(slow, 408, "REQUEST_TIMEOUT")
    info = api.get(f"/toolbox/{env['id']}/files/info", params={"path": "/nope"})
    assert_toolbox_error(info, 404, "FILE_NOT_FOUND")
    delete(api, env["id"])


@pytest.mark.parametrize("surface", ["native", "campos"])
def test_sandboxes_are_the_environments_of_every_surface(api: httpx.Client, surface: str) -> None:
    name = f"daytona-shared-{surface}"
    if surface == "native":
        env_id = running_env(api, name=name)["id"]
    else:
        form = {"appName": name, "runtimeEnvironment": "python", "startupCommand": "sleep 1000"}
        created = api.post("/v1/apps/create", files={k: (None, v) for k, v in form.items()})
        env_id = created.json()["_id"]
        wait_state(api, env_id, "running")
    by_name = assert_sandbox(api.get(f"/sandbox/{name}").json())
    assert by_name["id"] == env_id and by_name["state"] == "started"
    listed = api.get("/sandbox", params={"limit": 200}).json()
    assert env_id in [s["id"] for s in listed["items"]] and "nextCursor" in listed
    assert api.post(f"/v1/apps/{env_id}/stop").status_code == 200
    for _ in range(600):
        if api.get(f"/sandbox/{env_id}").json()["state"] == "stopped":
            break
        time.sleep(0.1)
    assert api.get(f"/sandbox/{name}").json()["state"] == "stopped"
    delete(api, env_id)
