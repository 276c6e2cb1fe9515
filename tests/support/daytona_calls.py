"""Every user-facing call of Daytona's official Python SDK (`daytona` 0.226.1) and the
HTTP routes it reaches, kept by hand from the SDK's source. `docs/daytona-sdk.md` is
generated from this map and the running app's route table; the reasons of the routes
sandbay refuses on purpose (a 400 saying why) are the server's own, read from
`sandbay.dialects.daytona.refused.REFUSED`, the table those routes are built from.
tests/dialects/daytona/test_sdk_coverage.py fails when the SDK has a call the map
lacks or when the document is stale.

Regenerate the document: `.venv/bin/python -m tests.support.daytona_calls`.

How calls are counted (the issue's 168, 132 outside computer use): the public methods
(`def`, not properties, static helpers or pydantic's `model_post_init`) defined on the
sync classes of `daytona/_sync/*.py`, 131 outside computer use and 36 in it
(ComputerUse, Mouse, Keyboard, Screenshot, Display, Accessibility, RecordingService),
plus the one public method only the async client has (`AsyncDaytona.close`): 132 + 36
= 168. The PTY handle's 7 methods (`daytona/handle/pty_handle.py`) are mapped too, on
top of the 168.

Routes are written `METHOD /path` as the SDK's generated clients name them (`WS` for a
WebSocket); toolbox routes are under `/toolbox/{sandboxId}`, where sandbay serves the
toolbox. A call is answered when every route it reaches is served and it is not
deliberately refused."""

import importlib
import inspect
import pkgutil
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "daytona-sdk.md"
REGENERATE = ".venv/bin/python -m tests.support.daytona_calls"
COMPUTER_USE = frozenset(
    {
        "ComputerUse",
        "Mouse",
        "Keyboard",
        "Screenshot",
        "Display",
        "Accessibility",
        "RecordingService",
    }
)
#: Pydantic's hook on Sandbox (a model): not a call a user makes.
NOT_CALLS = frozenset({"Sandbox.model_post_init"})


@dataclass(frozen=True)
class Call:
    """What one SDK call reaches: `routes` on the default path of the call; `refused`
    says why sandbay answers it with a clear 400 although the route is served for
    other values (routes refused whole carry their reason in the server's table);
    `outside` why it reaches something other than sandbay; `note` what else it may
    reach or does client side."""

    routes: tuple[str, ...]
    refused: str | None = None
    outside: str | None = None
    note: str | None = None


AUTO_PAUSE = "only 0 (never) is accepted: sandbay cannot pause (a later issue); use auto-stop"
OBJECT_STORE = (
    "uploads a build context (HTTPS only) to the S3-compatible bucket and organization "
    "prefix GET /object-storage/push-access names: the server's SANDBAY_OBJECT_STORAGE__* "
    "(without one that route, and builds with local files, answer 400)"
)
PTY_HANDLE = (
    "the handle resizes and kills through resize_pty_session's and kill_pty_session's routes"
)

