"""The objects the tenant and permission matrices aim at (one of each id kind that is
cheap to make, in one organization), and one call of a case as a comparable answer:
status and body with the ids it was called with replaced by their kind, so an
answer about a real object compares equal to one about a random id."""

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.factories import delete, running_env
from tests.support.routes import VALUES, Case, RouteInfo, cases
from tests.support.server import ADMIN_KEY, LiveServer
from tests.support.work import SESSION_DATA, self_hosted_env

CASES = cases()

#: Kinds this module makes no object of (each would cost a container, a model or a
#: build): both sides of the comparison use a random id of the kind, so the case
#: still shows the environment (or other) check that comes first.
NOT_MADE = frozenset(
    {"agent_run", "warm_pool", "pty_session", "secret", "chowder_session", "runner"}
)

#: What a WebSocket route waits for after its upgrade before it looks anything up.
WS_FIRST_MESSAGE: dict[str, str] = {
    "/toolbox/{sandboxId}/process/interpreter/execute": json.dumps({"code": "print(1)"}),
}

#: What a call needs beyond its documented required inputs to reach its lookup (the
#: schema does not say it, or the route is left out of the document).
QUERY: dict[str, dict[str, str]] = {
    "/toolbox/{sandboxId}/process/pty/create-connect": {"id": "matrix"},
    "/toolbox/{sandboxId}/files/download": {"path": "/tmp/matrix"},
    "/toolbox/{sandboxId}/files/upload-v2": {"path": "/tmp/matrix"},
}
BODY: dict[str, dict[str, Any]] = {
    "/sandbox/{sandboxIdOrName}/network-settings": {"json": {"networkBlockAll": False}},
    "/v1/instances/{instance_id}/responses": {"json": {"input": "hi"}},
    "/v1/instances/{instance_id}/sessions/{session_id}/responses": {"json": {"input": "hi"}},
    "/v1/environments/{env}/files/upload": {"files": {"file": ("matrix.txt", b"matrix")}},
}

#: Routes that refuse every caller before looking anything up (not supported here,
#: operator only, or a WebSocket refused before its upgrade, which is a bare 403
#: whatever the reason): the answer still must not depend on whose id it is.
REFUSED_BEFORE_LOOKUP: dict[str, str] = {
    "POST /sandbox/{sandboxIdOrName}/fork": "not supported",
    "GET /sandbox/{sandboxIdOrName}/forks": "not supported",
    "POST /sandbox/{sandboxIdOrName}/pause": "not supported",
    "POST /sandbox/{sandboxIdOrName}/snapshot": "not supported",
    "PUT /sandbox/{sandboxIdOrName}/secrets": "not supported",
    "GET /secret/{secretId}": "not supported",
    "PATCH /secret/{secretId}": "not supported",
    "DELETE /secret/{secretId}": "not supported",
    "POST /snapshots/{id}/deactivate": "not supported",
    "GET /toolbox/{sandboxId}/git/history": "not supported",
    "DELETE /toolbox/{sandboxId}/computeruse/{rest}": "not supported",
    "GET /toolbox/{sandboxId}/computeruse/{rest}": "not supported",
    "PATCH /toolbox/{sandboxId}/computeruse/{rest}": "not supported",
    "POST /toolbox/{sandboxId}/computeruse/{rest}": "not supported",
    "PUT /toolbox/{sandboxId}/computeruse/{rest}": "not supported",
    "PUT /v1/orgs/{org_id}/quotas": "operator only",
    "GET /v1/runners/{runner_id}": "operator only",
    "POST /v1/runners/{runner_id}/drain": "operator only",
    "POST /v1/runners/{runner_id}/activate": "operator only",
    "GET /v1/environments/{env}/pty": "426: a WebSocket route",
    "GET /preview/{env}/{port}/": "takes a preview token, not an API key: 401 without one",
    "PUT /v1/model-providers/{name}": "a name is per organization: a create, refused here",
    "WS /v1/environments/{env}/pty": "refused before the upgrade",
    "WS /toolbox/{sandboxId}/process/pty/create-connect": "refused before the upgrade",
    "WS /toolbox/{sandboxId}/process/pty/{sessionId}/connect": "refused before the upgrade",
    "WS /toolbox/{sandboxId}/process/session/entrypoint/logs": "refused before the upgrade",
    "WS /toolbox/{sandboxId}/process/session/{sessionId}/command/{commandId}/logs": (
        "refused before the upgrade"
    ),
}


