"""What the client commands share: the API options, the consoles, the output
helpers (`--output json|table`, tables that never cut an id), the exit codes, and
`api_client`, the one place an API error becomes the red error line and its exit
code."""

import enum
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from sandbay.sdk import ApiError, Client

console = Console()
err_console = Console(stderr=True)


class Exit(enum.IntEnum):
    """Exit codes scripts can rely on (listed in `sandbay --help`)."""

    OK = 0
    API_ERROR = 1  # the API refused or failed, or could not be reached
    USAGE = 2  # a bad command line (typer's own)
    TIMED_OUT = 3  # a wait ran out of time
    NOT_FOUND = 4  # the environment, key, item… does not exist


EXIT_CODES_HELP = (
    "Exit codes: 0 ok · 1 API error · 2 usage error · 3 timed out waiting · 4 not found; "
    "`env exec` and `env ssh` exit with the command's code."
)


class Output(enum.StrEnum):
    json = "json"
    table = "table"


ApiUrl = Annotated[
    str, typer.Option("--api-url", envvar="SANDBAY_API_URL", help="Base URL of the API")
]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="SANDBAY_API_KEY", help="API key")]
WaitFlag = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the state change")]
OutputOpt = Annotated[
    Output | None,
    typer.Option(
        "--output", "-o", help="json (the API's answer) or table; default: the global --output"
    ),
]
DEFAULT_URL = "http://127.0.0.1:8080"


def exit_code(exc: ApiError) -> Exit:
    if exc.status == 404 or exc.type == "not_found_error":
        return Exit.NOT_FOUND
    if exc.status == 408 or exc.type == "timeout_error":
        return Exit.TIMED_OUT
    return Exit.API_ERROR


def fail(exc: ApiError) -> typer.Exit:
    """Print an API error as `error TYPE: MESSAGE` on stderr; the exit to raise."""
    err_console.print(f"[red]error[/red] {exc.type}: {exc.message}", soft_wrap=True)
    return typer.Exit(exit_code(exc))


@contextmanager
def api_client(api_url: str, api_key: str | None, **options: Any) -> Iterator[Client]:
    """A `Client` for the block; an `ApiError` raised in it ends the command with
    `error TYPE: MESSAGE` on stderr and its exit code (1, or 3 timed out, 4 not found)."""
    with Client(api_url, api_key, **options) as client:
        try:
            yield client
        except ApiError as exc:
            raise fail(exc) from exc


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data))


@dataclass
class Choices:
    """What the root command's options chose for this process (one command a process).
    Typer runs commands outside click's context, so they cannot read the root's."""

    output: Output | None = None


choices = Choices()


def output_format(given: Output | None, default: Output) -> Output:
    """The command's `--output`, else the global one (`sandbay --output …`), else `default`."""
    return given or choices.output or default


def id_table(columns: Sequence[str], rows: Sequence[Sequence[str]], ids: Sequence[str]) -> Table:
    """A table whose id columns (`ids`) are never wrapped nor cut, whatever the
    terminal's width: ids are what the other commands take, so they must copy whole."""
    table = Table()
    for index, name in enumerate(columns):
        if name in ids:
            widest = max((len(row[index]) for row in rows), default=len(name))
            table.add_column(name, no_wrap=True, min_width=max(widest, len(name)))
        else:
            table.add_column(name, overflow="fold", min_width=len(name))
    for row in rows:
        table.add_row(*row)
    return table


def print_table(table: Table) -> None:
    """Print a table at least as wide as its id columns need: on a narrow terminal
    its lines wrap rather than lose the end of an id."""
    needed = Measurement.get(console, console.options.update(max_width=10_000), table).minimum
    if needed <= console.width:
        console.print(table)
    else:
        Console(width=needed, force_terminal=console.is_terminal).print(table, crop=False)


def emit(
    data: Any,
    output: Output | None,
    table: Callable[[Any], Table] | None = None,
    *,
    default: Output = Output.table,
) -> None:
    """Print an API answer: as it came (json), or as the table `table` makes of it."""
    if table is None or output_format(output, default) is Output.json:
        print_json(data)
    else:
        print_table(table(data))


def pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{what} {item!r} must be KEY=VALUE")
        out[key] = value
    return out


def waiting() -> Progress:
    """A live line with a spinner and the time spent, on stderr, for long waits."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def wait_for(client: Client, env: str, state: str, timeout: float) -> dict[str, Any]:
    """Wait (at most 600 s per call, the API's limit) until `env` is in `state`."""
    with waiting() as progress:
        progress.add_task(f"waiting for {env} to be {state}…", total=None)
        remaining = timeout
        while True:
            step = min(remaining, 600)
            try:
                return client.wait(env, state, timeout=step)
            except ApiError as exc:
                remaining -= step
                if exit_code(exc) is not Exit.TIMED_OUT or remaining <= 0:
                    raise


def fields_table(obj: dict[str, Any]) -> Table:
    """One object as FIELD / VALUE rows (nested values as compact JSON)."""
    rows = [
        [key, value if isinstance(value, str) else json.dumps(value)] for key, value in obj.items()
    ]
    return id_table(["FIELD", "VALUE"], rows, ids=["FIELD"])
