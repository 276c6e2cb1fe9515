"""`sandbay key …` and `sandbay org …`: API keys and organizations through the API."""

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

key_app = typer.Typer(no_args_is_help=True, help="Manage API keys")
org_app = typer.Typer(no_args_is_help=True, help="Manage organizations (operator key)")


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
    with api_client(api_url, api_key) as client:
        created = client.create_key(name, permissions=permission)
    print_json(created)


@key_app.command("ls")
def key_ls(api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None, output: OutputOpt = None) -> None:
    """List keys (never their secrets)."""
    with api_client(api_url, api_key) as client:
        keys = client.list_keys()
    emit(keys, output, _keys_table)


def _keys_table(keys: list[dict[str, Any]]) -> Table:
    rows = [
        [k["id"], k["name"], k["kind"], k["prefix"], ",".join(k["permissions"]),
         k["revoked_at"] or ""]
        for k in keys
    ]  # fmt: skip
    return id_table(["ID", "NAME", "KIND", "PREFIX", "PERMISSIONS", "REVOKED"], rows, ["ID"])


@key_app.command("rm")
def key_rm(key_id: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Revoke a key."""
    with api_client(api_url, api_key) as client:
        revoked = client.revoke_key(key_id)
    print_json(revoked)


@org_app.command("create")
def org_create(name: str, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """Create an organization and print its first key (needs SANDBAY_ADMIN_KEY's value)."""
    with api_client(api_url, api_key) as client:
        created = client.create_org(name)
    print_json(created)
