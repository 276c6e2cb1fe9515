"""The `sandbay` command: `serve` runs the platform; the other commands are a
client of the API (SANDBAY_API_URL, SANDBAY_API_KEY)."""

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from sandbay.sdk import ApiError, Client

if TYPE_CHECKING:
    from sandbay.settings import Settings

app = typer.Typer(no_args_is_help=True, help="sandbay: isolated environments you host yourself")
env_app = typer.Typer(no_args_is_help=True, help="Manage environments")
key_app = typer.Typer(no_args_is_help=True, help="Manage API keys")
org_app = typer.Typer(no_args_is_help=True, help="Manage organizations (operator key)")
app.add_typer(env_app, name="env")
app.add_typer(key_app, name="key")
app.add_typer(org_app, name="org")

console = Console()
err_console = Console(stderr=True)

ApiUrl = Annotated[
    str, typer.Option("--api-url", envvar="SANDBAY_API_URL", help="Base URL of the API")
]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="SANDBAY_API_KEY", help="API key")]
WaitFlag = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the state change")]
DEFAULT_URL = "http://127.0.0.1:8080"


def _fail(exc: ApiError) -> NoReturn:
    err_console.print(f"[red]error[/red] {exc.type}: {exc.message}")
    raise typer.Exit(1)


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data))


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{what} {item!r} must be KEY=VALUE")
        out[key] = value
    return out


def _wait(client: Client, env: str, state: str, timeout: float) -> dict[str, Any]:
    with console.status(f"waiting for {env} to be {state}…"):
        return client.wait(env, state, timeout=timeout)


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


