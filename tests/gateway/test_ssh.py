"""The SSH gateway, driven by the real OpenSSH client against real environments:
commands with their exit status, a PTY that follows resizes, scp and sftp, `-L`
forwarding, short-lived and revocable credentials, sessions closed by a stop."""

import contextlib
import fcntl
import hashlib
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import termios
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.factories import delete, events, running_env, scoped_key, stop, wait_state
from tests.support.inside_app import start_app
from tests.support.server import LiveServer, free_port
from tests.support.ssh import SshLogin, password_ssh

# SQLite only: it exercises the gateway and the agent (their database paths run on both elsewhere).
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _exec(api: httpx.Client, env: str, command: str) -> dict[str, Any]:
    response = api.post(f"/v1/environments/{env}/exec", json={"command": command})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _credential(api: httpx.Client, env: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/v1/environments/{env}/ssh", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def ssh_env(server: LiveServer) -> Iterator[dict[str, Any]]:
    """One running environment with /workspace/hello, shared by the module's tests."""
    with server.client() as api:
        env = running_env(api, name=_name("ssh"))
        assert (
            _exec(api, env["id"], "printf 'hello from sandbay\\n' > /workspace/hello")["exit_code"]
            == 0
        )
        yield env
        delete(api, env["id"])


@pytest.fixture
def login(api: httpx.Client, ssh_env: dict[str, Any], tmp_path: Path) -> SshLogin:
    return SshLogin.write(_credential(api, ssh_env["id"]), tmp_path)


def test_credential_has_the_documented_fields(
    api: httpx.Client, ssh_env: dict[str, Any], server: LiveServer
) -> None:
    cred = _credential(api, ssh_env["id"], expires_in=120)
    for field in ("host", "port", "username", "password", "private_key", "expires_at"):
        assert cred[field], field
    assert cred["port"] == server.ssh_port
    assert cred["username"] == ssh_env["id"]
    assert cred["ssh_command"].startswith("ssh -p ")
    assert cred["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    listed = api.get(f"/v1/environments/{ssh_env['id']}/ssh/credentials").json()["data"]
    shown = next(c for c in listed if c["id"] == cred["id"])
    assert "password" not in shown and "private_key" not in shown  # only hashes are kept


def test_ssh_runs_a_command_and_returns_its_output_and_exit_status(login: SshLogin) -> None:
    result = login.ssh("cat", "/workspace/hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello from sandbay\n"

    failed = login.ssh("sh -c 'echo oops >&2; exit 7'")
    assert failed.returncode == 7
    assert failed.stderr.strip() == b"oops"

    piped = login.ssh("wc", "-c", input=b"x" * 100_000)
    assert piped.returncode == 0
    assert piped.stdout.strip() == b"100000"


def test_password_login_works_and_every_login_is_an_event(
    api: httpx.Client, ssh_env: dict[str, Any], tmp_path: Path
) -> None:
    cred = _credential(api, ssh_env["id"])
    known = tmp_path / "known_hosts"
    known.write_text(cred["known_hosts"] + "\n")
    result = password_ssh(cred, known, tmp_path, "echo", "logged-in")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"logged-in\n"
    logins = [
        e
        for e in events(api, ssh_env["id"])
        if e["type"] == "environment.ssh_login" and e["data"]["credential_id"] == cred["id"]
    ]
    assert [e["data"]["method"] for e in logins] == ["password"]
    assert logins[0]["actor"] == f"ssh:{cred['id']}"


def test_scp_round_trips_a_10_mb_file_byte_identical(
    api: httpx.Client, ssh_env: dict[str, Any], login: SshLogin, tmp_path: Path
) -> None:
    original = tmp_path / "big.bin"
    original.write_bytes(os.urandom(10 * 1024 * 1024))
    digest = hashlib.sha256(original.read_bytes()).hexdigest()

    up = login.scp(str(original), login.remote("/workspace/big.bin"))
    assert up.returncode == 0, up.stderr
    inside = _exec(api, ssh_env["id"], "sha256sum /workspace/big.bin")["stdout"]
    assert inside.split()[0] == digest

    back = tmp_path / "back.bin"
    down = login.scp(login.remote("/workspace/big.bin"), str(back))
    assert down.returncode == 0, down.stderr
    assert back.read_bytes() == original.read_bytes()

    legacy = login.scp("-O", str(original), login.remote("big-legacy.bin"))  # scp protocol
    assert legacy.returncode == 0, legacy.stderr
    inside = _exec(api, ssh_env["id"], "sha256sum /workspace/big-legacy.bin")["stdout"]
    assert inside.split()[0] == digest


def test_sftp_lists_writes_renames_and_removes(
    api: httpx.Client, ssh_env: dict[str, Any], login: SshLogin, tmp_path: Path
) -> None:
    local = tmp_path / "note.txt"
    local.write_text("sftp works\n")
    batch = (
        f"pwd\nmkdir sub\nput {local} sub/note.txt\nrename sub/note.txt sub/renamed.txt\n"
        f"ls -l sub\nget sub/renamed.txt {tmp_path}/fetched.txt\n"
    )
    result = login.sftp(batch)
    assert result.returncode == 0, result.stderr
    assert b"Remote working directory: /workspace" in result.stdout
    assert b"renamed.txt" in result.stdout
    assert (tmp_path / "fetched.txt").read_text() == "sftp works\n"
    assert _exec(api, ssh_env["id"], "cat /workspace/sub/renamed.txt")["stdout"] == "sftp works\n"

    cleanup = login.sftp("rm sub/renamed.txt\nrmdir sub\n")
    assert cleanup.returncode == 0, cleanup.stderr
    assert _exec(api, ssh_env["id"], "test -e /workspace/sub")["exit_code"] == 1
    missing = login.sftp("get no-such-file\n")
    assert missing.returncode != 0
    assert b"not found" in missing.stderr


def test_local_port_forwarding_reaches_a_server_inside(
    api: httpx.Client, ssh_env: dict[str, Any], login: SshLogin
) -> None:
    start_app(api, ssh_env["id"], 8000)
    local = free_port()
    argv = login.ssh_argv(extra=("-N", "-L", f"127.0.0.1:{local}:localhost:8000"))
    tunnel = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), 1):
                break
            assert time.monotonic() < deadline, "the tunnel did not open"
            time.sleep(0.1)
        with httpx.Client(base_url=f"http://127.0.0.1:{local}", timeout=30) as client:
            assert client.get("/hello").text == "hello from inside\n"
            body = os.urandom(1024 * 1024)
            assert client.post("/echo", content=body).content == body
    finally:
        tunnel.terminate()
        tunnel.wait(10)


def _read_pty(fd: int, until: bytes, timeout: float = 20) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while until not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return out


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_interactive_shell_has_a_pty_that_follows_window_resizes(login: SshLogin) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: OpenSSH on a terminal of its own
        os.execvp("ssh", login.ssh_argv(extra=("-tt",)))  # noqa: S606
    try:
        _set_size(fd, 30, 100)
        _read_pty(fd, b"# ")  # the shell's prompt: the session is up
        # The markers are split in the command, so its echo cannot match them.
        os.write(fd, b"tty; stty size; echo RE''ADY\n")
        first = _read_pty(fd, b"READY\r\n")
        assert b"/dev/pts/" in first and b"30 100" in first, first

        _set_size(fd, 40, 132)
        os.kill(pid, signal.SIGWINCH)
        time.sleep(0.5)
        os.write(fd, b"stty size; echo DO''NE\n")
        assert b"40 132" in _read_pty(fd, b"DONE\r\n")

        os.write(fd, b"exit 3\n")
        _read_pty(fd, b"closed")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def test_expired_and_revoked_credentials_are_refused(
    api: httpx.Client, ssh_env: dict[str, Any], tmp_path: Path
) -> None:
    env_id = ssh_env["id"]
    short = SshLogin.write(_credential(api, env_id, expires_in=1), tmp_path / "short")
    time.sleep(1.5)
    expired = short.ssh("true")
    assert expired.returncode == 255
    assert b"Permission denied" in expired.stderr

    revoked = SshLogin.write(_credential(api, env_id), tmp_path / "revoked")
    assert revoked.ssh("true").returncode == 0
    with revoked.open_session() as session:
        response = api.delete(f"/v1/environments/{env_id}/ssh/{revoked.credential['id']}")
        assert response.status_code == 200, response.text
        assert response.json()["revoked_at"]
        assert session.wait(30) == 255  # the open session is closed
        assert b"revoked" in session.stderr.read()  # type: ignore[union-attr]
    refused = revoked.ssh("true")
    assert refused.returncode == 255
    assert b"Permission denied" in refused.stderr


def test_stop_closes_open_sessions_and_refuses_new_connections(
    api: httpx.Client, tmp_path: Path
) -> None:
    env = running_env(api, name=_name("ssh-stop"))
    try:
        login = SshLogin.write(_credential(api, env["id"]), tmp_path)
        with login.open_session() as session:
            stop(api, env["id"], timeout=2)
            assert session.wait(30) == 255
            assert b"is stopp" in session.stderr.read()  # type: ignore[union-attr]
        wait_state(api, env["id"], "stopped")
        refused = login.ssh("true")
        assert refused.returncode == 255
        assert b"is stopped" in refused.stderr
    finally:
        delete(api, env["id"])


def test_ssh_needs_the_exec_permission(api: httpx.Client, ssh_env: dict[str, Any]) -> None:
    key = scoped_key(api, "reader", "environments:read")
    with httpx.Client(base_url=str(api.base_url), headers={"X-API-KEY": key}) as reader:
        response = reader.get(f"/v1/environments/{ssh_env['id']}/ssh")
    assert response.status_code == 403, response.text


def test_gateway_host_key_survives_a_restart(make_server: Any) -> None:
    live = make_server().start()
    with live.client() as api:
        env = api.post("/v1/environments", json={"kind": "self_hosted"}).json()
        assert api.get(f"/v1/environments/{env['id']}/ssh").status_code == 409
        first = api.post("/v1/environments", json={}).json()
        before = _credential(api, first["id"])["host_key_fingerprint"]
    live.stop()
    live.start()
    with live.client() as api:
        assert _credential(api, first["id"])["host_key_fingerprint"] == before
        delete(api, first["id"])
