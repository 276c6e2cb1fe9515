"""`sandbay env …`: environments through the API — create, list, lifecycle,
exec, files, logs and the audit log."""

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sandbay.cli import access, inside, terminal
from sandbay.cli._client import (
    DEFAULT_URL,
    ApiKey,
    ApiUrl,
    Output,
    OutputOpt,
    WaitFlag,
    api_client,
    console,
    emit,
    err_console,
    fields_table,
    id_table,
    pairs,
    print_json,
    wait_for,
)

app = typer.Typer(no_args_is_help=True, help="Manage environments")
app.add_typer(inside.files_app, name="files")
app.command("metrics")(inside.env_metrics)
app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    access.env_ssh
)
app.command("port-forward")(access.env_port_forward)
app.command("preview")(access.env_preview)


def _print_state(env: dict[str, Any]) -> None:
    console.print(f"{env['id']} {env['name']}: [bold]{env['state']}[/bold]")


@app.command("create")
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
    domain_allow: Annotated[
        list[str] | None,
        typer.Option("--domain-allow", help="Only these host names (or *.domain) are reachable"),
    ] = None,
    domain_deny: Annotated[
        list[str] | None, typer.Option("--domain-deny", help="Host name never reachable")
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option("--secret", help="VAR=secret-name: VAR holds the secret's placeholder"),
    ] = None,
    runner_label: Annotated[
        list[str] | None,
        typer.Option("--runner-label", help="KEY=VALUE: only on a runner with this node label"),
    ] = None,
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
    body["env"] = pairs(env, "--env")
    body["labels"] = pairs(label, "--label")
    if domain_allow:
        body["network_domain_allow_list"] = domain_allow
    if domain_deny:
        body["network_domain_deny_list"] = domain_deny
    if secret:
        body["secrets"] = pairs(secret, "--secret")
    if runner_label:
        body["runner_labels"] = pairs(runner_label, "--runner-label")
    with api_client(api_url, api_key) as client:
        created = client.create_environment(**body)
        if wait:
            created = wait_for(client, created["id"], "running", 300)
    print_json(created)


@app.command("network")
def env_network(
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    block_all: Annotated[
        bool | None, typer.Option("--block-all/--no-block-all", help="No network at all")
    ] = None,
    allow_cidr: Annotated[
        list[str] | None, typer.Option("--allow-cidr", help='Only these CIDRs ("" clears)')
    ] = None,
    domain_allow: Annotated[
        list[str] | None,
        typer.Option("--domain-allow", help='Only these host names or *.domain ("" clears)'),
    ] = None,
    domain_deny: Annotated[
        list[str] | None, typer.Option("--domain-deny", help='Never these names ("" clears)')
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option("--secret", help='VAR=secret-name, replacing the map ("" clears)'),
    ] = None,
) -> None:
    """Change a running environment's network policy live (only the options given);
    it is in force when this returns."""
    body: dict[str, Any] = {}
    if block_all is not None:
        body["network_block_all"] = block_all
    for field, values in (
        ("network_allow_list", allow_cidr),
        ("network_domain_allow_list", domain_allow),
        ("network_domain_deny_list", domain_deny),
    ):
        if values is not None:
            body[field] = [v for v in values if v]
    if secret is not None:
        body["secrets"] = pairs([s for s in secret if s], "--secret")
    if not body:
        raise typer.BadParameter("give at least one of the options (see --help)")
    with api_client(api_url, api_key) as client:
        updated = client.update_environment(env, **body)
    fields = (
        "network_block_all",
        "network_allow_list",
        *(k for k in body if k != "network_block_all"),
    )
    print_json({k: updated.get(k) for k in dict.fromkeys(("id", *fields))})


