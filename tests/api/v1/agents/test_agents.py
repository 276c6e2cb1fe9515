"""Agents inside environments on real Docker: the real Claude Code and Codex CLIs (and
the built-in agent) run by sandbay in the agent image, their base URL pointed at a
scripted model server speaking the real wire protocol (inside the environment for
the CLIs, on the host's loopback for the built-in agent, which calls from sandbay
itself). Each one writes a file in /workspace through a tool call; the stream
carries the tool use and the result; no answer, event or log line carries the key."""

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.agents import (
    AGENT_IMAGE,
    MODEL_SERVER,
    SecretWatch,
    model_requests,
    new_secret,
    put_provider,
    require_agent_image,
    start_model_server,
)
from tests.support.engine import read_file
from tests.support.factories import delete, events, running_env
from tests.support.inside import sse_events
from tests.support.server import LiveServer, free_port

pytestmark = pytest.mark.docker


@pytest.fixture
def agent_env(api: httpx.Client, docker_client: docker.DockerClient) -> Iterator[dict[str, Any]]:
    require_agent_image(docker_client)
    env = running_env(api, image=AGENT_IMAGE)
    yield env
    delete(api, env["id"])


def _stream(
    api: httpx.Client, env_id: str, body: dict[str, Any], watch: SecretWatch
) -> list[tuple[str, dict[str, Any]]]:
    url = f"/v1/environments/{env_id}/agent/execute"
    with api.stream("POST", url, json={**body, "stream": True}, timeout=300) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-agent-run-id"].startswith("run_")
        received = [(kind, data) for kind, _, data in sse_events(response)]
    for kind, data in received:
        watch.seen(str(data))
        assert data["type"] == kind
    return [(kind, data["data"]) for kind, data in received]


def _assert_wrote_file(
    stream: list[tuple[str, dict[str, Any]]], tool: str, final: str
) -> dict[str, Any]:
    kinds = [kind for kind, _ in stream]
    assert kinds[0] == "run.started" and kinds[-1] == "result"
    uses = [data for kind, data in stream if kind == "tool_use"]
    results = [data for kind, data in stream if kind == "tool_result"]
    assert [u["name"] for u in uses] == [tool]
    assert [r["tool_use_id"] for r in results] == [uses[0]["id"]]
    assert results[0]["is_error"] is False
    assert kinds.index("tool_use") < kinds.index("tool_result") < kinds.index("result")
    assert ("message", {"role": "assistant", "text": final}) in stream
    result = stream[-1][1]
    assert result["status"] == "completed" and result["text"] == final
    assert result["exit_code"] == 0
    return dict(stream[0][1])


def _assert_transcript(
    api: httpx.Client, env_id: str, run_id: str, stream: list[Any], watch: SecretWatch
) -> None:
    kept = watch.response(api.get(f"/v1/environments/{env_id}/agent/runs/{run_id}"))
    assert kept.status_code == 200
    run = kept.json()
    assert run["status"] == "completed" and run["ended_at"] is not None
    assert [(e["type"], e["data"]) for e in run["events"]] == stream
    listed = watch.response(api.get(f"/v1/environments/{env_id}/agent/runs")).json()
    assert run_id in [r["id"] for r in listed]


def _called_messages_with_the_key(seen: list[dict[str, Any]], secret: str) -> None:
    """The real Claude Code CLI called the Messages API with the stored key."""
    assert [r["path"].split("?")[0] for r in seen if r["decision"] != "count_tokens"][:2] == [
        "/v1/messages",
        "/v1/messages",
    ]
    assert {r["x_api_key"] for r in seen} == {secret}


def _called_responses_with_the_key(seen: list[dict[str, Any]], secret: str) -> None:
    """The real Codex CLI called the Responses API with the stored key."""
    assert {r["path"] for r in seen} == {"/v1/responses"}
    assert {r["authorization"] for r in seen} == {f"Bearer {secret}"}


@dataclass(frozen=True)
class Cli:
    """An agent CLI run in the agent image, asked to create hello.txt in `project`;
    its provider is the scripted model server on `port` in the environment, which
    speaks the CLI's wire protocol, has the file written through `tool`, and logs
    what it was sent, which `called_the_model` checks."""

    agent: str
    project: str
    port: int
    kind: str
    base_url: str
    model: str
    tool: str
    called_the_model: Callable[[list[dict[str, Any]], str], None]


