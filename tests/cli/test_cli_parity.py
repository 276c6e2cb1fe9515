"""The CLI reaches what the API offers, run as the real `sandbay` executable against a
live server: OpenSSH login and port forwarding with fresh credentials, an interactive
terminal under a real pseudo-terminal, preview links, files, metrics, the followed
event stream, work items, agent runs and pools, `--output json|table` with whole
ids on a narrow terminal, the exit codes scripts rely on, and shell completion."""

import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import termios
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

from tests.cli.test_cli import SANDBAY, run
from tests.support.agents import (
    AGENT_IMAGE,
    new_secret,
    put_claude_provider,
    require_agent_image,
    start_model_server,
)
from tests.support.factories import delete, running_env
from tests.support.polling import eventually
from tests.support.server import ADMIN_KEY, LiveServer, free_port
from tests.support.work import self_hosted_env

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]


def _environ(server: LiveServer, **extra: str) -> dict[str, str]:
    return {
        "SANDBAY_API_URL": server.url,
        "SANDBAY_API_KEY": server.key,
        "PATH": "/usr/bin:/bin",
        **extra,
    }


@pytest.fixture(scope="module")
def web_env(server: LiveServer) -> Iterator[dict[str, Any]]:
    """One running environment serving /workspace over HTTP on 8080, shared by the module."""
    with server.client() as api:
        env = running_env(
            api,
            name=f"cli-web-{uuid.uuid4().hex[:6]}",
            command="cd /workspace && exec python3 -m http.server 8080",
        )
        yield env
        delete(api, env["id"])


def test_env_ssh_runs_a_command_through_openssh(
    server: LiveServer, web_env: dict[str, Any]
) -> None:
    ran = run(server, "env", "ssh", web_env["name"], "--", "echo", "hi")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "hi"
    failed = run(server, "env", "ssh", web_env["name"], "--", "sh", "-c", "exit 7")
    assert failed.returncode == 7


def _read_until(fd: int, proc: "subprocess.Popen[bytes]", wanted: bytes) -> bytes:
    seen = b""
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready, f"no output; seen {seen!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the pty closed: the CLI ended
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_env_exec_it_is_an_interactive_terminal(
    server: LiveServer, web_env: dict[str, Any]
) -> None:
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        [SANDBAY, "env", "exec", "-it", web_env["name"], "--", "bash"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_environ(server, TERM="xterm"),
        start_new_session=True,
    )
    os.close(slave)
    try:
        _read_until(master, proc, b"# ")  # bash's prompt: it reads what is typed from now on
        os.write(master, b"stty size\r")
        assert b"30 100" in _read_until(master, proc, b"30 100")
        os.write(master, b"echo $((6*7))\r")
        assert b"42" in _read_until(master, proc, b"42")
        os.write(master, b"exit 5\r")
        assert proc.wait(timeout=60) == 5
    finally:
        proc.kill()
        os.close(master)


