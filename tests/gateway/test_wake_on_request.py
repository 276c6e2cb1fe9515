"""Wake on request on the real engine: a sleeping (stopped, paused or archived) environment with
`wake_on_request` answers a preview request with its real body and an SSH login with
its command's output, and the event log says who woke it; without the setting, or
without a valid token for a private preview, nothing wakes."""

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.factories import assert_envelope, delete, events, running_env, stop, wait_state
from tests.support.server import LiveServer
from tests.support.ssh import SshLogin

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]
PORT = 8080
TOKEN = "X-Sandbay-Preview-Token"
BODY = "hello from a woken environment\n"


@pytest.fixture(scope="module")
def sleeper(server: LiveServer) -> Iterator[dict[str, Any]]:
    """One environment serving /workspace over HTTP on PORT, with wake_on_request."""
    with server.client() as api:
        env = running_env(
            api,
            name=f"wake-{uuid.uuid4().hex[:8]}",
            command=f"python3 -m http.server {PORT} --directory /workspace",
            wake_on_request=True,
        )
        assert env["wake_on_request"] is True
        done = api.post(
            f"/v1/environments/{env['id']}/exec",
            json={"command": f"printf '{BODY}' > /workspace/hello.txt"},
        )
        assert done.status_code == 200 and done.json()["exit_code"] == 0, done.text
        yield env
        delete(api, env["id"])


@pytest.fixture
def anon(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(key="") as client:
        yield client


def _token(api: httpx.Client, env_id: str) -> str:
    response = api.get(f"/v1/environments/{env_id}/preview/{PORT}")
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def _stopped(api: httpx.Client, env_id: str) -> None:
    stop(api, env_id, timeout=1)
    wait_state(api, env_id, "stopped")


def _state(api: httpx.Client, env_id: str) -> str:
    return str(api.get(f"/v1/environments/{env_id}").json()["state"])


def _woken(api: httpx.Client, env_id: str) -> list[dict[str, Any]]:
    return [e for e in events(api, env_id) if e["type"] == "environment.woken"]


def test_stopped_environment_wakes_on_a_preview_request(
    api: httpx.Client, anon: httpx.Client, sleeper: dict[str, Any]
) -> None:
    env_id = sleeper["id"]
    token = _token(api, env_id)
    _stopped(api, env_id)

    def fetch(_: int) -> httpx.Response:
        return anon.get(f"/preview/{env_id}/{PORT}/hello.txt", headers={TOKEN: token})

    with ThreadPoolExecutor(4) as pool:  # concurrent requests share one wake
        answers = list(pool.map(fetch, range(4)))

    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.text == BODY
    assert _state(api, env_id) == "running"
    (event,) = _woken(api, env_id)
    assert event["actor"] == "system:wake-on-request"
    assert event["data"]["by"] == "preview" and event["data"]["port"] == PORT
    assert event["from_state"] == "stopped" and event["data"]["preview_token_id"].startswith("prvt")
    assert event["data"]["client"]
    assert token not in str(event)  # the token's id, never the token


def test_paused_environment_is_resumed_by_a_preview_request(
    api: httpx.Client, anon: httpx.Client, sleeper: dict[str, Any]
) -> None:
    env_id = sleeper["id"]
    token = _token(api, env_id)
    wait_state(api, env_id, "running")
    assert api.post(f"/v1/environments/{env_id}/pause").status_code == 200
    wait_state(api, env_id, "paused")
    before = len(_woken(api, env_id))

    answer = anon.get(f"/preview/{env_id}/{PORT}/hello.txt", headers={TOKEN: token})

    assert answer.status_code == 200, answer.text
    assert answer.text == BODY
    assert _state(api, env_id) == "running"
    woken = _woken(api, env_id)
    assert len(woken) == before + 1 and woken[-1]["from_state"] == "paused"


def test_archived_environment_is_restored_by_a_preview_request(
    api: httpx.Client, anon: httpx.Client, sleeper: dict[str, Any]
) -> None:
    env_id = sleeper["id"]
    token = _token(api, env_id)
    wait_state(api, env_id, "running")
    assert api.post(f"/v1/environments/{env_id}/archive").status_code == 200
    wait_state(api, env_id, "archived")

    answer = anon.get(f"/preview/{env_id}/{PORT}/hello.txt", headers={TOKEN: token})

    assert answer.status_code == 200, answer.text
    assert answer.text == BODY  # the workspace came back from the archive
    assert _woken(api, env_id)[-1]["from_state"] == "archived"


def test_unauthenticated_preview_request_does_not_wake(
    api: httpx.Client, anon: httpx.Client, sleeper: dict[str, Any]
) -> None:
    env_id = sleeper["id"]
    _stopped(api, env_id)
    before = len(_woken(api, env_id))
    path = f"/preview/{env_id}/{PORT}/hello.txt"

    assert_envelope(anon.get(path), 401, "authentication_error")
    assert_envelope(anon.get(path, headers={TOKEN: "sbp_nope"}), 403, "permission_error")

    assert _state(api, env_id) == "stopped"
    assert api.get(f"/v1/environments/{env_id}").json()["desired_state"] == "stopped"
    assert len(_woken(api, env_id)) == before


def test_stopped_environment_wakes_on_an_ssh_login(
    api: httpx.Client, sleeper: dict[str, Any], tmp_path: Path
) -> None:
    env_id = sleeper["id"]
    if _state(api, env_id) != "stopped":
        _stopped(api, env_id)
    credential = api.get(f"/v1/environments/{env_id}/ssh")
    assert credential.status_code == 200, credential.text
    login = SshLogin.write(credential.json(), tmp_path)

    done = login.ssh("cat", "/workspace/hello.txt", timeout=120)

    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == BODY
    assert _state(api, env_id) == "running"
    event = _woken(api, env_id)[-1]
    assert event["data"]["by"] == "ssh"
    assert event["data"]["credential_id"] == credential.json()["id"]
    assert event["data"]["method"] == "publickey"


def test_without_wake_on_request_a_stopped_preview_is_refused(
    api: httpx.Client, anon: httpx.Client, sleeper: dict[str, Any]
) -> None:
    env_id = sleeper["id"]
    token = _token(api, env_id)
    off = api.patch(f"/v1/environments/{env_id}", json={"wake_on_request": False})
    assert off.status_code == 200 and off.json()["wake_on_request"] is False, off.text
    try:
        _stopped(api, env_id)
        refused = anon.get(f"/preview/{env_id}/{PORT}/hello.txt", headers={TOKEN: token})
        assert "stopped" in assert_envelope(refused, 409, "conflict_error")
        assert _state(api, env_id) == "stopped"
    finally:
        on = api.patch(f"/v1/environments/{env_id}", json={"wake_on_request": True})
        assert on.status_code == 200 and on.json()["wake_on_request"] is True, on.text


def test_a_port_that_never_answers_gets_a_504_at_the_wake_deadline(make_server: Any) -> None:
    live = make_server(extra_env={"SANDBAY_WAKE_TIMEOUT": "3"}).start()
    with live.client() as api, live.client(key="") as anon:
        env = running_env(api, name="wake-silent", wake_on_request=True)  # nothing on PORT
        token = _token(api, env["id"])
        _stopped(api, env["id"])

        refused = anon.get(f"/preview/{env['id']}/{PORT}/", headers={TOKEN: token})

        message = assert_envelope(refused, 504, "timeout_error")
        assert f"port {PORT}" in message and "3s" in message
        assert _state(api, env["id"]) == "running"  # it woke; its app never answered
