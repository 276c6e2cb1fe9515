"""Every route the app serves, read from its route table (the OpenAPI document leaves
out WebSocket routes and those with `include_in_schema=False`), so matrix tests cover
what the server really answers, not only what it documents."""

import re
from dataclasses import dataclass
from functools import cache

from fastapi.routing import iter_route_contexts

from sandbay.app import create_app
from sandbay.settings import Settings

_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """One method of one path: `method` is `WS` for a WebSocket route."""

    method: str
    path: str
    params: tuple[str, ...]
    in_schema: bool

    @property
    def websocket(self) -> bool:
        return self.method == "WS"

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@cache
def app_routes() -> tuple[RouteInfo, ...]:
    """Every (method, path) of a freshly built app (nothing is started: the platform
    is built by the lifespan, which does not run here), HEAD left out."""
    app = create_app(Settings())
    found: list[RouteInfo] = []
    for route in iter_route_contexts(app.router.routes):
        path = route.path_format or route.path
        if not path:
            continue
        params = tuple(_PARAM.findall(path))
        in_schema = bool(getattr(route, "include_in_schema", False))
        if "WebSocket" in type(route.original_route).__name__:
            found.append(RouteInfo("WS", path, params, in_schema=False))
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append(RouteInfo(method, path, params, in_schema))
    return tuple(found)


# --- The matrix: which id kind each path parameter names, and how a case is called ---

#: Path parameters named the same on every route, and the kind of object they name.
PARAM_KINDS: dict[str, str] = {
    "env": "env",
    "environment_id": "env",
    "sandboxIdOrName": "env",
    "sandboxId": "env",
    "appId": "env",
    "instance_id": "env",  # a Chowder instance is an environment
    "key_id": "key",
    "org_id": "org",
    "work_id": "work",
    "process_id": "process",
    "credential_id": "ssh_credential",
    "run_id": "agent_run",
    "volumeId": "volume",
    "commandId": "daytona_command",
    "secretId": "secret",
    "session_id": "chowder_session",
    "token": "preview_token",
    "snapshot_id": "env_snapshot",
    "runner_id": "runner",
}

#: Parameters whose name says nothing by itself (`id`, `name`, `sessionId`): their
#: kind by the path before them. A new route using one of these names fails the
#: meta-test until it is added here.
PREFIX_KINDS: dict[tuple[str, str], str] = {
    ("/api/v1/environments/", "id"): "env",
    ("/snapshots/", "id"): "snapshot",
    ("/warm-pools/", "id"): "warm_pool",
    ("/toolbox/{sandboxId}/process/interpreter/context/", "id"): "interpreter_context",
    ("/v1/model-providers/", "name"): "model_provider",
    ("/v1/secrets/", "secret"): "org_secret",
    ("/volumes/by-name/", "name"): "volume_name",
    ("/toolbox/{sandboxId}/process/session/", "sessionId"): "daytona_session",
    ("/toolbox/{sandboxId}/process/pty/", "sessionId"): "pty_session",
}

#: Parameters that are not ids: the same value on both sides of a comparison.
VALUES: dict[str, str] = {
    "port": "8080",
    "interval": "30",
    "ttlMinutes": "30",
    "isPublic": "false",
    "rest": "status",
    # The dashboard's page shell echoes it and looks nothing up (its script asks the
    # API, whose routes are in the matrix).
    "dashboard_env": "env_dashboard",
}


def param_kind(path: str, param: str) -> str | None:
    """The id kind `param` names on `path`, `value` for a plain value, None if unknown."""
    if param in VALUES:
        return "value"
    prefix = path.split("{" + param, 1)[0]
    return PREFIX_KINDS.get((prefix, param), PARAM_KINDS.get(param))


def unnamed_parameters() -> list[str]:
    """Every `route: parameter` this module cannot name (the meta-test wants none)."""
    return [
        f"{r.label}: {p}" for r in app_routes() for p in r.params if param_kind(r.path, p) is None
    ]


@dataclass(frozen=True, slots=True)
class Case:
    route: RouteInfo
    kinds: tuple[tuple[str, str], ...]  # (parameter, kind) in path order


def _destructive(route: RouteInfo) -> bool:
    """Calls that would end the shared environment if a check were missing run last."""
    tail = route.path.rsplit("/", 1)[-1]
    return route.method == "DELETE" or tail in {"stop", "archive", "delete", "pause", "restart"}


def _kinds(route: RouteInfo) -> tuple[tuple[str, str], ...]:
    """Work queues live on self-hosted environments: their routes name that one."""
    kinds = tuple((p, param_kind(route.path, p) or "unknown") for p in route.params)
    if "work" in route.path.split("/"):
        kinds = tuple((p, "work_env" if k == "env" else k) for p, k in kinds)
    return kinds


#: Served by the preview router in front of the routes (no route of its own).
PREVIEW = RouteInfo("GET", "/preview/{env}/{port}/", ("env", "port"), in_schema=False)


def cases() -> list[Case]:
    """One case per (method, path) with a path parameter that names an id."""
    found = [Case(r, _kinds(r)) for r in (*app_routes(), PREVIEW) if r.params]
    found = [c for c in found if any(kind != "value" for _, kind in c.kinds)]
    return sorted(found, key=lambda c: (_destructive(c.route), c.route.path, c.route.method))


def case_id(case: object) -> str:
    return case.route.label if isinstance(case, Case) else str(case)
