"""Any image, through the environment agent (docs/envd.md): an environment whose image
has no shell and no python3 (Debian's static busybox alone, no applet links) gets
exec, shell strings that need no shell, files, a terminal, a preview, SSH and SFTP
through the public API and the gateways of a real server."""

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from playwright.sync_api import sync_playwright
from websockets.sync.client import connect

from tests.support.factories import assert_envelope, delete, running_env
from tests.support.images import static_image
from tests.support.inside import run
from tests.support.polling import eventually
from tests.support.server import LiveServer
from tests.support.ssh import SshLogin

# SQLite only: it exercises the engine and the agent (their database paths run on both elsewhere).
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]
BUSYBOX = "/bin/busybox"
WEB_PORT = 8080
TOKEN = "X-Sandbay-Preview-Token"


@pytest.fixture(scope="module")
def static_env(server: LiveServer, docker_client: docker.DockerClient) -> Iterator[dict[str, Any]]:
    """One running environment of the shell-less image, with no command (the agent
    alone keeps it alive), shared by the module's tests."""
    image = static_image(docker_client)
    with server.client() as api:
        env = running_env(api, name=f"any-{uuid.uuid4().hex[:8]}", image=image)
        try:
            yield env
        finally:
            delete(api, env["id"])


def test_the_image_really_has_no_shell_and_no_python(
    api: httpx.Client, static_env: dict[str, Any]
) -> None:
    listing = run(api, static_env["id"], [BUSYBOX, "ls", "-a", "/bin"])
    assert listing["exit_code"] == 0, listing
    assert listing["stdout"].split() == [".", "..", "busybox"]
    cmdline = run(api, static_env["id"], [BUSYBOX, "cat", "/proc/1/cmdline"])["stdout"]
    assert cmdline.split("\0")[:2] == ["/.sandbay/envd", "init"]  # the agent is PID 1


def test_exec_runs_the_static_binary_and_shell_strings_that_need_no_shell(
    api: httpx.Client, static_env: dict[str, Any]
) -> None:
    env_id = static_env["id"]
    assert run(api, env_id, [BUSYBOX, "echo", "hi"])["stdout"] == "hi\n"
    quoted = run(api, env_id, f"{BUSYBOX} echo 'a b'")
    assert (quoted["exit_code"], quoted["stdout"], quoted["stderr"]) == (0, "a b\n", "")
    # The words are a shell's: quotes join, blanks split, backslashes escape.
    words = run(api, env_id, rf"{BUSYBOX} printf '%s|' 'a b' c\ d \"e\"")
    assert words["stdout"] == 'a b|c d|"e"|', words
    failing = run(api, env_id, f"{BUSYBOX} false")
    assert failing["exit_code"] == 1
    assert run(api, env_id, [BUSYBOX, "pwd"])["stdout"] == "/workspace\n"  # the WORKDIR

    url = f"/v1/environments/{env_id}/exec"
    for command in ("echo $HOME | cat", f"{BUSYBOX} echo a > /tmp/x", "cd /tmp && pwd"):
        refused = api.post(url, json={"command": command})
        message = assert_envelope(refused, 400, "invalid_request_error")
        assert "no /bin/sh" in message and "argv" in message, message


def test_files_round_trip_and_list(api: httpx.Client, static_env: dict[str, Any]) -> None:
    env_id = static_env["id"]
    base = f"/v1/environments/{env_id}/files"
    body = bytes(range(256)) * 64
    written = api.put(base, params={"path": "/workspace/data/blob.bin"}, content=body)
    assert written.status_code == 200, written.text
    assert written.json()["size"] == len(body)
    assert api.get(base, params={"path": "/workspace/data/blob.bin"}).content == body
    text = api.put(base, params={"path": "data/note.txt"}, content=b"relative to /workspace\n")
    assert text.status_code == 200, text.text

    listing = api.get(f"{base}/list", params={"path": "/workspace/data"})
    assert listing.status_code == 200, listing.text
    entries = {e["name"]: e for e in listing.json()["data"]}
    assert set(entries) == {"blob.bin", "note.txt"}
    assert entries["blob.bin"]["size"] == len(body) and entries["blob.bin"]["type"] == "file"
    # What the API wrote is what the environment sees.
    seen = run(api, env_id, [BUSYBOX, "cat", "/workspace/data/note.txt"])
    assert seen["stdout"] == "relative to /workspace\n"
    assert (
        api.delete(base, params={"path": "/workspace/data", "recursive": True}).status_code == 204
    )
    assert_envelope(
        api.get(f"{base}/stat", params={"path": "/workspace/data"}), 404, "not_found_error"
    )


