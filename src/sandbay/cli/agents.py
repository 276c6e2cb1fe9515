"""`sandbay agent …` (agent runs inside an environment, streamed as they work) and
`sandbay pool ls` (warm pools)."""

import json
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from sandbay.cli._client import (
    DEFAULT_URL,
    ApiKey,
    ApiUrl,
    Exit,
    Output,
    OutputOpt,
    api_client,
    console,
    emit,
    err_console,
    fail,
    fields_table,
    id_table,
    output_format,
)
from sandbay.cli.inside import api_error, server_sent
from sandbay.domain.agents import AgentRunStatus

app = typer.Typer(no_args_is_help=True, help="Run coding agents inside environments")
pool_app = typer.Typer(no_args_is_help=True, help="Warm pools")


@app.command("run")
def agent_run(
    env: str,
    prompt: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    agent: Annotated[str, typer.Option(help="claude, codex or builtin")] = "claude",
    model: Annotated[str | None, typer.Option(help="Default: the provider's")] = None,
    provider: Annotated[str | None, typer.Option(help="Model provider by name")] = None,
    project: Annotated[str | None, typer.Option(help="Directory under /workspace")] = None,
    git_url: Annotated[str | None, typer.Option(help="Clone this repository first")] = None,
    output: OutputOpt = None,
) -> None:
    """Run an agent on PROMPT in ENV, printing its events as they come (json: one
    event a line); exits 0 when the run succeeds, 1 otherwise."""
    fields = {"model": model, "provider": provider, "project": project, "git_url": git_url}
    body: dict[str, Any] = {"prompt": prompt, "agent": agent, "stream": True}
    body.update({k: v for k, v in fields.items() if v is not None})
    as_json = output_format(output, Output.table) is Output.json
    headers = {"X-API-KEY": api_key} if api_key else {}
    url = f"{api_url.rstrip('/')}/v1/environments/{env}/agent/execute"
    status = None
    with (
        httpx.Client(headers=headers, timeout=httpx.Timeout(30, read=None)) as http,
        http.stream("POST", url, json=body) as response,
    ):
        if response.status_code >= 400:
            raise fail(api_error(response))
        for event in server_sent(response):
            _print_event(event, as_json)
            if event["type"] == "result":
                status = event["data"].get("status")
    raise typer.Exit(Exit.OK if status == AgentRunStatus.COMPLETED else Exit.API_ERROR)


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print(json.dumps(event), soft_wrap=True, markup=False, highlight=False)
        return
    data = event["data"]
    text = data.get("text") or data.get("result") or data.get("message") or json.dumps(data)
    line = f"[{event['type']}] {text}"
    target = err_console if event["type"] == "error" else console
    target.print(line, soft_wrap=True, markup=False, highlight=False)


@app.command("ls")
def agent_ls(
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    limit: int = 50,
    output: OutputOpt = None,
) -> None:
    """The environment's agent runs, newest first."""
    with api_client(api_url, api_key) as client:
        runs = client.request("GET", f"/v1/environments/{env}/agent/runs", params={"limit": limit})
    emit(runs, output, _runs_table)


def _runs_table(runs: list[dict[str, Any]]) -> Table:
    rows = [
        [r["id"], r["agent"], r["status"], r["model"] or "", r["created_at"][:19],
         r["prompt"][:60]]
        for r in runs
    ]  # fmt: skip
    columns = ["ID", "AGENT", "STATUS", "MODEL", "CREATED", "PROMPT"]
    return id_table(columns, rows, ids=["ID"])


@app.command("get")
def agent_get(
    env: str,
    run_id: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    output: OutputOpt = None,
) -> None:
    """One agent run with its result."""
    with api_client(api_url, api_key) as client:
        run = client.request("GET", f"/v1/environments/{env}/agent/runs/{run_id}")
    emit(run, output, fields_table, default=Output.json)


@pool_app.command("ls")
def pool_ls(
    api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, output: OutputOpt = None
) -> None:
    """Warm pools: their shape, size, and members ready or warming."""
    with api_client(api_url, api_key) as client:
        pools = client.request("GET", "/v1/pools")
    emit(pools, output, _pools_table)


def _pools_table(pools: list[dict[str, Any]]) -> Table:
    rows = [
        [p["key"], p["image"], f"{p['cpu']:g}", str(p["memory_mb"]), str(p["disk_gb"]),
         str(p["size"]), str(p["ready"]), str(p["warming"])]
        for p in pools
    ]  # fmt: skip
    columns = ["KEY", "IMAGE", "CPU", "MEM MB", "DISK GB", "SIZE", "READY", "WARMING"]
    return id_table(columns, rows, ids=["KEY"])