#: Every call, in the SDK's class order, with what it reaches.
CALLS: dict[str, Call] = {
    # ---- Daytona ---------------------------------------------------------------
    "Daytona.create": Call(
        ("POST /sandbox", "GET /sandbox/{sandboxIdOrName}"),
        note=(
            "a build with a log callback also reads GET /sandbox/{id}/build-logs-url; an "
            "Image with local files first uploads them (ObjectStorage.upload)"
        ),
    ),
    "Daytona.delete": Call(("DELETE /sandbox/{sandboxIdOrName}", "GET /sandbox/{sandboxIdOrName}")),
    "Daytona.get": Call(("GET /sandbox/{sandboxIdOrName}",)),
    "Daytona.list": Call(("GET /sandbox",)),
    "Daytona.start": Call(
        ("POST /sandbox/{sandboxIdOrName}/start", "GET /sandbox/{sandboxIdOrName}")
    ),
    "Daytona.stop": Call(
        ("POST /sandbox/{sandboxIdOrName}/stop", "GET /sandbox/{sandboxIdOrName}")
    ),
    "Daytona.close": Call((), note="AsyncDaytona only: closes the client's HTTP sessions"),
    # ---- Sandbox ---------------------------------------------------------------
    "Sandbox.refresh_data": Call(("GET /sandbox/{sandboxIdOrName}",)),
    "Sandbox.get_user_home_dir": Call(("GET /toolbox/{sandboxId}/user-home-dir",)),
    "Sandbox.get_user_root_dir": Call(("GET /toolbox/{sandboxId}/user-home-dir",)),
    "Sandbox.get_work_dir": Call(("GET /toolbox/{sandboxId}/work-dir",)),
    "Sandbox.get_metrics_latest": Call(
        ("GET /toolbox/{sandboxId}/system/metrics",),
        note="CPU and memory from the collector's latest sample, disk (used of the quota)"
        " and page cache read inside",
    ),
    "Sandbox.get_metrics": Call(
        ("GET /config", "GET /sandbox/{sandboxId}/telemetry/metrics"),
        note="the collector's samples: CPU and memory series (no disk or page-cache history)",
    ),
    "Sandbox.create_lsp_server": Call((), note="client side: builds an LspServer"),
    "Sandbox.set_labels": Call(("PUT /sandbox/{sandboxIdOrName}/labels",)),
    "Sandbox.download_url": Call(
        ("GET /sandbox/{sandboxId}/signing-key",),
        note="signs a URL the caller then fetches: GET /toolbox/{id}/files/download",
    ),
    "Sandbox.upload_url": Call(
        ("GET /sandbox/{sandboxId}/signing-key",),
        note="signs a URL the caller then posts to: POST /toolbox/{id}/files/upload-v2",
    ),
    "Sandbox.rotate_signing_key": Call(("POST /sandbox/{sandboxId}/signing-key/rotate",)),
    "Sandbox.start": Call(
        ("POST /sandbox/{sandboxIdOrName}/start", "GET /sandbox/{sandboxIdOrName}")
    ),
    "Sandbox.recover": Call(
        ("POST /sandbox/{sandboxIdOrName}/recover", "GET /sandbox/{sandboxIdOrName}")
    ),
    "Sandbox.stop": Call(
        ("POST /sandbox/{sandboxIdOrName}/stop", "GET /sandbox/{sandboxIdOrName}")
    ),
    "Sandbox.delete": Call(("DELETE /sandbox/{sandboxIdOrName}", "GET /sandbox/{sandboxIdOrName}")),
    "Sandbox.wait_for_sandbox_start": Call(
        ("GET /sandbox/{sandboxIdOrName}",),
        note="listens on the Socket.IO event stream, polling GET when it is absent",
    ),
    "Sandbox.wait_for_sandbox_stop": Call(
        ("GET /sandbox/{sandboxIdOrName}",),
        note="listens on the Socket.IO event stream, polling GET when it is absent",
    ),
    "Sandbox.set_autostop_interval": Call(("POST /sandbox/{sandboxIdOrName}/autostop/{interval}",)),
    "Sandbox.set_public": Call(("POST /sandbox/{sandboxIdOrName}/public/{isPublic}",)),
    "Sandbox.set_auto_pause_interval": Call(
        ("POST /sandbox/{sandboxIdOrName}/autopause/{interval}",), refused=AUTO_PAUSE
    ),
    "Sandbox.set_ttl": Call(("POST /sandbox/{sandboxIdOrName}/ttl/{ttlMinutes}",)),
    "Sandbox.set_auto_archive_interval": Call(
        ("POST /sandbox/{sandboxIdOrName}/autoarchive/{interval}",)
    ),
    "Sandbox.set_auto_delete_interval": Call(
        ("POST /sandbox/{sandboxIdOrName}/autodelete/{interval}",)
    ),
    "Sandbox.update_network_settings": Call(("POST /sandbox/{sandboxIdOrName}/network-settings",)),
    "Sandbox.update_secrets": Call(("PUT /sandbox/{sandboxIdOrName}/secrets",)),
    "Sandbox.update_env": Call(("POST /toolbox/{sandboxId}/env",)),
    "Sandbox.get_preview_link": Call(("GET /sandbox/{sandboxIdOrName}/ports/{port}/preview-url",)),
    "Sandbox.create_signed_preview_url": Call(
        ("GET /sandbox/{sandboxIdOrName}/ports/{port}/signed-preview-url",)
    ),
    "Sandbox.expire_signed_preview_url": Call(
        ("POST /sandbox/{sandboxIdOrName}/ports/{port}/signed-preview-url/{token}/expire",)
    ),
    "Sandbox.archive": Call(
        ("POST /sandbox/{sandboxIdOrName}/archive", "GET /sandbox/{sandboxIdOrName}")
    ),
    "Sandbox.resize": Call(
        ("POST /sandbox/{sandboxIdOrName}/resize", "GET /sandbox/{sandboxIdOrName}")
    ),
    "Sandbox.wait_for_resize_complete": Call(("GET /sandbox/{sandboxIdOrName}",), note="polls GET"),
    "Sandbox.create_ssh_access": Call(("POST /sandbox/{sandboxIdOrName}/ssh-access",)),
    "Sandbox.revoke_ssh_access": Call(("DELETE /sandbox/{sandboxIdOrName}/ssh-access",)),
    "Sandbox.validate_ssh_access": Call(("GET /sandbox/ssh-access/validate",)),
    "Sandbox.refresh_activity": Call(("POST /sandbox/{sandboxId}/last-activity",)),
    "Sandbox.fork": Call(("POST /sandbox/{sandboxIdOrName}/fork",)),
    "Sandbox.create_snapshot": Call(
        ("POST /sandbox/{sandboxIdOrName}/snapshot", "GET /sandbox/{sandboxIdOrName}")
    ),
    "Sandbox.pause": Call(
        ("POST /sandbox/{sandboxIdOrName}/pause", "GET /sandbox/{sandboxIdOrName}")
    ),
    # ---- Process ---------------------------------------------------------------
    "Process.exec": Call(("POST /toolbox/{sandboxId}/process/execute",)),
    "Process.code_run": Call(("POST /toolbox/{sandboxId}/process/code-run",)),
    "Process.create_session": Call(("POST /toolbox/{sandboxId}/process/session",)),
    "Process.get_session": Call(("GET /toolbox/{sandboxId}/process/session/{sessionId}",)),
    "Process.get_entrypoint_session": Call(
        ("GET /toolbox/{sandboxId}/process/session/entrypoint",)
    ),
    "Process.get_session_command": Call(
        ("GET /toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}",)
    ),
    "Process.execute_session_command": Call(
        ("POST /toolbox/{sandboxId}/process/session/{sessionId}/exec",)
    ),
    "Process.get_session_command_logs": Call(
        ("GET /toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}/logs",),
        note="with callbacks, the WebSocket of get_session_command_logs_async",
    ),
    "Process.get_session_command_logs_async": Call(
        ("WS /toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}/logs",)
    ),
    "Process.get_entrypoint_logs": Call(
        ("GET /toolbox/{sandboxId}/process/session/entrypoint/logs",),
        note="with callbacks, the WebSocket of get_entrypoint_logs_async",
    ),
    "Process.get_entrypoint_logs_async": Call(
        ("WS /toolbox/{sandboxId}/process/session/entrypoint/logs",)
    ),
    "Process.send_session_command_input": Call(
        ("POST /toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}/input",)
    ),
    "Process.list_sessions": Call(("GET /toolbox/{sandboxId}/process/session",)),
    "Process.delete_session": Call(("DELETE /toolbox/{sandboxId}/process/session/{sessionId}",)),
    "Process.create_pty_session": Call(
        ("WS /toolbox/{sandboxId}/process/pty/create-connect",),
        note=PTY_HANDLE,
    ),
    "Process.connect_pty_session": Call(
        ("WS /toolbox/{sandboxId}/process/pty/{sessionId}/connect",),
        note=PTY_HANDLE,
    ),
    "Process.list_pty_sessions": Call(("GET /toolbox/{sandboxId}/process/pty",)),
    "Process.get_pty_session_info": Call(("GET /toolbox/{sandboxId}/process/pty/{sessionId}",)),
    "Process.kill_pty_session": Call(("DELETE /toolbox/{sandboxId}/process/pty/{sessionId}",)),
    "Process.resize_pty_session": Call(
        ("POST /toolbox/{sandboxId}/process/pty/{sessionId}/resize",)
    ),
    # ---- PtyHandle -------------------------------------------------------------
    "PtyHandle.is_connected": Call((), note="client side: the WebSocket's state"),
    "PtyHandle.wait_for_connection": Call(
        ("WS /toolbox/{sandboxId}/process/pty/{sessionId}/connect",)
    ),
    "PtyHandle.send_input": Call(("WS /toolbox/{sandboxId}/process/pty/{sessionId}/connect",)),
    "PtyHandle.wait": Call(("WS /toolbox/{sandboxId}/process/pty/{sessionId}/connect",)),
    "PtyHandle.disconnect": Call(("WS /toolbox/{sandboxId}/process/pty/{sessionId}/connect",)),
    "PtyHandle.resize": Call(("POST /toolbox/{sandboxId}/process/pty/{sessionId}/resize",)),
    "PtyHandle.kill": Call(("DELETE /toolbox/{sandboxId}/process/pty/{sessionId}",)),
    # ---- FileSystem ------------------------------------------------------------
    "FileSystem.create_folder": Call(("POST /toolbox/{sandboxId}/files/folder",)),
    "FileSystem.delete_file": Call(("DELETE /toolbox/{sandboxId}/files",)),
    "FileSystem.download_file": Call(("POST /toolbox/{sandboxId}/files/bulk-download",)),
    "FileSystem.download_file_stream": Call(("POST /toolbox/{sandboxId}/files/bulk-download",)),
    "FileSystem.download_files": Call(("POST /toolbox/{sandboxId}/files/bulk-download",)),
    "FileSystem.find_files": Call(("GET /toolbox/{sandboxId}/files/find",)),
    "FileSystem.get_file_info": Call(("GET /toolbox/{sandboxId}/files/info",)),
    "FileSystem.list_files": Call(("GET /toolbox/{sandboxId}/files",)),
    "FileSystem.move_files": Call(("POST /toolbox/{sandboxId}/files/move",)),
    "FileSystem.replace_in_files": Call(("POST /toolbox/{sandboxId}/files/replace",)),
    "FileSystem.search_files": Call(("GET /toolbox/{sandboxId}/files/search",)),
    "FileSystem.set_file_permissions": Call(("POST /toolbox/{sandboxId}/files/permissions",)),
    "FileSystem.upload_file": Call(("POST /toolbox/{sandboxId}/files/bulk-upload",)),
    "FileSystem.upload_files": Call(("POST /toolbox/{sandboxId}/files/bulk-upload",)),
    "FileSystem.upload_file_stream": Call(("POST /toolbox/{sandboxId}/files/bulk-upload",)),
    # ---- Git -------------------------------------------------------------------
    "Git.add": Call(("POST /toolbox/{sandboxId}/git/add",)),
    "Git.branches": Call(("GET /toolbox/{sandboxId}/git/branches",)),
    "Git.clone": Call(("POST /toolbox/{sandboxId}/git/clone",)),
    "Git.commit": Call(("POST /toolbox/{sandboxId}/git/commit",)),
    "Git.push": Call(("POST /toolbox/{sandboxId}/git/push",)),
    "Git.pull": Call(("POST /toolbox/{sandboxId}/git/pull",)),
    "Git.status": Call(("GET /toolbox/{sandboxId}/git/status",)),
    "Git.checkout_branch": Call(("POST /toolbox/{sandboxId}/git/checkout",)),
    "Git.create_branch": Call(("POST /toolbox/{sandboxId}/git/branches",)),
    "Git.delete_branch": Call(("DELETE /toolbox/{sandboxId}/git/branches",)),
    "Git.init": Call(("POST /toolbox/{sandboxId}/git/init",)),
    "Git.reset": Call(("POST /toolbox/{sandboxId}/git/reset",)),
    "Git.restore": Call(("POST /toolbox/{sandboxId}/git/restore",)),
    "Git.remote_add": Call(("POST /toolbox/{sandboxId}/git/remotes",)),
    "Git.remotes": Call(("GET /toolbox/{sandboxId}/git/remotes",)),
    "Git.remote_get": Call(("GET /toolbox/{sandboxId}/git/remotes",)),
    "Git.set_config": Call(("POST /toolbox/{sandboxId}/git/config",)),
    "Git.get_config": Call(("GET /toolbox/{sandboxId}/git/config",)),
    "Git.configure_user": Call(("POST /toolbox/{sandboxId}/git/config/user",)),
    "Git.dangerously_authenticate": Call(("POST /toolbox/{sandboxId}/git/credentials",)),
    # ---- CodeInterpreter -------------------------------------------------------
    "CodeInterpreter.run_code": Call(("WS /toolbox/{sandboxId}/process/interpreter/execute",)),
    "CodeInterpreter.create_context": Call(
        ("POST /toolbox/{sandboxId}/process/interpreter/context",)
    ),
    "CodeInterpreter.list_contexts": Call(
        ("GET /toolbox/{sandboxId}/process/interpreter/context",)
    ),
    "CodeInterpreter.delete_context": Call(
        ("DELETE /toolbox/{sandboxId}/process/interpreter/context/{id}",)
    ),
    # ---- LspServer -------------------------------------------------------------
    "LspServer.start": Call(("POST /toolbox/{sandboxId}/lsp/start",)),
    "LspServer.stop": Call(("POST /toolbox/{sandboxId}/lsp/stop",)),
    "LspServer.did_open": Call(("POST /toolbox/{sandboxId}/lsp/did-open",)),
    "LspServer.did_close": Call(("POST /toolbox/{sandboxId}/lsp/did-close",)),
    "LspServer.document_symbols": Call(("GET /toolbox/{sandboxId}/lsp/document-symbols",)),
    "LspServer.workspace_symbols": Call(("GET /toolbox/{sandboxId}/lsp/workspacesymbols",)),
    "LspServer.sandbox_symbols": Call(("GET /toolbox/{sandboxId}/lsp/workspacesymbols",)),
    "LspServer.completions": Call(("POST /toolbox/{sandboxId}/lsp/completions",)),
    # ---- SnapshotService -------------------------------------------------------
    "SnapshotService.list": Call(("GET /snapshots",)),
    "SnapshotService.delete": Call(("GET /snapshots/{id}", "DELETE /snapshots/{id}")),
    "SnapshotService.get": Call(("GET /snapshots/{id}",)),
    "SnapshotService.create": Call(
        ("POST /snapshots", "GET /snapshots/{id}"),
        note=(
            "an Image with local files first uploads them (ObjectStorage.upload); a log "
            "callback reads GET /snapshots/{id}/build-logs-url"
        ),
    ),
    "SnapshotService.activate": Call(("GET /snapshots/{id}", "POST /snapshots/{id}/activate")),
    # ---- VolumeService ---------------------------------------------------------
    "VolumeService.list": Call(("GET /volumes",)),
    "VolumeService.get": Call(
        ("GET /volumes/by-name/{name}",),
        note="with create=True, a 404 is followed by POST /volumes",
    ),
    "VolumeService.create": Call(("POST /volumes",)),
    "VolumeService.delete": Call(("DELETE /volumes/{volumeId}",)),
    # ---- SecretService ---------------------------------------------------------
    "SecretService.list": Call(("GET /secret/paginated",)),
    "SecretService.get": Call(("GET /secret/{secretId}",)),
    "SecretService.create": Call(("POST /secret",)),
    "SecretService.update": Call(("PATCH /secret/{secretId}",)),
    "SecretService.delete": Call(("DELETE /secret/{secretId}",)),
    # ---- WarmPoolService -------------------------------------------------------
    "WarmPoolService.list": Call(("GET /warm-pools",)),
    "WarmPoolService.create": Call(
        ("POST /warm-pools",),
        note="members in the shape a create naming no resources gets; target other than"
        " `local` is 400",
    ),
    "WarmPoolService.update": Call(("PATCH /warm-pools/{id}",)),
    "WarmPoolService.delete": Call(("DELETE /warm-pools/{id}",)),
    # ---- ObjectStorage ---------------------------------------------------------
    "ObjectStorage.upload": Call(("GET /object-storage/push-access",), note=OBJECT_STORE),
    # ---- ComputerUse -----------------------------------------------------------
    "ComputerUse.start": Call(("POST /toolbox/{sandboxId}/computeruse/start",)),
    "ComputerUse.stop": Call(("POST /toolbox/{sandboxId}/computeruse/stop",)),
    "ComputerUse.get_status": Call(("GET /toolbox/{sandboxId}/computeruse/process-status",)),
    "ComputerUse.get_process_status": Call(
        ("GET /toolbox/{sandboxId}/computeruse/process/{processName}/status",)
    ),
    "ComputerUse.restart_process": Call(
        ("POST /toolbox/{sandboxId}/computeruse/process/{processName}/restart",)
    ),
    "ComputerUse.get_process_logs": Call(
        ("GET /toolbox/{sandboxId}/computeruse/process/{processName}/logs",)
    ),
    "ComputerUse.get_process_errors": Call(
        ("GET /toolbox/{sandboxId}/computeruse/process/{processName}/errors",)
    ),
    # ---- Mouse -----------------------------------------------------------------
    "Mouse.get_position": Call(("GET /toolbox/{sandboxId}/computeruse/mouse/position",)),
    "Mouse.move": Call(("POST /toolbox/{sandboxId}/computeruse/mouse/move",)),
    "Mouse.down": Call(("POST /toolbox/{sandboxId}/computeruse/mouse/down",)),
    "Mouse.up": Call(("POST /toolbox/{sandboxId}/computeruse/mouse/up",)),
    "Mouse.click": Call(("POST /toolbox/{sandboxId}/computeruse/mouse/click",)),
    "Mouse.drag": Call(("POST /toolbox/{sandboxId}/computeruse/mouse/drag",)),
    "Mouse.scroll": Call(("POST /toolbox/{sandboxId}/computeruse/mouse/scroll",)),
    # ---- Keyboard --------------------------------------------------------------
    "Keyboard.type": Call(("POST /toolbox/{sandboxId}/computeruse/keyboard/type",)),
    "Keyboard.press": Call(("POST /toolbox/{sandboxId}/computeruse/keyboard/key",)),
    "Keyboard.hotkey": Call(("POST /toolbox/{sandboxId}/computeruse/keyboard/hotkey",)),
    "Keyboard.down": Call(("POST /toolbox/{sandboxId}/computeruse/keyboard/down",)),
    "Keyboard.up": Call(("POST /toolbox/{sandboxId}/computeruse/keyboard/up",)),
    # ---- Screenshot ------------------------------------------------------------
    "Screenshot.take_full_screen": Call(("GET /toolbox/{sandboxId}/computeruse/screenshot",)),
    "Screenshot.take_region": Call(("GET /toolbox/{sandboxId}/computeruse/screenshot/region",)),
    "Screenshot.take_compressed": Call(
        ("GET /toolbox/{sandboxId}/computeruse/screenshot/compressed",)
    ),
    "Screenshot.take_compressed_region": Call(
        ("GET /toolbox/{sandboxId}/computeruse/screenshot/region/compressed",)
    ),
    # ---- Display ---------------------------------------------------------------
    "Display.get_info": Call(("GET /toolbox/{sandboxId}/computeruse/display/info",)),
    "Display.get_windows": Call(("GET /toolbox/{sandboxId}/computeruse/display/windows",)),
    # ---- Accessibility ---------------------------------------------------------
    "Accessibility.get_tree": Call(("GET /toolbox/{sandboxId}/computeruse/a11y/tree",)),
    "Accessibility.find_nodes": Call(("POST /toolbox/{sandboxId}/computeruse/a11y/find",)),
    "Accessibility.focus_node": Call(("POST /toolbox/{sandboxId}/computeruse/a11y/node/focus",)),
    "Accessibility.invoke_node": Call(("POST /toolbox/{sandboxId}/computeruse/a11y/node/invoke",)),
    "Accessibility.set_node_value": Call(
        ("POST /toolbox/{sandboxId}/computeruse/a11y/node/value",)
    ),
    # ---- RecordingService ------------------------------------------------------
    "RecordingService.start": Call(("POST /toolbox/{sandboxId}/computeruse/recordings/start",)),
    "RecordingService.stop": Call(("POST /toolbox/{sandboxId}/computeruse/recordings/stop",)),
    "RecordingService.list": Call(("GET /toolbox/{sandboxId}/computeruse/recordings",)),
    "RecordingService.get": Call(("GET /toolbox/{sandboxId}/computeruse/recordings/{id}",)),
    "RecordingService.delete": Call(("DELETE /toolbox/{sandboxId}/computeruse/recordings/{id}",)),
    "RecordingService.download": Call(
        ("GET /toolbox/{sandboxId}/computeruse/recordings/{id}/download",)
    ),
}