def looked_up(got: "Answer") -> bool:
    """Whether an answer about random ids is the not-found of a lookup."""
    return got.status in (404, 4404) or (got.status == 1008 and "not found" in got.body)


_HEX_RUN = re.compile(r"[0-9a-f-]{8,}$")
_VOLATILE = re.compile(
    r'"(timestamp|request_id|requestId|time)"\s*:\s*"[^"]*"'
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"
)


def like(value: str) -> str:
    """A random value shaped like `value` (same prefix, a fresh hex tail)."""
    match = _HEX_RUN.search(value)
    if match is None:
        return value + "-" + secrets.token_hex(6)
    tail = "".join(c if c == "-" else secrets.choice("0123456789abcdef") for c in match.group())
    return value[: match.start()] + tail


@dataclass(frozen=True)
class Answer:
    """What a call answered, comparable across real and random ids (`raw` is the
    body as sent, for the trace check, and takes no part in equality)."""

    status: int
    body: str
    raw: str = field(compare=False, default="")
    headers: str = field(compare=False, default="")
    sent: frozenset[str] = field(compare=False, default=frozenset())


@dataclass
class World:
    server: LiveServer
    key: str
    other_key: str
    real: dict[str, str]
    random: dict[str, str]
    markers: list[str]
    document: dict[str, Any]
    clients: dict[str, httpx.Client] = field(default_factory=dict)
    env_ids: list[str] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    #: Other environments of this organization, to name its objects under.
    siblings: dict[str, str] = field(default_factory=dict)

    def client(self, key: str) -> httpx.Client:
        if key not in self.clients:
            headers = {"X-API-KEY": key} if key else {}
            self.clients[key] = httpx.Client(base_url=self.server.url, headers=headers, timeout=30)
        return self.clients[key]

    def close(self, api: httpx.Client) -> None:
        for client in self.clients.values():
            client.close()
        for env_id in self.env_ids:
            delete(api, env_id)


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201, 204), response.text
    return dict(response.json() or {}) if response.content else {}


def build_world(server: LiveServer, api: httpx.Client) -> World:
    """This organization's objects, one of each kind made cheaply, and another
    organization's key."""
    tag = secrets.token_hex(6)
    name = f"matrix-{tag}"
    env = running_env(api, name=name, labels={"matrix": f"label-{tag}"})
    env_id = env["id"]
    real: dict[str, str] = {"env": env_id, "org": env["org_id"]}
    markers = [name, f"label-{tag}"]
    key = _created(api.post("/v1/keys", json={"name": f"key-{tag}", "permissions": []}))
    real["key"] = key["id"]
    markers.append(f"key-{tag}")
    hosted = self_hosted_env(api, name=f"hosted-{tag}")
    real["work_env"] = hosted["id"]
    work = api.post(f"/v1/environments/{hosted['id']}/work", json={"data": SESSION_DATA})
    real["work"] = _created(work)["id"]
    real["ssh_credential"] = _created(api.get(f"/v1/environments/{env_id}/ssh"))["id"]
    provider = f"mp-{tag}"
    _created(
        api.put(
            f"/v1/model-providers/{provider}",
            json={"kind": _provider_kind(api), "api_key": f"sk-secret-{tag}"},
        )
    )
    real["model_provider"] = provider
    markers.append(f"sk-secret-{tag}")
    org_secret = _created(
        api.post("/v1/secrets", json={"name": f"sec-{tag}", "value": f"egress-secret-{tag}"})
    )
    real["org_secret"] = org_secret["id"]
    markers += [f"sec-{tag}", f"egress-secret-{tag}", org_secret["placeholder"]]
    volume = _created(api.post("/volumes", json={"name": f"vol-{tag}"}))
    real["volume"], real["volume_name"] = volume["id"], volume["name"]
    snapshot = _created(
        api.post("/snapshots", json={"name": f"snap-{tag}", "imageName": "sandbay-base:latest"})
    )
    real["snapshot"] = snapshot["id"]
    markers.append(f"snap-{tag}")
    copied = api.post(f"/v1/environments/{env_id}/snapshots", json={"name": f"esnap-{tag}"})
    assert copied.status_code == 202, copied.text
    real["env_snapshot"] = copied.json()["id"]
    markers.append(f"esnap-{tag}")
    session_id = f"sess-{tag}"
    _created(api.post(f"/toolbox/{env_id}/process/session", json={"sessionId": session_id}))
    real["daytona_session"] = session_id
    command = _created(
        api.post(
            f"/toolbox/{env_id}/process/session/{session_id}/exec",
            json={"command": "echo matrix", "runAsync": False},
        )
    )
    real["daytona_command"] = command["cmdId"]
    context = _created(api.post(f"/toolbox/{env_id}/process/interpreter/context", json={}))
    real["interpreter_context"] = context["id"]
    process = api.post(f"/v1/environments/{env_id}/processes", json={"command": "sleep 600"})
    real["process"] = _created(process)["id"]
    signed = _created(api.get(f"/sandbox/{env_id}/ports/8080/signed-preview-url"))
    real["preview_token"] = signed["token"]
    for kind, shape in {
        "agent_run": "run_" + secrets.token_hex(16),
        "warm_pool": "pool_" + secrets.token_hex(16),
        "pty_session": "pty-" + tag,
        "secret": "secret_" + secrets.token_hex(16),
        "chowder_session": "session-" + tag,
        "runner": "runner-" + tag,
    }.items():
        real[kind] = shape
    random = {kind: like(value) for kind, value in real.items()}
    siblings = {
        "env": running_env(api, name=f"sibling-{tag}")["id"],
        "work_env": self_hosted_env(api, name=f"hosted-sibling-{tag}")["id"],
    }
    with server.client(key=ADMIN_KEY) as admin:
        other = _created(admin.post("/v1/orgs", json={"name": f"other-{tag}"}))
    document = httpx.get(f"{server.url}/openapi.json").json()
    return World(
        server=server,
        key=server.key,
        other_key=other["api_key"]["key"],
        real=real,
        random=random,
        markers=markers,
        document=document,
        env_ids=[env_id, hosted["id"], *siblings.values()],
        siblings=siblings,
    )


