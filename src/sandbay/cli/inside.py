"""`sandbay env files …`, `env metrics`, `env events -f` and the progress bars of
`env cp`: what is inside a running environment, and its audit log followed live."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, BinaryIO, cast

import httpx
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from sandbay.cli._client import (
    DEFAULT_URL,
    ApiKey,
    ApiUrl,
    Output,
    OutputOpt,
    api_client,
    console,
    emit,
    err_console,
    fail,
    id_table,
    output_format,
    print_json,
)
from sandbay.sdk import ApiError

files_app = typer.Typer(no_args_is_help=True, help="Files inside an environment")

PathArg = Annotated[str, typer.Argument(help="Absolute path inside the environment")]
EVENT_COLUMNS = ["ID", "TIME", "TYPE", "ACTOR", "FROM", "TO", "REASON"]


def _files(path: str) -> str:
    return f"/v1/environments/{path}/files"


@files_app.command("ls")
def files_ls(
    env: str,
    path: Annotated[str, typer.Argument(help="Directory")] = "/workspace",
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    output: OutputOpt = None,
) -> None:
    """List a directory (directories first)."""
    with api_client(api_url, api_key) as client:
        listed = client.request("GET", f"{_files(env)}/list", params={"path": path})
    emit(listed, output, _files_table)


def _files_table(listed: dict[str, Any]) -> Table:
    rows = [
        [f["mode"], f["owner"] or "", str(f["size"]), f["modified_at"][:19],
         f["name"] + ("/" if f["is_dir"] else "")]
        for f in listed["data"]
    ]  # fmt: skip
    return id_table(["MODE", "OWNER", "SIZE", "MODIFIED", "NAME"], rows, ids=["NAME"])


@files_app.command("rm")
def files_rm(
    env: str,
    path: PathArg,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="A directory and all it holds")
    ] = False,
) -> None:
    """Delete a file, an empty directory, or (-r) a whole tree."""
    params = {"path": path, "recursive": recursive}
    with api_client(api_url, api_key) as client:
        client.request("DELETE", _files(env), params=params)
    console.print(f"removed {path}")


@files_app.command("mkdir")
def files_mkdir(
    env: str,
    path: PathArg,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    mode: Annotated[str, typer.Option(help="Permission bits, octal")] = "0755",
) -> None:
    """Make a directory and its missing parents (no error if it exists)."""
    with api_client(api_url, api_key) as client:
        made = client.request("POST", f"{_files(env)}/mkdir", json={"path": path, "mode": mode})
    print_json(made)


def env_metrics(
    env: str,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    since: Annotated[str | None, typer.Option(help="ISO time (default: the last hour)")] = None,
    limit: Annotated[int, typer.Option(help="At most this many samples")] = 1000,
    output: OutputOpt = None,
) -> None:
    """Resource samples over time, oldest first: CPU, memory, network, pids."""
    params: dict[str, Any] = {"limit": limit}
    if since:
        params["since"] = since
    with api_client(api_url, api_key) as client:
        history = client.request("GET", f"/v1/environments/{env}/metrics", params=params)
    emit(history, output, _metrics_table)


def _mib(value: int | None) -> str:
    return "" if value is None else f"{value / 2**20:.1f}"


def _metrics_table(history: dict[str, Any]) -> Table:
    rows = [
        [m["timestamp"][:19], f"{m['cpu_percent']:.1f}", _mib(m["memory_bytes"]),
         _mib(m["memory_limit_bytes"]), str(m["network_rx_bytes"]), str(m["network_tx_bytes"]),
         str(m["pids"]), "yes" if m["online"] else "no"]
        for m in history["data"]
    ]  # fmt: skip
    columns = ["TIME", "CPU %", "MEM MiB", "LIMIT MiB", "RX B", "TX B", "PIDS", "ONLINE"]
    return id_table(columns, rows, ids=["TIME"])


def event_row(e: dict[str, Any]) -> list[str]:
    return [
        str(e["id"]), e["created_at"][11:23], e["type"], e["actor"],
        e["from_state"] or "", e["to_state"] or "", e["reason"] or "",
    ]  # fmt: skip


def _event_line(e: dict[str, Any]) -> str:
    change = f" {e['from_state']} → {e['to_state']}" if e["to_state"] else ""
    reason = f" ({e['reason']})" if e["reason"] else ""
    return f"{e['created_at'][:23]} {e['id']} {e['type']}{change} by {e['actor']}{reason}"


def server_sent(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The `data:` payloads of a server-sent event stream, as they come."""
    data: list[str] = []
    for line in response.iter_lines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            yield json.loads("\n".join(data))
            data = []


def follow_events(api_url: str, api_key: str | None, env: str, output: Output | None) -> int:
    """Print the environment's events as they happen (one line each, or one JSON
    object a line), until the stream ends or Ctrl-C; a dropped stream is resumed
    after the last event seen."""
    as_json = output_format(output, Output.table) is Output.json
    headers = {"X-API-KEY": api_key} if api_key else {}
    url = f"{api_url.rstrip('/')}/v1/environments/{env}/events"
    last: int | None = None
    with httpx.Client(headers=headers, timeout=httpx.Timeout(30, read=None)) as http:
        while True:
            params: dict[str, Any] = {"follow": True}
            if last is not None:
                params["after"] = last
            try:
                with http.stream("GET", url, params=params) as response:
                    if response.status_code >= 400:
                        raise api_error(response)
                    for event in server_sent(response):
                        last = event["id"]
                        console.print(
                            json.dumps(event) if as_json else _event_line(event),
                            soft_wrap=True,
                            markup=False,
                            highlight=False,
                        )
            except ApiError as exc:
                raise fail(exc) from exc
            except httpx.TransportError as exc:
                if last is None:  # never connected: the server is not there
                    raise fail(ApiError(0, "connection_error", f"{url}: {exc}")) from exc
                err_console.print(f"[yellow]stream interrupted[/yellow] ({exc}); resuming")


def api_error(response: httpx.Response) -> ApiError:
    response.read()
    try:
        err = response.json()["error"]
        return ApiError(response.status_code, err["type"], err["message"])
    except (ValueError, KeyError, TypeError):
        return ApiError(response.status_code, "api_error", response.text[:500])


class _Counted:
    """A writable file that advances a progress bar with what is written to it."""

    def __init__(self, out: BinaryIO, progress: Progress, task: Any) -> None:
        self._out, self._progress, self._task = out, progress, task

    def write(self, chunk: bytes) -> int:
        self._progress.advance(self._task, len(chunk))
        return self._out.write(chunk)


class Transfer:
    def __init__(self, progress: Progress, task: Any) -> None:
        self._progress, self._task = progress, task

    def reader(self, data: BinaryIO) -> BinaryIO:
        return self._progress.wrap_file(data, task_id=self._task)

    def writer(self, out: BinaryIO) -> BinaryIO:
        return cast(BinaryIO, _Counted(out, self._progress, self._task))


@contextmanager
def transfer(description: str, total: int | None) -> Iterator[Transfer]:
    """A progress bar (bytes, speed) on stderr for a copy; hidden when stderr is not
    a terminal, so scripts see only the result line."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    with progress:
        yield Transfer(progress, progress.add_task(description, total=total))
