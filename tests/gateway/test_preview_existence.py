"""Nothing answers a caller without valid credentials differently for an id that
exists and one that does not: the preview proxy (both URL forms), the SSH gateway and
signed file URLs."""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.factories import delete, running_env
from tests.support.server import LiveServer
from tests.support.ssh import password_ssh

pytestmark = pytest.mark.docker
PORT = 8000
TOKEN = "X-Sandbay-Preview-Token"
RANDOM_ID = "env_" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def real_env(server: LiveServer) -> Iterator[dict[str, Any]]:
    """A private running environment (nothing needs to listen on its port: every
    request here is refused before it would be forwarded)."""
    with server.client() as api:
        env = running_env(api, name=f"exists-{uuid.uuid4().hex[:8]}")
        yield env
        delete(api, env["id"])


@pytest.fixture
def anon(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _answer(response: httpx.Response) -> tuple[int, str, str]:
    return response.status_code, response.headers.get("content-type", ""), response.text


def _preview_token(api: httpx.Client, env_id: str) -> str:
    response = api.get(f"/v1/environments/{env_id}/preview/{PORT}")
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_preview_answers_a_real_id_as_a_random_one_without_credentials(
    api: httpx.Client, anon: httpx.Client, real_env: dict[str, Any]
) -> None:
    real_token = _preview_token(api, real_env["id"])  # valid, but for the real env only
    variants: list[dict[str, str]] = [
        {},
        {"Accept": "text/html"},
        {TOKEN: "sbp_nope"},
        {TOKEN: "sbp_nope", "Accept": "text/html"},
    ]
    for headers in variants:
        real = anon.get(f"/preview/{real_env['id']}/{PORT}/", headers=headers)
        fake = anon.get(f"/preview/{RANDOM_ID}/{PORT}/", headers=headers)
        assert real.status_code in (401, 403), real.text
        assert _answer(real) == _answer(fake), headers
        host = {"Host": f"{PORT}-{{}}.localhost"}["Host"]
        real_host = anon.get("/", headers={**headers, "Host": host.format(real_env["id"][4:])})
        fake_host = anon.get("/", headers={**headers, "Host": host.format(RANDOM_ID[4:])})
        assert real_host.status_code in (401, 403), real_host.text
        assert _answer(real_host) == _answer(fake_host), headers
    # A token of another environment (or port) opens neither.
    fake = anon.get(f"/preview/{RANDOM_ID}/{PORT}/", headers={TOKEN: real_token})
    other_port = anon.get(f"/preview/{real_env['id']}/9000/", headers={TOKEN: real_token})
    assert fake.status_code == other_port.status_code == 403
    assert fake.json() == other_port.json()


def test_ssh_refuses_a_real_id_as_a_random_one(
    api: httpx.Client, real_env: dict[str, Any], tmp_path: Path
) -> None:
    response = api.get(f"/v1/environments/{real_env['id']}/ssh")
    assert response.status_code == 200, response.text
    credential = response.json()
    known = tmp_path / "known_hosts"
    known.write_text(credential["known_hosts"] + "\n")
    outcomes = []
    for username in (real_env["id"], RANDOM_ID):
        wrong = {**credential, "username": username, "password": "not-the-password"}
        result = password_ssh(wrong, known, tmp_path, "true")
        assert result.returncode == 255
        outcomes.append(result.stderr.replace(username.encode(), b"<id>"))
    assert outcomes[0] == outcomes[1]
    assert b"Permission denied" in outcomes[0]


def test_signed_file_url_refuses_a_real_id_as_a_random_one(
    api: httpx.Client, anon: httpx.Client, real_env: dict[str, Any]
) -> None:
    key = api.get(f"/sandbox/{real_env['id']}/signing-key")  # the real one has a key
    assert key.status_code == 200, key.text
    params = {"path": "/workspace/x", "expires": "0", "signature": "0" * 64}
    real = anon.get(f"/toolbox/{real_env['id']}/files/download", params=params)
    fake = anon.get(f"/toolbox/{RANDOM_ID}/files/download", params=params)
    assert real.status_code == fake.status_code == 401, real.text

    def same(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k not in ("timestamp", "path")}

    assert same(real.json()) == same(fake.json())
