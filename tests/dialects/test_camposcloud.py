"""The CamposCloud dialect against a live server: the brief's stop example replayed
(its curl, host and token replaced) on an app with live metrics, every field of the
brief's app object, the rest of the apps API (create form, list, get, start,
restart, logs, delete) and its errors in CamposCloud's shape."""

import time
from typing import Any

import httpx
import pytest

from tests.support.factories import assert_message, delete, running_env, wait_state
from tests.support.server import LiveServer

#: Exercises the engine and the HTTP shapes; every database path it touches runs on both
#: databases elsewhere (tests/api, tests/services).
pytestmark = pytest.mark.usefixtures("sqlite_only")

API = "/v1/apps"
#: The brief's fields in the brief's order, with their documented JSON types.
APP_FIELDS: dict[str, tuple[type, ...]] = {
    "_id": (str,),
    "currentResourceMetrics": (dict, type(None)),
    "containerId": (str,),
    "teamId": (str, type(None)),
    "restartRequired": (bool,),
    "name": (str,),
    "userId": (str,),
    "allocatedMemoryMB": (int,),
    "allocatedVCpu": (int,),
    "workerNodeId": (dict,),
    "containerImage": (str,),
    "exposedViaWeb": (bool,),
    "startupCommand": (str,),
    "installDependenciesCmd": (str,),
    "runtimeEnvironment": (str,),
    "autoRestartEnabled": (bool,),
    "status": (str,),
    "createdAt": (str,),
    "updatedAt": (str,),
}
METRIC_FIELDS = {
    "timestamp": str,
    "online": bool,
    "uptime": int,
    "cpuUsagePercent": (int, float),
    "memoryUsageBytes": int,
    "memoryLimitBytes": int,
    "networkRxBytes": int,
    "networkTxBytes": int,
}
PRINTER = "echo app says hello; exec sleep infinity"


def assert_error(response: httpx.Response, status: int) -> str:
    """CamposCloud's error body: `{"message": "<text>"}`."""
    return assert_message(response, status, "message")


def assert_app(app: dict[str, Any]) -> dict[str, Any]:
    assert list(app) == list(APP_FIELDS), list(app)
    for field, types in APP_FIELDS.items():
        assert isinstance(app[field], types), (field, app[field])
    assert set(app["workerNodeId"]) == {"_id", "nodeName"}
    assert app["createdAt"].endswith("Z") and app["updatedAt"].endswith("Z")
    return app


def create_app(api: httpx.Client, **fields: str) -> dict[str, Any]:
    """The documented multipart form (without the zip `file`)."""
    form = {
        "mainFile": "index.py",
        "exposedViaWeb": "false",
        "memoryMB": "256",
        "autoRestartEnabled": "true",
        "runtimeEnvironment": "python",
        **fields,
    }
    response = api.post(f"{API}/create", files={k: (None, v) for k, v in form.items()})
    assert response.status_code == 200, response.text
    return assert_app(response.json())


def app_with_metrics(api: httpx.Client, app_id: str) -> dict[str, Any]:
    for _ in range(300):
        app = api.get(f"{API}/{app_id}").json()
        if app["currentResourceMetrics"] and app["currentResourceMetrics"]["online"]:
            return assert_app(app)
        time.sleep(0.1)
    raise AssertionError("no live metrics sample")