def _public_methods(cls: type) -> list[str]:
    return [
        name
        for name, value in vars(cls).items()
        if inspect.isfunction(value) and not name.startswith("_")
    ]


def _classes(package: str) -> Iterator[tuple[str, type]]:
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        module = importlib.import_module(f"{package}.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and not name.startswith("_"):
                yield name, cls


def sdk_calls() -> list[str]:
    """The SDK's user-facing calls as `Class.method` (async-only ones under the sync
    class's name), counted as the module docstring says, plus the PTY handle."""
    from daytona.handle.pty_handle import PtyHandle

    calls = [f"{n}.{m}" for n, cls in _classes("daytona._sync") for m in _public_methods(cls)]
    for name, cls in _classes("daytona._async"):
        base = name.removeprefix("Async")
        calls += [f"{base}.{m}" for m in _public_methods(cls) if f"{base}.{m}" not in calls]
    calls += [f"PtyHandle.{m}" for m in _public_methods(PtyHandle)]
    return [c for c in calls if c not in NOT_CALLS]


# ---- the running app's routes ------------------------------------------------------------


def _shape(route: str) -> str:
    """`METHOD /a/{x}/b` with every path parameter the same: names differ between
    the SDK's clients and sandbay's routes."""
    return re.sub(r"\{[^}]*\}", "{}", route)


def _walk(routes: Iterable[Any]) -> Iterator[str]:
    for route in routes:
        if hasattr(route, "effective_candidates"):  # FastAPI's included router
            yield from _walk(route.effective_candidates())
            continue
        if hasattr(route, "routes") and not hasattr(route, "methods"):  # a Mount
            yield from _walk(route.routes)
            continue
        original = getattr(route, "original_route", route)
        concrete = getattr(route, "starlette_route", None) or route
        path = getattr(concrete, "path_format", None) or getattr(original, "path", "")
        if "WebSocket" in type(original).__name__:
            yield f"WS {path}"
        for method in getattr(route, "methods", None) or ():
            yield f"{method} {path}"


def served_routes() -> frozenset[str]:
    """The routes of sandbay's app as `create_app` builds it (nothing started)."""
    from sandbay.app import create_app
    from sandbay.settings import Settings

    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=Path(data_dir)))
    return frozenset(_shape(r) for r in _walk(app.routes))


