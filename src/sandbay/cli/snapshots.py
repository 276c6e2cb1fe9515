"""`sandbay snapshot …`: snapshots of environments (root layer and /workspace)
through the API — take, list, show, delete; `sandbay env fork` makes environments
from one."""

from typing import Annotated, Any

import typer
from rich.table import Table

from sandbay.cli._client import (
    DEFAULT_URL,
    ApiKey,
    ApiUrl,
    OutputOpt,
    WaitFlag,
    api_client,
    console,
    emit,
    id_table,
    print_json,
)

app = typer.Typer(no_args_is_help=True, help="Manage snapshots of environments")


@app.command("create")
def snapshot_create(
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    name: Annotated[str | None, typer.Option(help="Unique in the organization")] = None,
    wait: WaitFlag = True,
) -> None:
    """Snapshot ENV (a running one is frozen only for the copy)."""
    with api_client(api_url, api_key) as client:
        snapshot = client.create_snapshot(env, name)
        if wait:
            with console.status(f"copying {env} into {snapshot['name']}…"):
                snapshot = client.wait_snapshot(snapshot["id"])
    print_json(snapshot)


@app.command("ls")
def snapshot_ls(
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    env: Annotated[str | None, typer.Option(help="Only this environment's")] = None,
    output: OutputOpt = None,
) -> None:
    """List snapshots with their full ids, sizes and freeze times."""
    with api_client(api_url, api_key) as client:
        listed = client.list_snapshots(env)
    emit(listed, output, _snapshots_table)


def _snapshots_table(listed: dict[str, Any]) -> Table:
    rows = [
        [s["id"], s["name"], s["environment_id"], s["state"], str(s["size_bytes"] or ""),
         "" if s["frozen_ms"] is None else f"{s['frozen_ms']:.0f}", s["created_at"]]
        for s in listed["data"]
    ]  # fmt: skip
    columns = ["ID", "NAME", "ENVIRONMENT", "STATE", "BYTES", "FROZEN MS", "CREATED"]
    return id_table(columns, rows, ["ID", "ENVIRONMENT"])


@app.command("get")
def snapshot_get(snapshot: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Show one snapshot."""
    with api_client(api_url, api_key) as client:
        print_json(client.get_snapshot(snapshot))


@app.command("rm")
def snapshot_rm(snapshot: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Delete a snapshot and its files."""
    with api_client(api_url, api_key) as client:
        print_json(client.delete_snapshot(snapshot))