def _provider_kind(api: httpx.Client) -> str:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    return str(schemas["ProviderKind"]["enum"][0])


# --- calling a case ---


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def minimal(document: dict[str, Any], schema: dict[str, Any], name: str = "") -> Any:
    """The smallest value the schema accepts (required fields only), so a call gets
    past validation to the lookup the matrix is about."""
    schema = _resolve(document, schema)
    for union in ("anyOf", "oneOf", "allOf"):
        if union in schema:
            options = [s for s in schema[union] if _resolve(document, s).get("type") != "null"]
            # A command as one string, not an (empty) argv.
            options.sort(key=lambda s: _resolve(document, s).get("type") != "string")
            return minimal(document, options[0], name) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {p: minimal(document, props.get(p, {}), p) for p in schema.get("required", [])}
    if kind == "array":
        return [minimal(document, schema.get("items", {}), name)] * schema.get("minItems", 0)
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
    if kind == "boolean":
        return False
    lowered = name.lower()
    if schema.get("format") == "date-time":
        return "2026-01-01T00:00:00Z"
    if "language" in lowered:
        return "python"
    if any(part in lowered for part in ("path", "dir", "cwd", "source", "destination")):
        return "/tmp"
    if "command" in lowered or "code" in lowered:
        return "true"
    return "x" * max(1, schema.get("minLength", 1))


def _operation(world: World, route: RouteInfo) -> dict[str, Any]:
    if route.websocket or not route.in_schema:
        return {}
    return dict(world.document["paths"].get(route.path, {}).get(route.method.lower(), {}))


def request_parts(world: World, route: RouteInfo) -> dict[str, Any]:
    """Query and body for `route` from its OpenAPI operation (none when hidden)."""
    operation = _operation(world, route)
    query = {
        p["name"]: minimal(world.document, p.get("schema", {}), p["name"])
        for p in operation.get("parameters", [])
        if p.get("in") == "query" and p.get("required")
    }
    query.update(QUERY.get(route.path, {}))
    if route.path in BODY:
        return {"params": query, **BODY[route.path]}
    parts: dict[str, Any] = {"params": query}
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        parts["json"] = minimal(world.document, content["application/json"]["schema"])
    elif "multipart/form-data" in content:
        parts["files"] = {"file": ("matrix.txt", b"matrix")}
    elif content:
        parts["content"] = b"matrix"
    elif route.method in ("POST", "PUT", "PATCH") and not route.in_schema:
        parts["json"] = {}
    return parts


