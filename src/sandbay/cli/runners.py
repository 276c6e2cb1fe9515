"""`sandbay runner …`: the hosts environments run on (Swarm nodes, or this host
alone) through the API — list, show, drain, activate. Operator key only
(`--api-key` or SANDBAY_API_KEY set to SANDBAY_ADMIN_KEY)."""

from typing import Any
from urllib.parse import quote

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
    id_table,
)

app = typer.Typer(no_args_is_help=True, help="Runners (Swarm nodes): list, drain, activate")


def _path(runner: str, action: str = "") -> str:
    return f"/v1/runners/{quote(runner, safe='')}{action}"


@app.command("ls")
def runner_ls(
    api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, output: OutputOpt = None
) -> None:
    """List runners with their state, availability, resources and environment counts."""
    with api_client(api_url, api_key) as client:
        listed = client.request("GET", "/v1/runners")
    emit(listed, output, _runners_table)


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _runners_table(listed: dict[str, Any]) -> Table:
    rows = [
        [r["id"], r["hostname"], r["state"], r["availability"], "yes" if r["manager"] else "",
         f"{r['cpus']:g}", str(r["memory_bytes"] // 2**20), str(r["environments"]),
         _labels(r["labels"])]
        for r in listed["data"]
    ]  # fmt: skip
    columns = ["ID", "HOSTNAME", "STATE", "AVAILABILITY", "MANAGER", "CPUS", "MEMORY MIB",
               "ENVS", "LABELS"]  # fmt: skip
    return id_table(columns, rows, ["ID"])


def _one(
    runner: str, method: str, action: str, api_url: str, api_key: str | None, output: OutputOpt
) -> None:
    """One runner's answer: the API's JSON by default, a one-row table on request."""
    with api_client(api_url, api_key) as client:
        shown = client.request(method, _path(runner, action))
    emit(shown, output, lambda one: _runners_table({"data": [one]}), default=Output.json)


@app.command("get")
def runner_get(
    runner: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, output: OutputOpt = None
) -> None:
    """Show one runner (by id or hostname)."""
    _one(runner, "GET", "", api_url, api_key, output)


@app.command("drain")
def runner_drain(
    runner: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, output: OutputOpt = None
) -> None:
    """Drain RUNNER: it gets no new environments (a Swarm node only)."""
    _one(runner, "POST", "/drain", api_url, api_key, output)


@app.command("activate")
def runner_activate(
    runner: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, output: OutputOpt = None
) -> None:
    """Make RUNNER take new environments again."""
    _one(runner, "POST", "/activate", api_url, api_key, output)