@env_app.command("create")
def env_create(
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    name: Annotated[str | None, typer.Option(help="Unique name")] = None,
    image: Annotated[str | None, typer.Option(help="Image (default: the server's)")] = None,
    command: Annotated[str | None, typer.Option(help="Workload as a shell string")] = None,
    cpu: Annotated[float | None, typer.Option(help="CPU cores")] = None,
    memory: Annotated[int | None, typer.Option("--memory", help="Memory in MB")] = None,
    disk: Annotated[int | None, typer.Option("--disk", help="Disk in GB")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE")] = None,
    auto_stop: Annotated[float | None, typer.Option(help="Minutes idle before stop")] = None,
    wait: WaitFlag = True,
) -> None:
    """Create an environment (and wait until it runs)."""
    fields: dict[str, Any] = {
        "name": name,
        "image": image,
        "command": command,
        "cpu": cpu,
        "memory_mb": memory,
        "disk_gb": disk,
        "auto_stop_interval": auto_stop,
    }
    body = {k: v for k, v in fields.items() if v is not None}
    body["env"] = _pairs(env, "--env")
    body["labels"] = _pairs(label, "--label")
    with Client(api_url, api_key) as client:
        try:
            created = client.create_environment(**body)
            if wait:
                created = _wait(client, created["id"], "running", 300)
        except ApiError as exc:
            _fail(exc)
    _print_json(created)


@env_app.command("ls")
def env_ls(
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    state: Annotated[list[str] | None, typer.Option(help="Filter by state")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE")] = None,
    limit: int = 100,
) -> None:
    """List environments as a table."""
    with Client(api_url, api_key) as client:
        try:
            page = client.list_environments(state=state, label=label, limit=limit)
        except ApiError as exc:
            _fail(exc)
    table = Table("ID", "NAME", "STATE", "DESIRED", "IMAGE", "CPU", "MEM MB", "CREATED")
    for e in page["data"]:
        table.add_row(
            e["id"], e["name"], e["state"], e["desired_state"], e["image"],
            f"{e['cpu']:g}", str(e["memory_mb"]), e["created_at"][:19],
        )  # fmt: skip
    console.print(table)


@env_app.command("get")
def env_get(env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Show one environment as JSON."""
    with Client(api_url, api_key) as client:
        try:
            _print_json(client.get_environment(env))
        except ApiError as exc:
            _fail(exc)


def _lifecycle(
    api_url: str, api_key: str | None, env: str, op: str, target: str, wait: bool, **kw: Any
) -> None:
    with Client(api_url, api_key) as client:
        try:
            result = getattr(client, op)(env, **kw)
            if wait:
                result = _wait(client, result["id"], target, 600)
        except ApiError as exc:
            _fail(exc)
    console.print(f"{result['id']} {result['name']}: [bold]{result['state']}[/bold]")


@env_app.command("start")
def env_start(
    env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, wait: WaitFlag = True
) -> None:
    """Start a stopped environment."""
    _lifecycle(api_url, api_key, env, "start", "running", wait)


@env_app.command("stop")
def env_stop(
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    force: Annotated[bool, typer.Option(help="Kill at once")] = False,
    timeout: Annotated[float | None, typer.Option(help="Grace period (s)")] = None,
    signal: Annotated[str | None, typer.Option(help="Signal (default SIGTERM)")] = None,
    wait: WaitFlag = True,
) -> None:
    """Stop an environment (graceful unless --force); /workspace is kept."""
    _lifecycle(
        api_url, api_key, env, "stop", "stopped", wait, force=force, timeout=timeout, signal=signal
    )


@env_app.command("restart")
def env_restart(
    env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, wait: WaitFlag = True
) -> None:
    """Stop then start an environment."""
    _lifecycle(api_url, api_key, env, "restart", "running", wait)


@env_app.command("archive")
def env_archive(
    env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, wait: WaitFlag = True
) -> None:
    """Archive an environment (start restores it)."""
    _lifecycle(api_url, api_key, env, "archive", "archived", wait)


@env_app.command("rm")
def env_rm(
    env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, wait: WaitFlag = True
) -> None:
    """Delete an environment with its workspace."""
    with Client(api_url, api_key) as client:
        try:
            result = client.delete(env)
            if wait:
                result = _wait(client, result["id"], "deleted", 300)
        except ApiError as exc:
            _fail(exc)
    console.print(f"{result['id']} {result['name']}: [bold]{result['state']}[/bold]")


@env_app.command("wait")
def env_wait(
    env: str,
    state: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    timeout: Annotated[float, typer.Option(help="Seconds")] = 60,
) -> None:
    """Block until the environment reaches STATE."""
    with Client(api_url, api_key) as client:
        try:
            result = _wait(client, env, state, timeout)
        except ApiError as exc:
            _fail(exc)
    console.print(f"{result['id']} {result['name']}: [bold]{result['state']}[/bold]")


@env_app.command(
    "exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def env_exec(
    ctx: typer.Context,
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    cwd: Annotated[str | None, typer.Option(help="Working directory")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds before the tree is killed")] = None,
) -> None:
    """Run a command in a running environment, streaming its output:
    `sandbay env exec ENV -- python3 -V`. Exits with the command's exit code."""
    argv = list(ctx.args)
    if not argv:
        raise typer.BadParameter("give the command after --")
    code = 1
    with Client(api_url, api_key, timeout=None) as client:
        try:
            for event, data in client.exec_stream(env, argv, cwd=cwd, timeout=timeout):
                if event == "stdout":
                    sys.stdout.write(data["data"])
                    sys.stdout.flush()
                elif event == "stderr":
                    sys.stderr.write(data["data"])
                    sys.stderr.flush()
                elif event == "exit":
                    code = int(data["exit_code"]) if data["exit_code"] is not None else 1
                    if data.get("timed_out"):
                        err_console.print("[red]timed out[/red]")
                elif event == "error":
                    err_console.print(f"[red]error[/red] {data['type']}: {data['message']}")
        except ApiError as exc:
            _fail(exc)
    raise typer.Exit(code)


@env_app.command("logs")
def env_logs(
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    tail: Annotated[int | None, typer.Option(help="Last N lines")] = None,
) -> None:
    """Show the workload's output."""
    with Client(api_url, api_key) as client:
        try:
            sys.stdout.write(client.logs(env, tail=tail))
        except ApiError as exc:
            _fail(exc)


@env_app.command("cp")
def env_cp(
    source: str,
    dest: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Copy a file in or out: `sandbay env cp ./f ENV:/workspace/f` or
    `sandbay env cp ENV:/workspace/f ./f` (streamed both ways)."""
    with Client(api_url, api_key, timeout=None) as client:
        try:
            if ":" in source and not Path(source).exists():
                env, path = source.split(":", 1)
                with Path(dest).open("wb") as out:
                    size = client.download(env, path, out)
            else:
                env, path = dest.split(":", 1)
                with Path(source).open("rb") as data:
                    size = client.upload(env, path, data).get("size", 0)
        except ApiError as exc:
            _fail(exc)
        except ValueError:
            raise typer.BadParameter("one side must be ENV:/path") from None
    console.print(f"{size} bytes")


@env_app.command("events")
def env_events(env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Show an environment's audit log."""
    with Client(api_url, api_key) as client:
        try:
            page = client.environment_events(env)
        except ApiError as exc:
            _fail(exc)
    table = Table("ID", "TIME", "TYPE", "ACTOR", "FROM", "TO", "REASON")
    for e in page["data"]:
        table.add_row(
            str(e["id"]), e["created_at"][11:23], e["type"], e["actor"],
            e["from_state"] or "", e["to_state"] or "", e["reason"] or "",
        )  # fmt: skip
    console.print(table)


@key_app.command("create")
def key_create(
    name: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    permission: Annotated[
        list[str] | None, typer.Option("--permission", "-p", help="Scoped key permission")
    ] = None,
) -> None:
    """Create a key (organization key unless --permission is given)."""
    with Client(api_url, api_key) as client:
        try:
            _print_json(client.create_key(name, permissions=permission))
        except ApiError as exc:
            _fail(exc)


@key_app.command("ls")
def key_ls(api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """List keys (never their secrets)."""
    with Client(api_url, api_key) as client:
        try:
            keys = client.list_keys()
        except ApiError as exc:
            _fail(exc)
    table = Table("ID", "NAME", "KIND", "PREFIX", "PERMISSIONS", "REVOKED")
    for k in keys:
        table.add_row(
            k["id"], k["name"], k["kind"], k["prefix"],
            ",".join(k["permissions"]), k["revoked_at"] or "",
        )  # fmt: skip
    console.print(table)


@key_app.command("rm")
def key_rm(key_id: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Revoke a key."""
    with Client(api_url, api_key) as client:
        try:
            _print_json(client.revoke_key(key_id))
        except ApiError as exc:
            _fail(exc)


@org_app.command("create")
def org_create(name: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Create an organization and print its first key (needs SANDBAY_ADMIN_KEY's value)."""
    with Client(api_url, api_key) as client:
        try:
            _print_json(client.create_org(name))
        except ApiError as exc:
            _fail(exc)


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
