"""`sandbay env ssh`, `env port-forward` and `env preview`: reaching an environment
from outside. SSH and port forwarding run the system's OpenSSH client with a fresh
short-lived credential (its one-time key and the gateway's host key in a private
temporary directory, removed and revoked when ssh ends); host keys are checked
strictly against the key the API names."""

import contextlib
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from sandbay.cli._client import (
    DEFAULT_URL,
    ApiKey,
    ApiUrl,
    Output,
    OutputOpt,
    api_client,
    emit,
    err_console,
    fields_table,
)
from sandbay.sdk import ApiError, Client

CredentialTtl = Annotated[
    float | None,
    typer.Option("--ttl", help="Seconds the credential stays valid (default: the server's)"),
]


@contextmanager
def _openssh(client: Client, env: str, ttl: float | None) -> Iterator[list[str]]:
    """The `ssh` options and destination for a fresh credential to `env`; the key files
    are removed and the credential revoked when the block ends."""
    ssh = shutil.which("ssh")
    if ssh is None:
        err_console.print(
            "[red]error[/red] OpenSSH's `ssh` is not on PATH (apt install openssh-client)"
        )
        raise typer.Exit(1)
    params = {"expires_in": ttl} if ttl is not None else None
    cred: dict[str, Any] = client.request("GET", f"/v1/environments/{env}/ssh", params=params)
    try:
        with tempfile.TemporaryDirectory(prefix="sandbay-ssh-") as directory:
            key = Path(directory) / "id_ed25519"
            key.touch(mode=0o600)
            key.write_text(cred["private_key"])
            known = Path(directory) / "known_hosts"
            known.write_text(cred["known_hosts"] + "\n")
            yield [
                ssh, "-i", str(key), "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
                "-o", "LogLevel=ERROR", "-p", str(cred["port"]),
                f"{cred['username']}@{cred['host']}",
            ]  # fmt: skip
    finally:
        # It expires anyway, and a stopped environment has nothing to revoke.
        with contextlib.suppress(ApiError):
            client.request("DELETE", f"/v1/environments/{env}/ssh/{cred['id']}")


def _run(argv: list[str]) -> tuple[int, bool]:
    """Run ssh in the foreground: its exit code, and whether Ctrl-C ended it (the
    terminal sends SIGINT to both of us; ssh decides what it means)."""
    interrupted = False
    with subprocess.Popen(argv) as proc:
        while True:
            try:
                return proc.wait(), interrupted
            except KeyboardInterrupt:
                interrupted = True


def env_ssh(
    ctx: typer.Context,
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    ttl: CredentialTtl = None,
) -> None:
    """Log in with OpenSSH through sandbay's SSH gateway (`sandbay env ssh ENV`), or
    run a command (`sandbay env ssh ENV -- uname -a`); exits with ssh's exit code."""
    command = list(ctx.args)
    with api_client(api_url, api_key) as client, _openssh(client, env, ttl) as ssh:
        tty = ["-t"] if not command and sys.stdin.isatty() else []
        # ssh joins its arguments into one shell line: quote them so they arrive as given.
        remote = ["--", shlex.join(command)] if command else []
        code, _ = _run([*ssh[:-1], *tty, ssh[-1], *remote])
    raise typer.Exit(code)


def env_port_forward(
    env: str,
    ports: Annotated[str, typer.Argument(help="LOCAL:REMOTE, or PORT for the same on both")],
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    address: Annotated[str, typer.Option(help="Local address to listen on")] = "127.0.0.1",
    ttl: CredentialTtl = None,
) -> None:
    """Listen on LOCAL and relay each connection to REMOTE inside the environment
    (any TCP, through the SSH gateway) until Ctrl-C."""
    local, _, remote = ports.partition(":")
    if not (local.isdigit() and (remote or local).isdigit()):
        raise typer.BadParameter("give LOCAL:REMOTE ports, e.g. 8000:8080")
    forward = f"{address}:{int(local)}:localhost:{int(remote or local)}"
    with api_client(api_url, api_key) as client, _openssh(client, env, ttl) as ssh:
        err_console.print(f"forwarding {address}:{local} → {env}:{remote or local} (Ctrl-C ends)")
        options = ["-N", "-o", "ExitOnForwardFailure=yes", "-L", forward]
        code, interrupted = _run([*ssh[:-1], *options, ssh[-1]])
    raise typer.Exit(0 if interrupted else code)


def env_preview(
    env: str,
    port: Annotated[int, typer.Argument(help="Port inside the environment")],
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    output: OutputOpt = None,
) -> None:
    """The URLs where PORT of the environment is served through sandbay, with a
    token for it when the environment is private."""
    with api_client(api_url, api_key) as client:
        link = client.request("GET", f"/v1/environments/{env}/preview/{port}")
    emit(link, output, fields_table, default=Output.json)
