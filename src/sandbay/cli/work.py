"""`sandbay work …`: the work items of a self-hosted environment — queue one, list,
show, stop. (`sandbay worker` is the other side: it takes and runs them.)"""

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from sandbay.cli._client import (
    DEFAULT_URL,
    ApiKey,
    ApiUrl,
    Output,
    OutputOpt,
    api_client,
    emit,
    fields_table,
    id_table,
    pairs,
    print_json,
)

app = typer.Typer(no_args_is_help=True, help="Work items of self-hosted environments")

EnvOpt = Annotated[str, typer.Option("--environment", "-e", help="Self-hosted environment")]


def _work(env: str) -> str:
    return f"/v1/environments/{env}/work"


@app.command("create")
def work_create(
    environment: EnvOpt,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    data: Annotated[str, typer.Option(help="Payload for the worker, a JSON object")] = "{}",
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", "-m", help="KEY=VALUE")
    ] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before giving up")] = None,
) -> None:
    """Queue a work item for the environment's workers."""
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise typer.BadParameter(f"--data is not JSON: {exc}") from None
    body: dict[str, Any] = {"data": payload, "metadata": pairs(metadata, "--metadata")}
    if max_attempts is not None:
        body["max_attempts"] = max_attempts
    with api_client(api_url, api_key) as client:
        print_json(client.request("POST", _work(environment), json=body))


@app.command("ls")
def work_ls(
    environment: EnvOpt,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    state: Annotated[list[str] | None, typer.Option(help="Filter by state")] = None,
    limit: int = 100,
    output: OutputOpt = None,
) -> None:
    """List work items in queue order."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state
    with api_client(api_url, api_key) as client:
        page = client.request("GET", _work(environment), params=params)
    emit(page, output, _work_table)


def _work_table(page: dict[str, Any]) -> Table:
    rows = [
        [w["id"], w["state"], w.get("worker_id") or "", w["created_at"][:19],
         json.dumps(w["data"])]
        for w in page["data"]
    ]  # fmt: skip
    return id_table(["ID", "STATE", "WORKER", "CREATED", "DATA"], rows, ids=["ID"])


@app.command("get")
def work_get(
    work_id: str,
    environment: EnvOpt,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    output: OutputOpt = None,
) -> None:
    """Show one work item."""
    with api_client(api_url, api_key) as client:
        item = client.request("GET", f"{_work(environment)}/{work_id}")
    emit(item, output, fields_table, default=Output.json)


@app.command("stop")
def work_stop(
    work_id: str,
    environment: EnvOpt,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    force: Annotated[bool, typer.Option(help="Stop at once, without the worker draining")] = False,
) -> None:
    """Stop a work item: queued ones at once, running ones after their worker drains
    (or at once with --force)."""
    with api_client(api_url, api_key) as client:
        item = client.request("POST", f"{_work(environment)}/{work_id}/stop", json={"force": force})
    print_json(item)