def test_env_port_forward_relays_a_local_port(server: LiveServer, web_env: dict[str, Any]) -> None:
    local = free_port()
    proc = subprocess.Popen(
        [SANDBAY, "env", "port-forward", web_env["name"], f"{local}:8080"],
        env=_environ(server),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", local), 1).close()
                return True
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                return False

        eventually(listening, timeout=60)
        answer = httpx.get(f"http://127.0.0.1:{local}/", timeout=30)
        assert answer.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_env_preview_prints_the_link(server: LiveServer, web_env: dict[str, Any]) -> None:
    shown = run(server, "env", "preview", web_env["name"], "8080")
    assert shown.returncode == 0, shown.stderr
    link = json.loads(shown.stdout)
    assert web_env["id"] in link["path_url"] and "8080" in link["path_url"]


def test_env_files_and_metrics(server: LiveServer, web_env: dict[str, Any]) -> None:
    name = web_env["name"]
    made = run(server, "env", "files", "mkdir", name, "/workspace/a/b")
    assert made.returncode == 0 and json.loads(made.stdout)["is_dir"], made.stderr
    listed = run(server, "env", "files", "ls", name, "/workspace/a", "-o", "json")
    assert [f["name"] for f in json.loads(listed.stdout)["data"]] == ["b"]
    assert "b/" in run(server, "env", "files", "ls", name, "/workspace/a").stdout
    refused = run(server, "env", "files", "rm", name, "/workspace/a")
    assert refused.returncode == 1, refused.stdout  # not empty, not -r
    assert run(server, "env", "files", "rm", name, "/workspace/a", "-r").returncode == 0
    gone = run(server, "env", "files", "ls", name, "/workspace/a")
    assert gone.returncode == 4, gone.stderr

    def sampled() -> list[dict[str, Any]]:
        shown = run(server, "-o", "json", "env", "metrics", name)
        assert shown.returncode == 0 and shown.stdout.startswith("{"), shown
        return list(json.loads(shown.stdout)["data"])

    samples = eventually(sampled, timeout=60)
    assert samples[-1]["memory_bytes"] > 0
    table = run(server, "env", "metrics", name)
    assert table.returncode == 0 and "MEM MiB" in table.stdout


def test_outputs_exit_codes_and_whole_ids_on_a_narrow_terminal(
    server: LiveServer, web_env: dict[str, Any]
) -> None:
    narrow = subprocess.run(
        [SANDBAY, "env", "ls"],
        env=_environ(server, COLUMNS="40"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert narrow.returncode == 0 and web_env["id"] in narrow.stdout, narrow.stdout
    as_json = run(server, "env", "ls", "--output", "json")
    assert web_env["id"] in [e["id"] for e in json.loads(as_json.stdout)["data"]]
    fields = run(server, "--output", "table", "env", "get", web_env["id"])
    assert fields.returncode == 0 and "desired_state" in fields.stdout

    assert run(server, "env", "get", "no-such-env").returncode == 4
    assert run(server, "env", "wait", web_env["id"], "paused", "--timeout", "1").returncode == 3
    assert run(server, "env", "ls", "--output", "yaml").returncode == 2
    helped = run(server, "--help")
    assert "Exit codes" in helped.stdout and "--install-completion" in helped.stdout


def test_shell_completion_completes_commands(server: LiveServer) -> None:
    completed = subprocess.run(
        [SANDBAY],
        env=_environ(
            server, _SANDBAY_COMPLETE="complete_bash", COMP_WORDS="sandbay env po", COMP_CWORD="2"
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.stdout.split() == ["port-forward"], completed
    script = run(server, "--show-completion", "bash")
    assert script.returncode == 0 and "_SANDBAY_COMPLETE" in script.stdout


def test_work_items_agent_runs_and_pools(server: LiveServer) -> None:
    with server.client() as api:
        env = self_hosted_env(api, name=f"cli-work-{uuid.uuid4().hex[:6]}")
    try:
        created = run(server, "work", "create", "-e", env["id"], "--data", '{"n": 1}', "-m", "k=v")
        assert created.returncode == 0, created.stderr
        item = json.loads(created.stdout)
        assert item["state"] == "queued" and item["data"] == {"n": 1}
        listed = run(server, "work", "ls", "-e", env["id"])
        assert item["id"] in listed.stdout and "queued" in listed.stdout
        got = run(server, "work", "get", item["id"], "-e", env["id"])
        assert json.loads(got.stdout)["id"] == item["id"]
        stopped = run(server, "work", "stop", item["id"], "-e", env["id"])
        assert stopped.returncode == 0 and json.loads(stopped.stdout)["state"] == "stopped"
        assert run(server, "work", "get", "no-such-item", "-e", env["id"]).returncode == 4
        assert run(server, "work", "create", "-e", env["id"], "--data", "{").returncode == 2
    finally:
        with server.client() as api:
            delete(api, env["id"])

    runs = run(server, "agent", "ls", env["id"], "-o", "json")
    assert runs.returncode in (0, 4), runs.stderr
    pools = run(server, "pool", "ls", "-o", "json")
    assert pools.returncode == 0 and isinstance(json.loads(pools.stdout), list)


def test_env_events_follow_shows_a_stop_live(
    server: LiveServer, web_env: dict[str, Any], tmp_path: Any
) -> None:
    """Last in the module: it stops the shared environment."""
    log = tmp_path / "events.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [SANDBAY, "env", "events", web_env["id"], "-f"],
            env=_environ(server),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # The stream follows from when it connects: a change until one shows, so the
        # stop is surely made after that (a slow start of the CLI once missed it).
        with server.client() as api:
            marks = iter(range(1000))

            def connected() -> bool:
                labels = {"mark": str(next(marks))}
                patched = api.patch(f"/v1/environments/{web_env['id']}", json={"labels": labels})
                assert patched.status_code == 200, patched.text
                return bool(log.read_text().strip())

            eventually(connected, what="the stream to show a change", timeout=60, every=0.5)
        stopped = run(server, "env", "stop", web_env["id"], "--no-wait")
        assert stopped.returncode == 0, stopped.stderr
        eventually(lambda: "→ stopped" in log.read_text(), timeout=120)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_keys_and_organizations(server: LiveServer) -> None:
    created = run(server, "key", "create", "cli-scoped", "-p", "environments:read")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["permissions"] == ["environments:read"] and key["key"].startswith("sbk_")
    listed = run(server, "key", "ls")
    assert listed.returncode == 0 and key["id"] in listed.stdout  # the whole id
    scoped = subprocess.run(
        [SANDBAY, "env", "ls"], env=_environ(server, SANDBAY_API_KEY=key["key"]),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert scoped.returncode == 0, scoped.stderr
    removed = run(server, "key", "rm", key["id"])
    assert removed.returncode == 0 and json.loads(removed.stdout)["revoked_at"]
    refused = subprocess.run(
        [SANDBAY, "env", "ls"], env=_environ(server, SANDBAY_API_KEY=key["key"]),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "authentication_error" in refused.stderr

    name = f"cli-org-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(
        [SANDBAY, "org", "create", name], env=_environ(server, SANDBAY_API_KEY=ADMIN_KEY),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert run(server, "org", "create", "not-the-operator").returncode == 1


def test_agent_run_streams_and_agent_get_shows_it(
    server: LiveServer, docker_client: docker.DockerClient
) -> None:
    """The real Claude Code CLI in the agent image, its model the scripted server
    behind the model relay, run and read back through the CLI."""
    require_agent_image(docker_client)
    secret, port = new_secret("sk-ant"), free_port()
    path, content = "/workspace/c/hello.txt", "hi from the cli"
    with server.client() as api:
        env = running_env(api, name=f"cli-agent-{uuid.uuid4().hex[:6]}", image=AGENT_IMAGE)
        put_claude_provider(api, "claude-cli", port=port, secret=secret)
    start_model_server(env["id"], port=port, path=path, content=content, final="Done.")
    try:
        ran = run(
            server, "agent", "run", env["id"], "Create hello.txt", "--agent", "claude",
            "--project", "c", "--provider", "claude-cli",
        )  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "Done." in ran.stdout and secret not in ran.stdout
        runs = run(server, "agent", "ls", env["id"], "-o", "json")
        assert runs.returncode == 0, runs.stderr
        listed = json.loads(runs.stdout)
        first = (listed["data"] if isinstance(listed, dict) else listed)[0]
        got = run(server, "agent", "get", env["id"], first["id"], "-o", "json")
        assert got.returncode == 0 and json.loads(got.stdout)["id"] == first["id"]
    finally:
        with server.client() as api:
            delete(api, env["id"])
            api.delete("/v1/model-providers/claude-cli")
