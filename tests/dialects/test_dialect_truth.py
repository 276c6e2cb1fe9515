"""Every seed dialect says only what is true: each brief's example request is
replayed (its curl, host and key replaced), and the state or outcome its answer
claims is compared with what a GET answers right after, through the dialect and
through the native API. An answer may report a state on its way ("stopping"), never
one not reached yet ("stopped" while stopping); and a client that starts an
environment right after a stop's answer is served."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import httpx
import pytest

from tests.support.agents import put_provider, require_agent_image
from tests.support.factories import delete, running_env, wait_state
from tests.support.polling import eventually
from tests.support.server import LiveServer
from tests.support.work import item_in_state, self_hosted_env

#: A workload that ignores SIGTERM: its stop lasts the whole grace period, then a kill.
IGNORES_TERM = "trap '' TERM; while true; do sleep 0.1; done"
STOPPED_BODY = {"message": "Environment stopped successfully", "status": "stopped"}
CLOUDCLI = "/api/v1/environments"


def native_state(api: httpx.Client, env_id: str) -> str:
    response = api.get(f"/v1/environments/{env_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["state"])


def bearer(server: LiveServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.key}"}


# ---- CloudCLI (brief 000) ---------------------------------------------------------------


def cloudcli_stop(server: LiveServer, env_id: str) -> httpx.Response:
    """`curl --location --request POST '{host}/api/v1/environments/{id}/stop'
    --header 'X-API-KEY: <api-key>'`."""
    return httpx.post(
        f"{server.url}{CLOUDCLI}/{env_id}/stop",
        headers={"X-API-KEY": server.key},
        follow_redirects=True,
        timeout=120,
    )


def cloudcli_status(api: httpx.Client, env_id: str) -> str:
    response = api.get(f"{CLOUDCLI}/{env_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def test_cloudcli_stop_answers_stopped_once_it_is_and_a_start_right_after_is_served(
    server: LiveServer, api: httpx.Client
) -> None:
    env = running_env(api, name="truth-cloudcli", command=IGNORES_TERM)
    stopped = cloudcli_stop(server, env["id"])
    assert stopped.status_code == 200, stopped.text
    assert stopped.json() == STOPPED_BODY
    assert cloudcli_status(api, env["id"]) == "stopped"
    assert native_state(api, env["id"]) == "stopped"

    # The client case: start it right after the stop's answer.
    started = api.post(f"{CLOUDCLI}/{env['id']}/start")
    assert started.status_code == 200, started.text
    assert started.json() == {"message": "Environment starting", "status": "starting"}
    assert cloudcli_status(api, env["id"]) in ("starting", "running")
    wait_state(api, env["id"], "running")
    assert cloudcli_status(api, env["id"]) == "running"
    delete(api, env["id"])


def test_cloudcli_create_and_delete_answer_what_a_get_then_shows(
    server: LiveServer, api: httpx.Client
) -> None:
    body = {"name": "Truth", "subdomain": "truth-cloudcli-delete"}
    created = httpx.post(
        f"{server.url}{CLOUDCLI}", headers={"X-API-KEY": server.key}, json=body, timeout=60
    )
    assert created.status_code == 201, created.text
    env = created.json()
    assert env["status"] == "starting"
    assert cloudcli_status(api, env["id"]) in ("starting", "running")
    wait_state(api, env["id"], "running")
    assert cloudcli_stop(server, env["id"]).json() == STOPPED_BODY
    removed = api.delete(f"{CLOUDCLI}/{env['id']}")
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"message": "Environment deleted successfully"}
    assert api.get(f"{CLOUDCLI}/{env['id']}").status_code == 404
    assert api.get(f"/v1/environments/{env['id']}").status_code == 404


# ---- Qoder (brief 001) ------------------------------------------------------------------


def qoder_stop(server: LiveServer, env_id: str, work_id: str, data: str) -> dict[str, Any]:
    """`curl -X POST "{host}/api/v1/cloud/environments/{env}/work/{work}/stop"
    -H "Authorization: Bearer $QODER_PAT" -H "Content-Type: application/json" -d DATA`."""
    response = httpx.post(
        f"{server.url}/api/v1/cloud/environments/{env_id}/work/{work_id}/stop",
        headers={**bearer(server), "Content-Type": "application/json"},
        content=data.encode(),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def qoder_state(api: httpx.Client, env_id: str, work_id: str) -> str:
    response = api.get(f"/api/v1/cloud/environments/{env_id}/work/{work_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["state"])


def test_qoder_stop_examples_answer_the_state_a_get_then_shows(
    server: LiveServer, api: httpx.Client
) -> None:
    env = self_hosted_env(api, name="truth-qoder")
    active = item_in_state(api, env["id"], "active")
    graceful = qoder_stop(server, env["id"], active["id"], "{}")
    assert graceful["state"] == "stopping" and graceful["stopped_at"] is None
    assert qoder_state(api, env["id"], active["id"]) == "stopping"
    forced = qoder_stop(server, env["id"], active["id"], '{"force": true}')
    assert forced["state"] == "stopped" and forced["stopped_at"] is not None
    assert qoder_state(api, env["id"], active["id"]) == "stopped"

    queued = item_in_state(api, env["id"], "queued")
    assert qoder_stop(server, env["id"], queued["id"], "{}")["state"] == "stopped"
    assert qoder_state(api, env["id"], queued["id"]) == "stopped"
    delete(api, env["id"])


# ---- CamposCloud (brief 002) ------------------------------------------------------------


def campos(server: LiveServer, method: str, path: str) -> dict[str, Any]:
    """`curl --request POST --url {host}/v1/apps/{appId}/stop --header 'Authorization:
    Bearer <token>'` (and the same for the app's other calls)."""
    response = httpx.request(
        method, f"{server.url}/v1/apps{path}", headers=bearer(server), timeout=60
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_camposcloud_answers_the_status_a_get_then_shows(
    server: LiveServer, api: httpx.Client
) -> None:
    form = {
        "appName": "truth-campos",
        "runtimeEnvironment": "python",
        "startupCommand": "sleep 600",
    }
    created = api.post("/v1/apps/create", files={k: (None, v) for k, v in form.items()})
    assert created.status_code == 200, created.text
    app_id = created.json()["_id"]
    assert created.json()["status"] in ("starting", "active")
    wait_state(api, app_id, "running")

    stopped = campos(server, "POST", f"/{app_id}/stop")
    assert stopped["status"] == "stopping"  # never "stopped" (nor the example's "active")
    assert campos(server, "GET", f"/{app_id}")["status"] in ("stopping", "stopped")
    # Started right after: the answer says where it is (the stop finishes first).
    started = campos(server, "POST", f"/{app_id}/start")
    assert started["status"] in ("stopping", "stopped", "starting", "active")
    wait_state(api, app_id, "running")
    assert campos(server, "GET", f"/{app_id}")["status"] == "active"

    restarted = campos(server, "POST", f"/{app_id}/restart")
    assert restarted["status"] in ("stopping", "starting")
    wait_state(api, app_id, "running")
    removed = campos(server, "DELETE", f"/{app_id}")
    assert removed["status"] == "deleting"
    assert native_state(api, app_id) in ("deleting", "deleted")
    wait_state(api, app_id, "deleted")


# ---- Chowder (brief 003) ----------------------------------------------------------------


@pytest.fixture
def sqlite_only(database_url: str | None) -> None:
    """Before the server starts, for the OpenClaw gateway's slow stops and starts,
    which no database changes (the lifecycle underneath runs on both elsewhere)."""
    if database_url is not None:
        pytest.skip("the OpenClaw gateway's stop and start, which no database changes: SQLite only")


@pytest.mark.timeout(900)
def test_chowder_stop_answers_stopped_once_it_is_and_a_start_right_after_is_served(
    sqlite_only: None, server: LiveServer, api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    require_agent_image(docker_client)
    put_provider(
        api,
        "truth-llm",
        kind="openai-compatible",
        base_url="http://127.0.0.1:9/v1",
        secret="sk-truth-not-used",
        models=["scripted-model"],
    )
    created = api.post("/v1/instances", json={"name": "truth", "model_provider": "truth-llm"})
    assert created.status_code == 201, created.text
    iid = created.json()["id"]
    assert created.json()["status"] == "provisioning"
    wait_state(api, iid, "running", timeout=300)

    # curl -X POST {host}/v1/instances/{id}/stop -H "Authorization: Bearer chd_org_…"
    stopped = httpx.post(
        f"{server.url}/v1/instances/{iid}/stop", headers=bearer(server), timeout=120
    )
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "stopped"
    assert api.get(f"/v1/instances/{iid}").json()["status"] == "stopped"
    assert native_state(api, iid) == "stopped"

    started = api.post(f"/v1/instances/{iid}/start", timeout=400)
    assert started.status_code == 200, started.text
    shown = api.get(f"/v1/instances/{iid}").json()["status"]
    assert started.json()["status"] in ("provisioning", "running")
    assert shown == started.json()["status"] or (started.json()["status"], shown) == (
        "provisioning",
        "running",
    )
    assert native_state(api, iid) == "running"
    assert api.delete(f"/v1/instances/{iid}").status_code == 204
    assert api.get(f"/v1/instances/{iid}").status_code == 404
    wait_state(api, iid, "deleted", timeout=120)
    api.delete("/v1/model-providers/truth-llm")


@pytest.mark.timeout(900)
def test_chowder_stop_longer_than_a_minute_shows_stopping_until_it_is_stopped(
    make_server: Callable[..., LiveServer],
    database_url: str | None,
    docker_client: docker.DockerClient,
) -> None:
    """A grace period past the minute a stop used to be waited for: while the gateway
    shuts down the instance is `stopping` (never `stopped` early), and the stop's
    answer comes once it is stopped."""
    if database_url is not None:
        pytest.skip("a minute and more of waiting that no database changes: run on SQLite only")
    require_agent_image(docker_client)
    grace = {"SANDBAY_DEFAULT_STOP_TIMEOUT": "90"}
    live = make_server(postgres=database_url is not None, extra_env=grace).start()
    with live.client() as api, ThreadPoolExecutor(1) as pool:
        put_provider(
            api,
            "truth-llm",
            kind="openai-compatible",
            base_url="http://127.0.0.1:9/v1",
            secret="sk-truth-not-used",
            models=["scripted-model"],
        )
        created = api.post("/v1/instances", json={"name": "slow", "model_provider": "truth-llm"})
        assert created.status_code == 201, created.text
        iid = created.json()["id"]
        wait_state(api, iid, "running", timeout=300)
        # Its stop lasts past a minute: a pre-stop hook within the 90 s grace period.
        hooked = api.patch(f"/v1/environments/{iid}", json={"pre_stop": "sleep 70"})
        assert hooked.status_code == 200, hooked.text

        answer = pool.submit(
            httpx.post, f"{live.url}/v1/instances/{iid}/stop", headers=bearer(live), timeout=300
        )
        eventually(lambda: native_state(api, iid) == "stopping", what="the stop to begin")
        assert api.get(f"/v1/instances/{iid}").json()["status"] == "stopping"
        assert api.get(f"/v1/instances/{iid}/status").json()["status"] == "stopping"

        stopped = answer.result()
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "stopped"
        assert native_state(api, iid) == "stopped"
        assert api.get(f"/v1/instances/{iid}").json()["status"] == "stopped"
        assert api.delete(f"/v1/instances/{iid}").status_code == 204
        wait_state(api, iid, "deleted", timeout=120)


# ---- Daytona (brief 004) ----------------------------------------------------------------


def test_daytona_stop_answers_stopping_and_a_start_right_after_is_served(
    server: LiveServer, api: httpx.Client
) -> None:
    created = api.post("/sandbox", json={"name": "truth-daytona"})
    assert created.status_code == 200, created.text
    sandbox = created.json()
    assert sandbox["state"] in ("creating", "starting")
    assert api.get(f"/sandbox/{sandbox['id']}").json()["state"] in (
        "creating",
        "starting",
        "started",
    )
    wait_state(api, sandbox["id"], "running")
    # curl -X POST {host}/sandbox/{id}/stop -H "Authorization: Bearer KEY"
    #   -H "X-Daytona-Organization-ID: ORG"
    stopped = httpx.post(
        f"{server.url}/sandbox/{sandbox['id']}/stop",
        headers={**bearer(server), "X-Daytona-Organization-ID": sandbox["organizationId"]},
        timeout=60,
    )
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["state"], stopped.json()["desiredState"]) == ("stopping", "stopped")
    assert api.get(f"/sandbox/{sandbox['id']}").json()["state"] in ("stopping", "stopped")

    started = api.post(f"/sandbox/{sandbox['id']}/start")
    assert started.status_code == 200, started.text
    assert started.json()["desiredState"] == "started"
    assert started.json()["state"] in ("stopping", "stopped", "starting", "started")
    wait_state(api, sandbox["id"], "running")
    assert api.get(f"/sandbox/{sandbox['id']}").json()["state"] == "started"

    removed = api.delete(f"/sandbox/{sandbox['id']}")
    assert removed.status_code == 200, removed.text
    assert (removed.json()["state"], removed.json()["desiredState"]) == ("destroying", "destroyed")
    after = api.get(f"/sandbox/{sandbox['id']}")
    assert after.status_code == 404 or after.json()["state"] == "destroying", after.text
    wait_state(api, sandbox["id"], "deleted")
