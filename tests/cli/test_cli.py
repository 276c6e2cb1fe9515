"""The `sandbay` CLI against a live server (real HTTP, real Docker)."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.server import LiveServer

#: Exercises the engine and the HTTP shapes; every database path it touches runs on both
#: databases elsewhere (tests/api, tests/services).
pytestmark = pytest.mark.usefixtures("sqlite_only")

SANDBAY = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "sandbay")


def run(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"SANDBAY_API_URL": server.url, "SANDBAY_API_KEY": server.key, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [SANDBAY, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_cli_drives_an_environment_through_its_lifecycle(server: LiveServer) -> None:
    created = run(
        server, "env", "create", "--name", "cli-one", "--label", "via=cli", "--memory", "256"
    )
    assert created.returncode == 0, created.stderr
    env = json.loads(created.stdout)
    assert env["state"] == "running" and env["labels"] == {"via": "cli"}

    listed = run(server, "env", "ls", "--label", "via=cli")
    assert listed.returncode == 0 and "cli-one" in listed.stdout and "running" in listed.stdout

    stopped = run(server, "env", "stop", "cli-one", "--timeout", "5")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert run(server, "env", "wait", "cli-one", "stopped", "--timeout", "5").returncode == 0
    started = run(server, "env", "start", "cli-one")
    assert started.returncode == 0 and "running" in started.stdout
    assert "stopping" in run(server, "env", "events", "cli-one").stdout

    removed = run(server, "env", "rm", "cli-one")
    assert removed.returncode == 0 and "deleted" in removed.stdout
    missing = run(server, "env", "get", "cli-one")
    assert missing.returncode == 4 and "not_found_error" in missing.stderr


def test_cli_reports_auth_errors(server: LiveServer) -> None:
    result = subprocess.run(
        [SANDBAY, "env", "ls", "--api-url", server.url, "--api-key", "wrong"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1 and "authentication_error" in result.stderr


def test_cli_exec_cp_and_logs(server: LiveServer, tmp_path: Path) -> None:
    created = run(
        server,
        "env",
        "create",
        "--name",
        "cli-inside",
        "--command",
        "echo booted; exec sleep infinity",
    )
    assert created.returncode == 0, created.stderr
    ran = run(
        server, "env", "exec", "cli-inside", "--", "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert ran.returncode == 3
    assert ran.stdout == "out\n" and "err" in ran.stderr

    local = tmp_path / "up.bin"
    local.write_bytes(b"\x00\x01payload" * 1000)
    assert run(server, "env", "cp", str(local), "cli-inside:/workspace/up.bin").returncode == 0
    back = tmp_path / "down.bin"
    copied = run(server, "env", "cp", "cli-inside:/workspace/up.bin", str(back))
    assert copied.returncode == 0, copied.stderr
    assert back.read_bytes() == local.read_bytes()

    logs = run(server, "env", "logs", "cli-inside")
    assert logs.returncode == 0 and "booted" in logs.stdout
    assert run(server, "env", "rm", "cli-inside").returncode == 0


def test_cli_pause_resume_snapshot_and_fork(server: LiveServer) -> None:
    created = run(server, "env", "create", "--name", "cli-state")
    assert created.returncode == 0, created.stderr
    wrote = run(server, "env", "exec", "cli-state", "--", "sh", "-c", "echo kept > /workspace/k")
    assert wrote.returncode == 0, wrote.stderr
    paused = run(server, "env", "pause", "cli-state")
    assert paused.returncode == 0 and "paused" in paused.stdout, paused.stderr
    refused = run(server, "env", "exec", "cli-state", "--", "true")
    assert refused.returncode == 1 and "resume" in refused.stderr
    resumed = run(server, "env", "resume", "cli-state")
    assert resumed.returncode == 0 and "running" in resumed.stdout, resumed.stderr

    taken = run(server, "snapshot", "create", "cli-state", "--name", "cli-snap")
    assert taken.returncode == 0, taken.stderr
    snapshot = json.loads(taken.stdout)
    assert snapshot["state"] == "ready" and snapshot["name"] == "cli-snap"
    listed = run(server, "snapshot", "ls", "--env", "cli-state")
    assert listed.returncode == 0 and snapshot["id"] in listed.stdout  # full ids

    forked = run(server, "env", "fork", "cli-state", "--count", "2", "--name-prefix", "cli-f")
    assert forked.returncode == 0, forked.stderr
    assert forked.stdout.count("running") == 2
    for name in ("cli-f-1", "cli-f-2"):
        read = run(server, "env", "exec", name, "--", "cat", "/workspace/k")
        assert read.returncode == 0 and read.stdout == "kept\n", read.stderr
        assert run(server, "env", "rm", name).returncode == 0

    assert run(server, "snapshot", "rm", snapshot["id"]).returncode == 0
    missing = run(server, "snapshot", "get", "cli-snap")
    assert missing.returncode == 4 and "not_found" in missing.stderr
    assert run(server, "env", "rm", "cli-state").returncode == 0


def test_cli_manages_secrets_without_showing_their_values(server: LiveServer) -> None:
    value = "cli-secret-value-" + Path(SANDBAY).name * 2
    env = {"SANDBAY_API_URL": server.url, "SANDBAY_API_KEY": server.key, "PATH": "/usr/bin:/bin"}
    argv = [
        SANDBAY,
        "secret",
        "create",
        "cli_token",
        "--value-file",
        "-",
        "--host",
        "API.example.com",
    ]
    made = subprocess.run(
        argv, input=value + "\n", env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert made.returncode == 0, made.stderr
    secret = json.loads(made.stdout)
    assert secret["hosts"] == ["api.example.com"] and value not in made.stdout
    listed = run(server, "secret", "ls", "--output", "json")
    assert secret["placeholder"] in listed.stdout and value not in listed.stdout
    assert json.loads(run(server, "secret", "get", "cli_token").stdout)["id"] == secret["id"]

    created = run(
        server, "env", "create", "--name", "cli-egress", "--no-wait",
        "--domain-allow", "*.Example.com", "--domain-deny", "bad.example.com",
        "--secret", "TOKEN=cli_token",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    shown = json.loads(created.stdout)
    assert shown["network_domain_allow_list"] == ["*.example.com"]
    assert shown["network_domain_deny_list"] == ["bad.example.com"]
    assert shown["secrets"] == {"TOKEN": "cli_token"}
    changed = run(
        server, "env", "network", "cli-egress",
        "--domain-allow", "pypi.org", "--domain-allow", "*.pypi.org",
        "--domain-deny", "", "--secret", "",
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    now = json.loads(run(server, "env", "get", "cli-egress", "--output", "json").stdout)
    assert now["network_domain_allow_list"] == ["pypi.org", "*.pypi.org"]
    assert now["network_domain_deny_list"] == [] and now["secrets"] == {}
    bad = run(server, "env", "network", "cli-egress", "--domain-allow", "not a name")
    assert bad.returncode != 0 and "host name" in bad.stderr + bad.stdout
    assert run(server, "env", "rm", "cli-egress").returncode == 0

    assert run(server, "secret", "rm", "cli_token").returncode == 0
    assert run(server, "secret", "get", "cli_token").returncode == 4