def test_a_terminal_runs_busybox_sh_over_the_websocket(
    server: LiveServer, static_env: dict[str, Any]
) -> None:
    url = (
        f"ws://127.0.0.1:{server.port}/v1/environments/{static_env['id']}/pty"
        f"?command=/bin/busybox%20sh&cols=90&rows=25"
    )
    with connect(url, additional_headers={"X-API-KEY": server.key}) as socket:
        session = json.loads(socket.recv(timeout=30))
        assert session["type"] == "session", session
        # The typed line shows $((6*7)); only the shell's own answer shows 42.
        socket.send(b"/bin/busybox echo pty-$((6*7))\n")
        screen = b""
        while b"pty-42" not in screen:
            try:
                screen += socket.recv(timeout=30)  # type: ignore[operator]
            except TimeoutError:
                raise AssertionError(f"the terminal showed only {screen!r}") from None
        socket.send(b"exit 5\n")
        frames: list[str | bytes] = []
        while not frames or not isinstance(frames[-1], str):
            frames.append(socket.recv(timeout=30))
    assert json.loads(frames[-1]) == {"type": "exit", "exit_code": 5}


def _preview_link(api: httpx.Client, env_id: str, port: int) -> dict[str, Any]:
    response = api.get(f"/v1/environments/{env_id}/preview/{port}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _start_httpd(api: httpx.Client, env_id: str, port: int, root: str) -> dict[str, Any]:
    """busybox httpd as a background process serving `root` on `port`."""
    started = api.post(
        f"/v1/environments/{env_id}/processes",
        json={"command": [BUSYBOX, "httpd", "-f", "-p", str(port), "-h", root]},
    )
    assert started.status_code == 201, started.text
    return dict(started.json())


def _first_page(anon: httpx.Client, path: str, headers: dict[str, str]) -> httpx.Response:
    """The preview's answer once the server inside accepts (502 until it does)."""

    def answered() -> httpx.Response | None:
        response = anon.get(path, headers=headers)
        return None if response.status_code == 502 else response

    page: httpx.Response = eventually(answered, what="the server inside to accept", timeout=30)
    return page


def test_a_preview_of_a_server_started_from_the_static_binary(
    api: httpx.Client, server: LiveServer, static_env: dict[str, Any]
) -> None:
    env_id = static_env["id"]
    page = b"<!doctype html><title>static-busybox</title><p id=x>served by busybox httpd</p>\n"
    put = api.put(
        f"/v1/environments/{env_id}/files",
        params={"path": "/workspace/site/index.html"},
        content=page,
    )
    assert put.status_code == 200, put.text
    process = _start_httpd(api, env_id, WEB_PORT, "/workspace/site")
    try:
        link = _preview_link(api, env_id, WEB_PORT)
        path = f"/preview/{env_id}/{WEB_PORT}/"
        with server.client(key="") as anon:
            answer = _first_page(anon, path, {TOKEN: link["token"]})
            assert answer.status_code == 200, answer.text
            assert answer.content == page
            assert_envelope(anon.get(path), 401, "authentication_error")  # no token, no page
            try:
                public = api.patch(f"/v1/environments/{env_id}", json={"public": True})
                assert public.status_code == 200 and public.json()["public"] is True
                assert anon.get(path).content == page
            finally:
                api.patch(f"/v1/environments/{env_id}", json={"public": False})

        chromium = shutil.which("chromium")
        assert chromium, "Chromium is missing: `make test` installs it (SANDBAY_BROWSER=1 setup)"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                tab = browser.new_page()
                opened = tab.goto(f"{link['url']}?sandbay_preview_token={link['token']}")
                assert opened is not None and opened.status == 200
                assert tab.title() == "static-busybox"
                assert tab.inner_text("#x") == "served by busybox httpd"
            finally:
                browser.close()
    finally:
        api.delete(f"/v1/environments/{env_id}/processes/{process['id']}")


def _ssh_login(api: httpx.Client, env_id: str, directory: Path) -> SshLogin:
    response = api.get(f"/v1/environments/{env_id}/ssh")
    assert response.status_code == 200, response.text
    return SshLogin.write(response.json(), directory)


def test_ssh_exec_and_sftp_without_a_shell(
    api: httpx.Client, static_env: dict[str, Any], tmp_path: Path
) -> None:
    env_id = static_env["id"]
    login = _ssh_login(api, env_id, tmp_path / "ssh")
    result = login.ssh("/bin/busybox", "echo", "hi")
    assert (result.returncode, result.stdout) == (0, b"hi\n"), result.stderr
    failed = login.ssh("/bin/busybox", "false")
    assert failed.returncode == 1, failed.stderr
    needs_shell = login.ssh("echo $HOME | cat")
    assert needs_shell.returncode != 0 and b"no /bin/sh" in needs_shell.stderr, needs_shell

    local = tmp_path / "up.bin"
    local.write_bytes(bytes(range(256)) * 1000)
    back = tmp_path / "back.bin"
    batch = f"put {local} /workspace/sftp.bin\nls -l /workspace\nget /workspace/sftp.bin {back}\n"
    transfer = login.sftp(batch)
    assert transfer.returncode == 0, transfer.stderr
    assert b"sftp.bin" in transfer.stdout
    assert back.read_bytes() == local.read_bytes()
    inside = api.get(f"/v1/environments/{env_id}/files", params={"path": "/workspace/sftp.bin"})
    assert inside.content == local.read_bytes()
    assert login.sftp("rm /workspace/sftp.bin\n").returncode == 0
    gone = run(api, env_id, [BUSYBOX, "test", "-e", "/workspace/sftp.bin"])
    assert gone["exit_code"] == 1
