"""`sandbay secret …`: the organization's secrets through the API — create, list,
show, delete. A value is read from a file or stdin (`--value-file -`) or a hidden
prompt, never from the command line (where shell history and `ps` would keep it),
and no answer ever shows it: environments see only its placeholder."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sandbay.cli._client import (
    DEFAULT_URL,
    ApiKey,
    ApiUrl,
    OutputOpt,
    api_client,
    emit,
    id_table,
    print_json,
)

app = typer.Typer(no_args_is_help=True, help="Manage the organization's secrets")


def _read_value(value_file: str | None) -> str:
    """The value from `value_file` ('-': stdin; one trailing newline dropped), else a
    hidden prompt."""
    if value_file is None:
        return str(typer.prompt("Value", hide_input=True))
    text = sys.stdin.read() if value_file == "-" else Path(value_file).read_text()
    return text[:-1] if text.endswith("\n") else text


@app.command("create")
def secret_create(
    name: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    value_file: Annotated[
        str | None, typer.Option(help="Read the value from this file ('-': stdin)")
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Host (or *.domain) the value is sent to; repeatable"),
    ] = None,
    description: Annotated[str | None, typer.Option(help="What it is for")] = None,
) -> None:
    """Create secret NAME (its value is prompted for unless --value-file is given)."""
    fields: dict[str, Any] = {"name": name, "value": _read_value(value_file), "hosts": host or []}
    if description is not None:
        fields["description"] = description
    with api_client(api_url, api_key) as client:
        print_json(client.create_secret(**fields))


@app.command("ls")
def secret_ls(
    api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, output: OutputOpt = None
) -> None:
    """List secrets (names, placeholders and hosts; never values)."""
    with api_client(api_url, api_key) as client:
        listed = client.list_secrets()
    emit(listed, output, _secrets_table)


def _secrets_table(listed: dict[str, Any]) -> Table:
    rows = [
        [s["id"], s["name"], s["placeholder"], ", ".join(s["hosts"]) or "*", s["updated_at"][:19]]
        for s in listed["data"]
    ]
    columns = ["ID", "NAME", "PLACEHOLDER", "HOSTS", "UPDATED"]
    return id_table(columns, rows, ["ID", "NAME", "PLACEHOLDER"])


@app.command("get")
def secret_get(secret: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Show one secret (by id or name), without its value."""
    with api_client(api_url, api_key) as client:
        print_json(client.get_secret(secret))


@app.command("rm")
def secret_rm(secret: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Delete a secret; environments given it then send its placeholder unchanged."""
    with api_client(api_url, api_key) as client:
        client.delete_secret(secret)
