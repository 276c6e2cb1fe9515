"""What the client commands share: the API options, the consoles, the output
helpers, and `api_client`, the one place an API error becomes the red error line
and exit code 1."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from sandbay.sdk import ApiError, Client

console = Console()
err_console = Console(stderr=True)

ApiUrl = Annotated[
    str, typer.Option("--api-url", envvar="SANDBAY_API_URL", help="Base URL of the API")
]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="SANDBAY_API_KEY", help="API key")]
WaitFlag = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the state change")]
DEFAULT_URL = "http://127.0.0.1:8080"


@contextmanager
def api_client(api_url: str, api_key: str | None, **options: Any) -> Iterator[Client]:
    """A `Client` for the block; an `ApiError` raised in it ends the command with
    `error TYPE: MESSAGE` on stderr and exit code 1."""
    with Client(api_url, api_key, **options) as client:
        try:
            yield client
        except ApiError as exc:
            err_console.print(f"[red]error[/red] {exc.type}: {exc.message}")
            raise typer.Exit(1) from exc


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data))


def pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{what} {item!r} must be KEY=VALUE")
        out[key] = value
    return out


def wait_for(client: Client, env: str, state: str, timeout: float) -> dict[str, Any]:
    with console.status(f"waiting for {env} to be {state}…"):
        return client.wait(env, state, timeout=timeout)