def _pattern(path: str) -> re.Pattern[str]:
    """A FastAPI path as a regex over the SDK's paths (`{x:path}` spans segments)."""
    parts = re.split(r"(\{[^}]*\})", path)
    return re.compile(
        "".join(
            (".+" if p.endswith(":path}") else "[^/]+") if p.startswith("{") else re.escape(p)
            for p in parts
        )
        + "$"
    )


def refusals(served: frozenset[str]) -> list[tuple[str, re.Pattern[str], str]]:
    """(method, path pattern, reason) of every route the server refuses on purpose and
    serves (so the refusal is really answered), from its own table."""
    from sandbay.dialects.daytona.refused import REFUSED

    return [
        (method, _pattern(r.path), r.reason)
        for r in REFUSED
        for method in r.methods
        if _shape(f"{method} {r.path}") in served
    ]


def refusal(route: str, refused: list[tuple[str, re.Pattern[str], str]]) -> str | None:
    method, path = route.split(" ", 1)
    return next((why for m, p, why in refused if m == method and p.match(path)), None)


# ---- the document --------------------------------------------------------------------------


def verdict(call: Call, served: frozenset[str]) -> tuple[bool, str]:
    """Whether sandbay answers the call, and why (or what it does)."""
    if call.outside is not None:
        return False, call.outside
    refused = refusals(served)
    for route in call.routes:
        if (why := refusal(route, refused)) is not None:
            return False, "400: " + why
    missing = [r for r in call.routes if _shape(r) not in served]
    if missing:
        return False, "not served: " + ", ".join(f"`{r}`" for r in missing)
    if call.refused is not None:
        return False, "400: " + call.refused
    return True, call.note or ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(served: frozenset[str]) -> str:
    """docs/daytona-sdk.md for this route table."""
    rows = []
    tally: dict[str, list[int]] = {"all": [0, 0], "outside": [0, 0], "cu": [0, 0], "pty": [0, 0]}
    for name, call in CALLS.items():
        answered, why = verdict(call, served)
        cls = name.split(".")[0]
        group = "pty" if cls == "PtyHandle" else "cu" if cls in COMPUTER_USE else "outside"
        for key in {group, "all" if group != "pty" else "pty"}:
            tally[key][0] += answered
            tally[key][1] += 1
        routes = "<br>".join(f"`{r}`" for r in call.routes) or "(none)"
        rows.append(f"| `{name}` | {routes} | {'yes' if answered else 'no'} | {_cell(why)} |")
    head = [
        "# Daytona SDK coverage",
        "",
        "Every user-facing call of Daytona's official Python SDK (`daytona` 0.226.1), the",
        "HTTP routes it reaches, and whether sandbay answers it. Generated from the",
        "hand-kept map in `tests/support/daytona_calls.py` and sandbay's route table by",
        f"`{REGENERATE}`; `tests/dialects/daytona/test_sdk_coverage.py` fails when either",
        "changes and this file does not. How calls are counted: see that module.",
        "",
        "A call is answered when every route it reaches is served and sandbay does not",
        "refuse it on purpose (those answer a clear 400 saying why). Toolbox routes are",
        "under `/toolbox/{sandboxId}`; `WS` is a WebSocket.",
        "",
        f"- SDK calls answered: {tally['all'][0]} of {tally['all'][1]}",
        f"- outside computer use: {tally['outside'][0]} of {tally['outside'][1]}",
        f"- computer use: {tally['cu'][0]} of {tally['cu'][1]}",
        f"- PTY handle (besides those): {tally['pty'][0]} of {tally['pty'][1]}",
        "",
        "| Call | HTTP route(s) | Answered | Why / notes |",
        "|---|---|---|---|",
    ]
    return "\n".join(head + rows) + "\n"


def main() -> None:
    DOC.write_text(render(served_routes()))
    print(f"wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