@app.command("ls")
def env_ls(
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    state: Annotated[list[str] | None, typer.Option(help="Filter by state")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE")] = None,
    limit: int = 100,
    output: OutputOpt = None,
) -> None:
    """List environments (a table with whole ids, or the API's JSON page)."""
    with api_client(api_url, api_key) as client:
        page = client.list_environments(state=state, label=label, limit=limit)
    emit(page, output, _env_table)


def _env_table(page: dict[str, Any]) -> Table:
    rows = [
        [
            e["id"], e["name"], e["state"], e["desired_state"], e["image"],
            f"{e['cpu']:g}", str(e["memory_mb"]), e["created_at"][:19],
        ]
        for e in page["data"]
    ]  # fmt: skip
    columns = ["ID", "NAME", "STATE", "DESIRED", "IMAGE", "CPU", "MEM MB", "CREATED"]
    return id_table(columns, rows, ids=["ID", "NAME"])


@app.command("get")
def env_get(
    env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, output: OutputOpt = None
) -> None:
    """Show one environment (JSON, or --output table)."""
    with api_client(api_url, api_key) as client:
        found = client.get_environment(env)
    emit(found, output, fields_table, default=Output.json)


def _lifecycle(
    api_url: str,
    api_key: str | None,
    env: str,
    verb: str,
    target: str,
    wait: bool,
    *,
    wait_seconds: float = 600,
    **options: Any,
) -> None:
    """Ask for a lifecycle change (`Client.<verb>`), then wait for `target` if told to."""
    with api_client(api_url, api_key) as client:
        result = getattr(client, verb)(env, **options)
        if wait:
            result = wait_for(client, result["id"], target, wait_seconds)
    _print_state(result)


@app.command("start")
def env_start(
    env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, wait: WaitFlag = True
) -> None:
    """Start a stopped environment."""
    _lifecycle(api_url, api_key, env, "start", "running", wait)


@app.command("stop")
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


@app.command("restart")
def env_restart(
    env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, wait: WaitFlag = True
) -> None:
    """Stop then start an environment."""
    _lifecycle(api_url, api_key, env, "restart", "running", wait)


@app.command("pause")
def env_pause(
    env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, wait: WaitFlag = True
) -> None:
    """Freeze a running environment in place (memory kept, no CPU)."""
    _lifecycle(api_url, api_key, env, "pause", "paused", wait)


@app.command("resume")
def env_resume(
    env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, wait: WaitFlag = True
) -> None:
    """Thaw a paused environment where it was."""
    _lifecycle(api_url, api_key, env, "resume", "running", wait)


@app.command("fork")
def env_fork(
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    count: Annotated[int, typer.Option(help="How many copies (1-100)")] = 1,
    name_prefix: Annotated[str | None, typer.Option(help="Forks are named PREFIX-1…")] = None,
    label: Annotated[list[str] | None, typer.Option(help="KEY=VALUE added to each")] = None,
    wait: WaitFlag = True,
) -> None:
    """COUNT new environments from a live snapshot of ENV (which keeps running)."""
    with api_client(api_url, api_key) as client:
        forked = client.fork(
            env, count, name_prefix=name_prefix, labels=pairs(label, "label") or None
        )
        envs = forked["environments"]
        if wait:
            envs = [wait_for(client, e["id"], "running", 600) for e in envs]
    for e in envs:
        _print_state(e)


@app.command("archive")
def env_archive(
    env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, wait: WaitFlag = True
) -> None:
    """Archive an environment (start restores it)."""
    _lifecycle(api_url, api_key, env, "archive", "archived", wait)


@app.command("move")
def env_move(
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Runner id or hostname; default: the best other")
    ] = None,
    start: Annotated[bool, typer.Option(help="Start it there once moved")] = False,
) -> None:
    """Move ENV to another runner: archive it (if it is not), give it the runner, and
    with --start restore it there (root filesystem and /workspace as they were)."""
    with api_client(api_url, api_key) as client:
        if client.get_environment(env)["state"] != "archived":
            client.archive(env)
            wait_for(client, env, "archived", 600)
        result = client.move(env, to)
        if start:
            client.start(env)
            result = wait_for(client, env, "running", 600)
    _print_state(result)


@app.command("rm")
def env_rm(
    env: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, wait: WaitFlag = True
) -> None:
    """Delete an environment with its workspace."""
    _lifecycle(api_url, api_key, env, "delete", "deleted", wait, wait_seconds=300)


@app.command("wait")
def env_wait(
    env: str,
    state: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    timeout: Annotated[float, typer.Option(help="Seconds")] = 60,
) -> None:
    """Block until the environment reaches STATE."""
    with api_client(api_url, api_key) as client:
        result = wait_for(client, env, state, timeout)
    _print_state(result)


def _relay(events: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Write a command's streamed output as it comes; its exit code (1 if none came)."""
    code = 1
    for event, data in events:
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
    return code


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def env_exec(
    ctx: typer.Context,
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    cwd: Annotated[str | None, typer.Option(help="Working directory")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds before the tree is killed")] = None,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="Keep stdin open (with -t: a terminal)")
    ] = False,
    tty: Annotated[bool, typer.Option("--tty", "-t", help="Run it in a terminal (PTY)")] = False,
) -> None:
    """Run a command in a running environment, streaming its output:
    `sandbay env exec ENV -- python3 -V`; `sandbay env exec -it ENV -- bash` opens
    an interactive terminal (resized with yours). Exits with the command's exit code."""
    argv = list(ctx.args)
    if tty or interactive:
        raise typer.Exit(terminal.run_terminal(api_url, api_key, env, argv, cwd=cwd))
    if not argv:
        raise typer.BadParameter("give the command after --")
    with api_client(api_url, api_key, timeout=None) as client:
        code = _relay(client.exec_stream(env, argv, cwd=cwd, timeout=timeout))
    raise typer.Exit(code)


@app.command("logs")
def env_logs(
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    tail: Annotated[int | None, typer.Option(help="Last N lines")] = None,
) -> None:
    """Show the workload's output."""
    with api_client(api_url, api_key) as client:
        output = client.logs(env, tail=tail)
    sys.stdout.write(output)


@app.command("cp")
def env_cp(
    source: str,
    dest: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Copy a file in or out: `sandbay env cp ./f ENV:/workspace/f` or
    `sandbay env cp ENV:/workspace/f ./f` (streamed both ways)."""
    download = ":" in source and not Path(source).exists()
    remote, local = (source, Path(dest)) if download else (dest, Path(source))
    env, sep, path = remote.partition(":")
    if not sep:
        raise typer.BadParameter("one side must be ENV:/path")
    with api_client(api_url, api_key, timeout=None) as client:
        if download:
            with local.open("wb") as out, inside.transfer(f"{remote} → {local}", None) as bar:
                size = client.download(env, path, bar.writer(out))
        else:
            total = local.stat().st_size
            with local.open("rb") as data, inside.transfer(f"{local} → {remote}", total) as bar:
                size = client.upload(env, path, bar.reader(data)).get("size", 0)
    console.print(f"{size} bytes")


@app.command("events")
def env_events(
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events (one line each)")
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Show an environment's audit log; -f follows it live (Ctrl-C ends)."""
    if follow:
        raise typer.Exit(inside.follow_events(api_url, api_key, env, output))
    with api_client(api_url, api_key) as client:
        page = client.environment_events(env)
    emit(page, output, _events_table)


def _events_table(page: dict[str, Any]) -> Table:
    rows = [inside.event_row(e) for e in page["data"]]
    return id_table(inside.EVENT_COLUMNS, rows, ids=["ID", "TYPE"])