@pytest.mark.parametrize(
    "cli",
    [
        pytest.param(
            Cli(
                agent="claude",
                project="app",
                port=18811,
                kind="anthropic",
                base_url="http://127.0.0.1:18811",
                model="claude-sonnet-4-5",
                tool="Write",
                called_the_model=_called_messages_with_the_key,
            ),
            id="claude-code-anthropic-messages",
        ),
        pytest.param(
            Cli(
                agent="codex",
                project="svc",
                port=18812,
                kind="openai",
                base_url="http://127.0.0.1:18812/v1",
                model="gpt-test",
                tool="command_execution",
                called_the_model=_called_responses_with_the_key,
            ),
            id="codex-openai-responses",
        ),
    ],
)
def test_a_cli_agent_writes_a_file_through_its_models_protocol(
    api: httpx.Client, docker_client: docker.DockerClient, agent_env: dict[str, Any], cli: Cli
) -> None:
    env_id, secret, provider = agent_env["id"], new_secret(f"sk-{cli.agent}"), f"{cli.agent}-test"
    watch = SecretWatch(secret)
    stored = put_provider(
        api, provider, kind=cli.kind, base_url=cli.base_url, secret=secret, models=[cli.model]
    )
    watch.response(httpx.Response(200, json=stored))
    path, content = f"/workspace/{cli.project}/hello.txt", f"hi from {cli.agent}"
    final = f"{cli.agent.capitalize()} wrote hello.txt."
    start_model_server(env_id, port=cli.port, path=path, content=content, final=final)
    body = {"prompt": "Create hello.txt", "agent": cli.agent, "project": cli.project}
    stream = _stream(api, env_id, {**body, "provider": provider}, watch)
    started = _assert_wrote_file(stream, cli.tool, final)
    assert started["cwd"] == f"/workspace/{cli.project}" and started["model"] == cli.model
    assert read_file(docker_client, env_id, path) == content.encode()
    _assert_transcript(api, env_id, started["run_id"], stream, watch)
    cli.called_the_model(model_requests(env_id), secret)
    api.delete(f"/v1/model-providers/{provider}")


def test_builtin_agent_writes_a_file_through_chat_completions(
    api: httpx.Client, tmp_path: Path, agent_env: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    env_id, secret, port = agent_env["id"], new_secret("sk-local"), free_port()
    watch = SecretWatch(secret)
    log = tmp_path / "requests.jsonl"
    model = subprocess.Popen(
        [
            sys.executable,
            str(MODEL_SERVER),
            "--port",
            str(port),
            "--path",
            "notes/out.txt",
            "--content",
            "hi from builtin",
            "--final",
            "Built-in wrote out.txt.",
            "--log",
            str(log),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        put_provider(
            api,
            "builtin-test",
            kind="openai-compatible",
            base_url=f"http://127.0.0.1:{port}/v1",
            secret=secret,
            models=["local-model"],
        )
        _wait_listening(port)
        stream = _stream(
            api,
            env_id,
            {
                "prompt": "Write notes/out.txt",
                "agent": "builtin",
                "project": "b",
                "provider": "builtin-test",
            },
            watch,
        )
    finally:
        model.terminate()
        model.wait()
    started = _assert_wrote_file(stream, "write_file", "Built-in wrote out.txt.")
    assert read_file(docker_client, env_id, "/workspace/b/notes/out.txt") == b"hi from builtin"
    _assert_transcript(api, env_id, started["run_id"], stream, watch)
    assert f"Bearer {secret}" in log.read_text()
    api.delete("/v1/model-providers/builtin-test")


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("the host model server did not come up")


def test_json_answer_clone_from_git_url_and_no_secret_in_events_or_log(
    server: LiveServer,
    api: httpx.Client,
    agent_env: dict[str, Any],
    docker_client: docker.DockerClient,
) -> None:
    """Without `stream`, one JSON answer; the project is cloned from a local repository."""
    env_id, secret, port = agent_env["id"], new_secret("sk-ant"), 18813
    watch = SecretWatch(secret)
    put_provider(
        api,
        "claude-json",
        kind="anthropic",
        base_url=f"http://127.0.0.1:{port}",
        secret=secret,
        models=["claude-haiku-4-5"],
    )
    repo = (
        "git init -q /srv/repo && cd /srv/repo && echo seed > README && git add README && "
        "git -c user.email=t@e -c user.name=t commit -qm seed"
    )
    assert (
        api.post(f"/v1/environments/{env_id}/exec", json={"command": repo}).json()["exit_code"] == 0
    )
    start_model_server(
        env_id,
        port=port,
        path="/workspace/cloned/out.txt",
        content="in a clone",
        final="Done in the clone.",
    )
    body = {
        "prompt": "Work on the clone",
        "agent": "claude",
        "project": "cloned",
        "git_url": "file:///srv/repo",
        "provider": "claude-json",
    }
    answer = watch.response(
        api.post(f"/v1/environments/{env_id}/agent/execute", json=body, timeout=300)
    )
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["status"] == "completed" and run["result"] == "Done in the clone."
    assert run["cwd"] == "/workspace/cloned" and run["git_url"] == "file:///srv/repo"
    assert read_file(docker_client, env_id, "/workspace/cloned/README") == b"seed\n"
    assert read_file(docker_client, env_id, "/workspace/cloned/out.txt") == b"in a clone"
    # The run is in the environment's audit log, without the credential.
    kinds = [e["type"] for e in events(api, env_id)]
    assert "agent.run_started" in kinds and "agent.run_finished" in kinds
    watch.response(api.get(f"/v1/environments/{env_id}/events", params={"limit": 1000}))
    watch.response(api.get(f"/v1/environments/{env_id}"))
    watch.response(api.get("/v1/events", params={"limit": 1000}))
    watch.seen(server.log_path.read_text())
    api.delete("/v1/model-providers/claude-json")
