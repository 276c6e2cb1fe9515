"""Agent runs as resources: cancellation and timeouts kill the agent, a run keeps the
environment active, refusals (424 when the environment cannot run the agent, 404,
400), and the agents and models an organization can use."""

import time
from typing import Any

import docker
import httpx
import pytest

from tests.support.agents import (
    AGENT_IMAGE,
    SecretWatch,
    new_secret,
    put_claude_provider,
    put_provider,
    require_agent_image,
    start_model_server,
)
from tests.support.engine import sh
from tests.support.factories import assert_envelope, delete, running_env, stop, wait_state
from tests.support.inside import sse_events
from tests.support.server import ADMIN_KEY, LiveServer

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]


def _slow_claude(api: httpx.Client, env_id: str, port: int, provider: str) -> str:
    """A provider whose model takes 60 s to answer anything."""
    secret = new_secret("sk-ant")
    put_claude_provider(api, provider, port=port, secret=secret)
    start_model_server(env_id, port=port, delay=60)
    return secret


def _agent_processes(client: docker.DockerClient, env_id: str) -> str:
    return sh(client, env_id, "ps -eo args | grep -E '^claude( |$)' || true").strip()


def test_cancel_kills_the_agent_and_the_run_holds_the_environment_active(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    require_agent_image(docker_client)
    # Auto-stop after 6 s idle: only the running agent keeps it up.
    env = running_env(api, image=AGENT_IMAGE, auto_stop_interval=0.1)
    env_id = env["id"]
    secret = _slow_claude(api, env_id, 18821, "claude-slow")
    watch = SecretWatch(secret)
    url = f"/v1/environments/{env_id}/agent/execute"
    body = {
        "prompt": "take your time",
        "agent": "claude",
        "provider": "claude-slow",
        "stream": True,
    }
    with api.stream("POST", url, json=body, timeout=120) as response:
        assert response.status_code == 200
        run_id = response.headers["x-agent-run-id"]
        events = sse_events(response)
        assert next(events)[0] == "run.started"
        assert next(events)[0] == "status"  # the CLI is up and waits for the model
        time.sleep(9)  # longer than the idle limit
        assert api.get(f"/v1/environments/{env_id}").json()["state"] == "running"
        assert _agent_processes(docker_client, env_id)
        cancelled = watch.response(
            api.post(f"/v1/environments/{env_id}/agent/runs/{run_id}/cancel")
        )
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        rest = [(kind, data["data"]) for kind, _, data in events]
    assert rest[-1][0] == "result" and rest[-1][1]["status"] == "cancelled"
    assert ("error", {"type": "cancelled", "message": "cancelled"}) in rest
    assert _agent_processes(docker_client, env_id) == ""
    again = api.delete(f"/v1/environments/{env_id}/agent/runs/{run_id}")
    assert "already ended" in assert_envelope(again, 409, "conflict_error")
    kept = watch.response(api.get(f"/v1/environments/{env_id}/agent/runs/{run_id}")).json()
    assert kept["status"] == "cancelled" and kept["events"][-1]["type"] == "result"
    # Idle again, the environment now auto-stops.
    wait_state(api, env_id, "stopped", timeout=60)
    api.delete("/v1/model-providers/claude-slow")
    delete(api, env_id)


def test_a_run_that_outlasts_its_timeout_is_killed_and_recorded_as_timed_out(
    api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    require_agent_image(docker_client)
    env = running_env(api, image=AGENT_IMAGE)
    _slow_claude(api, env["id"], 18822, "claude-timeout")
    body = {"prompt": "too slow", "agent": "claude", "provider": "claude-timeout", "timeout": 3}
    answer = api.post(f"/v1/environments/{env['id']}/agent/execute", json=body, timeout=120)
    assert answer.status_code == 200
    run = answer.json()
    assert run["status"] == "timed_out" and "timed out after 3s" in run["error"]
    assert run["events"][-1]["data"]["status"] == "timed_out"
    assert _agent_processes(docker_client, env["id"]) == ""
    api.delete("/v1/model-providers/claude-timeout")
    delete(api, env["id"])


def test_424_when_the_environment_cannot_run_the_agent(
    server: LiveServer, api: httpx.Client, docker_client: docker.DockerClient
) -> None:
    require_agent_image(docker_client)
    put_claude_provider(api, "claude-424")
    body = {"prompt": "hi", "agent": "claude", "provider": "claude-424"}
    # The default image has no agent CLI.
    plain = running_env(api)
    missing = api.post(f"/v1/environments/{plain['id']}/agent/execute", json=body)
    assert "'claude' CLI is not installed" in assert_envelope(
        missing, 424, "failed_dependency_error"
    )
    # A stopped environment cannot run anything.
    stop(api, plain["id"])
    wait_state(api, plain["id"], "stopped")
    stopped = api.post(f"/v1/environments/{plain['id']}/agent/execute", json=body)
    assert "must be running" in assert_envelope(stopped, 424, "failed_dependency_error")
    # An organization without a usable model provider has no credentials to give.
    with server.client(key=ADMIN_KEY) as admin:
        org = admin.post("/v1/orgs", json={"name": f"agents-{plain['id'][-8:]}"}).json()
    with server.client(key=org["api_key"]["key"]) as other:
        env = running_env(other, image=AGENT_IMAGE)
        bare = other.post(
            f"/v1/environments/{env['id']}/agent/execute", json={"prompt": "hi", "agent": "codex"}
        )
        assert "no credentials" in assert_envelope(bare, 424, "failed_dependency_error")
        named = other.post(
            f"/v1/environments/{env['id']}/agent/execute",
            json={"prompt": "hi", "provider": "nope"},
        )
        assert_envelope(named, 424, "failed_dependency_error")
        models = other.get("/v1/agents/models").json()["data"]
        assert [m["available"] for m in models] == [False, False, False]
        delete(other, env["id"])
    api.delete("/v1/model-providers/claude-424")
    delete(api, plain["id"])


def test_404_and_400_refusals(api: httpx.Client) -> None:
    unknown = api.post("/v1/environments/no-such-env/agent/execute", json={"prompt": "hi"})
    assert_envelope(unknown, 404, "not_found_error")
    env = running_env(api)
    url = f"/v1/environments/{env['id']}/agent/execute"
    for bad in (
        {"prompt": "hi", "agent": "cursor"},
        {"prompt": ""},
        {"prompt": "hi", "project": "../etc"},
        {"prompt": "hi", "git_url": "--upload-pack=evil"},
        {"prompt": "hi", "timeout": 0},
    ):
        assert_envelope(api.post(url, json=bad), 400, "invalid_request_error")
    missing_run = api.get(f"/v1/environments/{env['id']}/agent/runs/run_{'0' * 32}")
    assert_envelope(missing_run, 404, "not_found_error")
    delete(api, env["id"])


def test_models_lists_each_agent_with_the_providers_it_can_use(api: httpx.Client) -> None:
    for name, kind, models in (
        ("m-anthropic", "anthropic", ["claude-opus-4-1", "claude-sonnet-4-5"]),
        ("m-local", "openai-compatible", ["qwen3-coder"]),
    ):
        put_provider(
            api,
            name,
            kind=kind,
            base_url="http://127.0.0.1:9/v1",
            secret=new_secret(),
            models=models,
        )
    data: dict[str, Any] = {m["agent"]: m for m in api.get("/v1/agents/models").json()["data"]}
    assert set(data) == {"claude", "codex", "builtin"}
    assert data["claude"]["available"] and "m-anthropic" in data["claude"]["providers"]
    assert {"claude-opus-4-1", "claude-sonnet-4-5"} <= set(data["claude"]["models"])
    assert "qwen3-coder" in data["builtin"]["models"] and "m-local" in data["codex"]["providers"]
    assert "m-local" not in data["claude"]["providers"]
    for name in ("m-anthropic", "m-local"):
        assert api.delete(f"/v1/model-providers/{name}").status_code == 204