def path_of(
    world: World, case: Case, *, real: bool, parents: dict[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    """The path with every parameter filled (environments by `parents` when given),
    and what each filled value stands for."""
    values = {**(world.real if real else world.random), **(parents or {})}
    path, used = case.route.path, {}
    for param, kind in case.kinds:
        value = VALUES[param] if kind == "value" else values[kind]
        path = re.sub(r"{" + re.escape(param) + r"(:[^}]*)?}", value, path)
        if kind != "value":
            used[value] = f"<{kind}>"
    return path, used


def normalize(text: str, used: dict[str, str]) -> str:
    for value in sorted(used, key=len, reverse=True):
        text = text.replace(value, used[value])
    return _VOLATILE.sub("<volatile>", text)


def answer(
    world: World, case: Case, *, key: str, real: bool, parents: dict[str, str] | None = None
) -> Answer:
    """One call of `case` with `key`, on the real objects or on random ids."""
    path, used = path_of(world, case, real=real, parents=parents)
    if case.route.websocket:
        first = WS_FIRST_MESSAGE.get(case.route.path)
        return _ws_answer(world, path, key, used, first, QUERY.get(case.route.path, {}))
    response = world.client(key).request(
        case.route.method, path, **request_parts(world, case.route)
    )
    headers = json.dumps(dict(response.headers))
    return Answer(
        response.status_code,
        normalize(response.text, used),
        response.text,
        headers,
        frozenset(used),
    )


def _ws_answer(
    world: World,
    path: str,
    key: str,
    used: dict[str, str],
    first: str | None,
    query: dict[str, str],
) -> Answer:
    """A WebSocket's refusal: its HTTP status before the upgrade, or the close code
    (4000 + status) and reason after it."""
    url = world.server.url.replace("http", "ws", 1) + path
    if query:
        url += "?" + urlencode(query)
    try:
        headers = {"X-API-KEY": key} if key else {}
        with connect(url, additional_headers=headers, open_timeout=30) as socket:
            try:
                if first is not None:
                    socket.send(first)
                while True:
                    socket.recv(timeout=5)
            except TimeoutError:
                return Answer(101, "accepted and kept open", sent=frozenset(used))
            except ConnectionClosed as closed:
                rcvd = closed.rcvd
                code, reason = (rcvd.code, rcvd.reason) if rcvd else (1006, "")
                return Answer(code, normalize(reason, used), reason, sent=frozenset(used))
    except InvalidStatus as refused:
        body = refused.response.body.decode(errors="replace") if refused.response.body else ""
        return Answer(
            refused.response.status_code, normalize(body, used), body, sent=frozenset(used)
        )
    raise AssertionError("unreachable")


def assert_no_trace(world: World, got: Answer) -> None:
    """Nothing of this organization's objects in an answer: no name, label or secret,
    and no real id beyond those in the request (which a random id would echo alike)."""
    text = got.raw + got.headers
    for marker in world.markers:
        assert marker not in text, f"{marker!r} leaked: {got.raw[:500]}"
    for kind, value in world.real.items():
        if kind not in NOT_MADE and value not in got.sent:
            assert value not in text, f"{kind} {value!r} leaked: {got.raw[:500]}"


def standing(world: World) -> dict[str, Any]:
    """What this organization's objects look like, in the fields no refused call may
    change (an answer that refuses after changing something would still compare
    equal): the environment's state and labels, the key, the work item, the SSH
    credential, the process, the volume, the snapshot, the model provider."""
    api, real = world.client(world.key), world.real
    env = api.get(f"/v1/environments/{real['env']}").json()
    keys = {k["id"]: k for k in api.get("/v1/keys").json()["data"]}
    work = api.get(f"/v1/environments/{real['work_env']}/work/{real['work']}").json()
    credentials = api.get(f"/v1/environments/{real['env']}/ssh/credentials").json()["data"]
    process = api.get(f"/v1/environments/{real['env']}/processes/{real['process']}").json()
    return {
        "env": {f: env.get(f) for f in ("name", "state", "desired_state", "labels", "public")},
        "key": keys[real["key"]]["revoked_at"],
        "work": {f: work.get(f) for f in ("state", "status", "metadata", "data")},
        "ssh": [c.get("revoked_at") for c in credentials if c["id"] == real["ssh_credential"]],
        "process": process.get("status", process.get("state")),
        "volume": api.get(f"/volumes/{real['volume']}").json().get("state"),
        "snapshot": api.get(f"/snapshots/{real['snapshot']}").json().get("state"),
        "provider": api.get(f"/v1/model-providers/{real['model_provider']}").json(),
        "secret": api.get(f"/v1/secrets/{real['org_secret']}").json(),
        "session": api.get(f"/toolbox/{real['env']}/process/session/{real['daytona_session']}")
        .json()
        .get("sessionId"),
    }