def test_brief_stop_example_returns_the_full_app_object(
    server: LiveServer, api: httpx.Client
) -> None:
    app = create_app(
        api,
        appName="campos-brief",
        startupCommand=PRINTER,
        installDependenciesCmd="echo installing",
        allocatedVCpu="1",
    )
    wait_state(api, app["_id"], "running")
    app_with_metrics(api, app["_id"])
    # curl --request POST --url {host}/v1/apps/{appId}/stop --header 'Authorization: Bearer <token>'
    response = httpx.post(
        f"{server.url}{API}/{app['_id']}/stop",
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    stopped = assert_app(response.json())
    metrics = stopped["currentResourceMetrics"]
    assert list(metrics) == list(METRIC_FIELDS)
    for field, types in METRIC_FIELDS.items():
        assert isinstance(metrics[field], types), (field, metrics[field])
    assert metrics["memoryLimitBytes"] == 256 * 1024 * 1024 and metrics["timestamp"].endswith("Z")

    native = api.get(f"/v1/environments/{app['_id']}").json()
    assert stopped["_id"] == native["id"] and stopped["name"] == "campos-brief" == native["name"]
    assert stopped["status"] == "stopping"
    assert stopped["containerId"] == native["container_id"]
    assert stopped["teamId"] == stopped["userId"] == native["org_id"]
    assert stopped["workerNodeId"]["_id"] == native["runner_id"]
    assert stopped["allocatedMemoryMB"] == native["memory_mb"] == 256
    assert stopped["allocatedVCpu"] == 1 and stopped["restartRequired"] is False
    assert stopped["containerImage"] == native["image"]
    assert (stopped["startupCommand"], stopped["installDependenciesCmd"]) == (
        PRINTER,
        "echo installing",
    )
    assert stopped["runtimeEnvironment"] == "python"
    assert stopped["exposedViaWeb"] is False and stopped["autoRestartEnabled"] is True
    assert native["command"] == PRINTER and native["install_command"] == "echo installing"
    assert native["auto_restart"] is True and native["public"] is False
    assert native["auto_stop_interval"] == 0  # an app is a service: it never idles out

    wait_state(api, app["_id"], "stopped")
    assert api.get(f"{API}/{app['_id']}").json()["status"] == "stopped"
    # Idempotent: stopping a stopped app returns it.
    again = api.post(f"{API}/{app['_id']}/stop")
    assert again.status_code == 200 and again.json()["status"] == "stopped"
    delete(api, app["_id"])


def test_main_file_runs_with_its_runtime_and_logs_show_the_output(api: httpx.Client) -> None:
    app = create_app(
        api,
        appName="Campos Logs App",
        installDependenciesCmd="printf 'print(\"from main\", flush=True)\\n' > index.py",
        exposedViaWeb="true",
        autoRestartEnabled="false",
    )
    assert app["name"] == "Campos Logs App" and app["startupCommand"] == "python3 -u index.py"
    assert app["exposedViaWeb"] is True and app["autoRestartEnabled"] is False
    # The script prints and exits 0: without auto-restart the app ends up stopped.
    wait_state(api, app["_id"], "stopped")
    logs = api.get(f"{API}/{app['_id']}/logs")
    assert logs.status_code == 200, logs.text
    assert logs.json() == {"logs": "from main\n"}
    delete(api, app["_id"])


def test_list_get_start_restart_and_delete_apps(api: httpx.Client) -> None:
    body = {
        "appName": "campos-crud",
        "runtimeEnvironment": "python",
        "startupCommand": PRINTER,
        "allocatedMemoryMB": 128,
        "allocatedVCpu": 0.5,
    }
    created = api.post(f"{API}/create", json=body)
    assert created.status_code == 200, created.text
    app = created.json()
    assert (app["allocatedMemoryMB"], app["allocatedVCpu"]) == (128, 1)  # whole vCPUs
    native = api.get(f"/v1/environments/{app['_id']}").json()
    assert (native["memory_mb"], native["cpu"]) == (128, 0.5)
    wait_state(api, app["_id"], "running")
    listed = api.get(API, params={"limit": 100}).json()["applications"]
    assert app["_id"] in [a["_id"] for a in listed]
    assert_app(api.get(f"{API}/campos-crud").json())

    restarted = api.post(f"{API}/{app['_id']}/restart")
    assert restarted.status_code == 200 and restarted.json()["status"] == "stopping"
    wait_state(api, app["_id"], "running")
    logs = api.get(f"{API}/{app['_id']}/logs").json()["logs"]
    assert logs.count("app says hello") == 2  # one line per run

    api.post(f"{API}/{app['_id']}/stop")
    wait_state(api, app["_id"], "stopped")
    started = api.post(f"{API}/{app['_id']}/start")
    assert started.status_code == 200 and started.json()["status"] == "starting"
    wait_state(api, app["_id"], "running")

    removed = api.delete(f"{API}/{app['_id']}/delete")
    assert removed.status_code == 200 and removed.json()["status"] == "deleting"
    wait_state(api, app["_id"], "deleted")
    assert_error(api.get(f"{API}/{app['_id']}"), 404)


def test_errors_are_campos_errors(server: LiveServer, api: httpx.Client) -> None:
    assert_error(api.post(f"{API}/no-such-app/stop"), 404)
    assert_error(api.get(f"{API}/env_{'0' * 32}/logs"), 404)
    with server.client(key="sbk_org_not-a-key") as bad:
        assert_error(bad.post(f"{API}/no-such-app/stop"), 401)
    assert_error(api.post(f"{API}/create", files={"appName": (None, "x")}), 400)
    assert_error(api.post(f"{API}/create", json=["not", "an", "object"]), 400)
    zipped: dict[str, Any] = {"appName": (None, "x"), "runtimeEnvironment": (None, "python")}
    zipped["file"] = ("app.zip", b"PK\x05\x06" + bytes(18))
    assert "zip" in assert_error(api.post(f"{API}/create", files=zipped), 400)

    # Wrong state: an archived app has no container, so no logs (409).
    env = running_env(api, name="campos-archived", command=PRINTER)
    assert api.post(f"/v1/environments/{env['id']}/archive").status_code == 200
    wait_state(api, env["id"], "archived", timeout=120)
    assert "archived" in assert_error(api.get(f"{API}/{env['id']}/logs"), 409)
    delete(api, env["id"])
