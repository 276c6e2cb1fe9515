"""The `sandbay` command: the root app and the server entry points (`serve`,
`ssh-gateway`, `reconciler`, `worker`); the API client commands are in `env` and
`keys` (SANDBAY_API_URL, SANDBAY_API_KEY)."""

import logging
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sandbay.cli import agents, env, keys, runners, secrets, snapshots, work
from sandbay.cli._client import (
    DEFAULT_URL,
    EXIT_CODES_HELP,
    ApiKey,
    ApiUrl,
    Output,
    choices,
    err_console,
)

if TYPE_CHECKING:
    from sandbay.settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    help="sandbay: isolated environments you host yourself. Shell completion: "
    "`sandbay --install-completion` (bash, zsh, fish, PowerShell), then a new shell.",
    epilog=EXIT_CODES_HELP,
)
app.add_typer(env.app, name="env")
app.add_typer(snapshots.app, name="snapshot")
app.add_typer(secrets.app, name="secret")
app.add_typer(work.app, name="work")
app.add_typer(agents.app, name="agent")
app.add_typer(agents.pool_app, name="pool")
app.add_typer(keys.key_app, name="key")
app.add_typer(keys.org_app, name="org")
app.add_typer(runners.app, name="runner")


@app.callback()
def root(
    output: Annotated[
        Output | None,
        typer.Option(
            "--output",
            "-o",
            envvar="SANDBAY_OUTPUT",
            help="How list and get commands print: json (the API's answer) or table "
            "(lists default to table, single objects to json)",
        ),
    ] = None,
) -> None:
    choices.output = output


def _settings(**options: Any) -> "Settings":
    """The server's settings: the environment, with the command's options (those
    given) on top; logging set up from them. Invalid values end the command."""
    from pydantic import ValidationError
    from rich.markup import escape

    from sandbay.settings import Settings, explain

    try:
        settings = Settings(**{name: value for name, value in options.items() if value is not None})
    except ValidationError as exc:
        for line in explain(exc):
            err_console.print(f"[red]invalid setting[/red] {escape(line)}", soft_wrap=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (SANDBAY_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (SANDBAY_PORT)")] = None,
) -> None:
    """Run the API server with its reconciler."""
    import uvicorn

    from sandbay.api.http_protocol import EnvelopeH11Protocol
    from sandbay.app import create_app

    settings = _settings(host=host, port=port)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise typer.BadParameter("SANDBAY_TLS_CERT and SANDBAY_TLS_KEY go together")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        # h11 (not httptools) so that the request line and headers are bounded; what
        # it cannot parse is answered with the envelope (api/http_protocol.py).
        http=EnvelopeH11Protocol,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
    )


@app.command("ssh-gateway")
def ssh_gateway(
    port: Annotated[int | None, typer.Option(help="Port (SANDBAY_SSH__PORT)")] = None,
) -> None:
    """Run only the SSH gateway (e.g. on another host than the API)."""
    import asyncio

    from sandbay.app import run_until_signalled
    from sandbay.platform import Role

    settings = _settings(ssh=None if port is None else {"port": port})
    asyncio.run(run_until_signalled(settings, Role.SSH_GATEWAY))


@app.command()
def reconciler() -> None:
    """Run only the reconciler loops (no API), e.g. as a separate process or replica."""
    import asyncio

    from sandbay.app import run_until_signalled
    from sandbay.platform import Role

    asyncio.run(run_until_signalled(_settings(), Role.RECONCILER))


@app.command(no_args_is_help=True)
def worker(
    command: Annotated[
        list[str], typer.Argument(help="Command run for each item, after --", show_default=False)
    ],
    environment: Annotated[
        str, typer.Option("--environment", "-e", help="Self-hosted environment (id or name)")
    ],
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    worker_id: Annotated[
        str | None, typer.Option(help="Stable Worker-ID (default: host-pid)")
    ] = None,
    ttl: Annotated[int, typer.Option(help="Lease TTL asked for, in seconds")] = 30,
    heartbeat_interval: Annotated[float, typer.Option(help="Seconds between heartbeats")] = 5.0,
    block_ms: Annotated[int, typer.Option(help="Long-poll wait, in milliseconds")] = 5000,
) -> None:
    """Take work items from a self-hosted environment and run COMMAND for each one
    (SANDBAY_WORK_ID, SANDBAY_WORK_DATA, SANDBAY_WORK_METADATA in its environment);
    drains on a graceful stop (SIGTERM to COMMAND, wait, confirm)."""
    from sandbay.cli.worker import WorkerConfig, default_worker_id, run_worker

    config = WorkerConfig(
        environment=environment,
        command=command,
        worker_id=worker_id or default_worker_id(),
        ttl=ttl,
        heartbeat_interval=heartbeat_interval,
        block_ms=block_ms,
    )
    raise typer.Exit(run_worker(api_url, api_key, config))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
