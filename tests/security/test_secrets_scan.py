"""No secret in clear anywhere it could be left (issue 16). Every path that hands out
or takes a secret is driven through the real API of a server of this module's own:
organization and scoped keys (with `Idempotency-Key`, which keeps answers), a model
provider's key, SSH passwords and one-time keys (logged in with), Daytona SSH tokens
(logged in with, validated), preview tokens (opened by header, by query and cookie),
Daytona preview and signed preview URLs (opened), Daytona signing keys (rotated, a
signed URL fetched), and each environment's agent token. Then the database (every
column of every table), the server's log and data dir, and every environment (files,
each process's environment and command line, its output) are scanned for each value,
in clear, URL-encoded and base64. A control value planted in each place is found, so
the scan cannot pass by reading nothing; the columns that hold secrets hold hashes
or ciphertext that opens with the server's key only."""

import base64
import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import docker
import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from daytona import Daytona, DaytonaConfig

from tests.support.agents import (
    AGENT_IMAGE,
    new_secret,
    put_claude_provider,
    require_agent_image,
    start_model_server,
)
from tests.support.factories import running_env
from tests.support.inside_app import start_app
from tests.support.polling import eventually
from tests.support.postgres import create_database, drop_database
from tests.support.server import (
    ADMIN_KEY,
    LiveServer,
    free_port,
    new_server,
    remove_engine_objects,
)
from tests.support.ssh import SshLogin

pytestmark = pytest.mark.docker

PORT = 8000
#: The keys that protect everything else: the Fernet key and the SSH host key.
KEY_FILES = frozenset({"secrets.key", "ssh_host_ed25519_key"})
#: Where the platform, the agent and a user's tools write inside an environment.
SCANNED_DIRS = ("workspace", "tmp", "root", "home", "etc", ".sandbay", "run", "opt", "var/tmp")
MAX_FILE = 8 * 1024 * 1024


@dataclass
class Scene:
    server: LiveServer
    #: What each secret is (the report names it) → its value.
    secrets: dict[str, str] = field(default_factory=dict)
    #: Planted values each scan must find: place → value.
    controls: dict[str, str] = field(default_factory=dict)
    env_ids: list[str] = field(default_factory=list)
    #: What every environment held, read while the server ran (its shutdown kills
    #: the processes it started: nobody could read their output any more).
    inside: list[tuple[str, bytes]] = field(default_factory=list)


# --- driving every path that handles a secret ------------------------------------


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _idem() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def _keys(scene: Scene, api: httpx.Client, env_id: str) -> None:
    """A new organization's key, organization and scoped keys (created with an
    `Idempotency-Key`, used by both headers, one revoked)."""
    with scene.server.client(ADMIN_KEY) as admin:
        org = _ok(admin.post("/v1/orgs", json={"name": f"scan-{uuid.uuid4().hex[:8]}"}), 201)
    scene.secrets["key of a new organization"] = org["api_key"]["key"]
    again = _idem()
    made = _ok(api.post("/v1/keys", json={"name": "scan-org"}, headers=again), 201)
    scene.secrets["organization key"] = made["key"]
    replayed = api.post("/v1/keys", json={"name": "scan-org"}, headers=again)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert _ok(replayed, 201)["key"] == made["key"]  # the kept answer, decrypted
    scoped = {
        "name": "scan-scoped",
        "permissions": ["environments:read", "environments:exec"],
        "environment_ids": [env_id],
        "expires_at": "2099-01-01T00:00:00Z",
    }
    made = _ok(api.post("/v1/keys", json=scoped, headers=_idem()), 201)
    scene.secrets["scoped key"] = made["key"]
    url = scene.server.url + f"/v1/environments/{env_id}"
    _ok(httpx.get(url, headers={"X-API-KEY": made["key"]}))
    _ok(httpx.get(url, headers={"Authorization": f"Bearer {made['key']}"}))
    revoked = _ok(api.post("/v1/keys", json={"name": "scan-revoked"}, headers=_idem()), 201)
    scene.secrets["revoked key"] = revoked["key"]
    _ok(api.delete(f"/v1/keys/{revoked['id']}"))
    assert httpx.get(url, headers={"X-API-KEY": revoked["key"]}).status_code == 401


def _model_provider(scene: Scene, api: httpx.Client) -> None:
    """A provider's key, then a replacement."""
    for n in (1, 2):
        secret = f"sk-ant-scan{n}-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"
        body = {
            "kind": "anthropic",
            "base_url": "http://127.0.0.1:9",
            "api_key": secret,
            "models": ["claude-sonnet-4-5"],
        }
        _ok(api.put("/v1/model-providers/scan", json=body))
        scene.secrets[f"model provider key {n}"] = secret


def _ssh(scene: Scene, api: httpx.Client, env_id: str, tmp: Path) -> None:
    """A credential logged in with by its one-time key and by its password."""
    cred = _ok(api.get(f"/v1/environments/{env_id}/ssh"))
    scene.secrets["SSH password"] = cred["password"]
    body = [line for line in cred["private_key"].splitlines() if "-----" not in line]
    scene.secrets["SSH one-time private key"] = body[-2]  # its private half
    login = SshLogin.write(cred, tmp)
    done = login.ssh("echo", "by-key")
    assert done.stdout == b"by-key\n", done.stderr
    askpass = tmp / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{cred['password']}'\n")
    askpass.chmod(0o700)
    argv = [
        "ssh", "-o", f"UserKnownHostsFile={login.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
        "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
        "-p", str(cred["port"]), login.target, "echo", "by-password",
    ]  # fmt: skip
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    done = subprocess.run(
        argv, env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL, check=False
    )
    assert done.stdout == b"by-password\n", done.stderr


def _previews(scene: Scene, api: httpx.Client, env_id: str) -> None:
    """Preview tokens opened by header and by query (then by cookie), a preview link's
    token, Daytona's preview token and signed preview URL (path and host forms)."""
    base = scene.server.url
    made = _ok(
        api.post(f"/v1/environments/{env_id}/preview-token", json={"port": PORT}, headers=_idem()),
        201,
    )
    token = made["token"]
    scene.secrets["preview token"] = token
    page = f"{base}/preview/{env_id}/{PORT}/hello"
    assert httpx.get(page, headers={"X-Sandbay-Preview-Token": token}).status_code == 200
    with httpx.Client(follow_redirects=True) as browser:
        assert browser.get(page, params={"sandbay_preview_token": token}).status_code == 200
        assert browser.get(page).status_code == 200  # by the cookie
    link = _ok(api.get(f"/v1/environments/{env_id}/preview/{PORT}"))
    scene.secrets["preview link token"] = link["token"]
    assert httpx.get(page, headers={"X-Sandbay-Preview-Token": link["token"]}).status_code == 200
    daytona = _ok(api.get(f"/sandbox/{env_id}/ports/{PORT}/preview-url"))
    scene.secrets["Daytona preview token"] = daytona["token"]
    opened = httpx.get(
        f"{daytona['url']}/hello", headers={"X-Daytona-Preview-Token": daytona["token"]}
    )
    assert opened.status_code == 200
    signed = _ok(api.get(f"/sandbox/{env_id}/ports/{PORT}/signed-preview-url"))
    scene.secrets["Daytona signed preview URL token"] = signed["token"]
    assert httpx.get(f"{signed['url']}/hello").status_code == 200
    host = f"{PORT}-{signed['token']}.localhost:{scene.server.port}"
    assert httpx.get(f"{base}/hello", headers={"Host": host}).status_code == 200


def _daytona_access(scene: Scene, api: httpx.Client, env_id: str) -> None:
    """A Daytona SSH token (logged in with as the user name, validated by query) and
    the signing keys of file URLs (rotated with an `Idempotency-Key`, one URL used)."""
    access = _ok(api.post(f"/sandbox/{env_id}/ssh-access", headers=_idem()))
    scene.secrets["Daytona SSH token"] = access["token"]
    argv = [
        "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-p", str(scene.server.ssh_port), f"{access['token']}@127.0.0.1", "echo", "by-token",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert done.stdout == b"by-token\n", done.stderr
    valid = _ok(api.get("/sandbox/ssh-access/validate", params={"token": access["token"]}))
    assert valid["valid"] is True
    scene.secrets["Daytona signing key"] = _ok(api.get(f"/sandbox/{env_id}/signing-key"))
    rotated = _ok(api.post(f"/sandbox/{env_id}/signing-key/rotate", headers=_idem()))
    scene.secrets["rotated Daytona signing key"] = rotated
    sdk = Daytona(DaytonaConfig(api_key=scene.server.key, api_url=scene.server.url))
    url = sdk.get(env_id).download_url("/workspace/control.txt")
    assert httpx.get(url).content == scene.controls["environment file"].encode()


def _agent_environ(client: docker.DockerClient, env_id: str) -> dict[str, str] | None:
    """The environment of the running agent (Claude Code), read from the host."""
    for row in client.containers.get(f"sandbay-{env_id}").top(ps_args="-eo pid")["Processes"]:
        with contextlib.suppress(OSError):
            raw = Path(f"/proc/{row[0]}/environ").read_bytes().decode(errors="replace")
            pairs = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
            if "ANTHROPIC_BASE_URL" in pairs:
                return pairs
    return None


def _agent_run(scene: Scene, api: httpx.Client) -> None:
    """An agent run through the model relay: the provider's key stays outside; the
    run's relay credential (taken from the agent while it runs) is handed in."""
    client = docker.from_env()
    try:
        require_agent_image(client)
        env_id = running_env(api, name="scan-agent", image=AGENT_IMAGE)["id"]
        scene.env_ids.append(env_id)
        secret, port = new_secret("sk-ant"), free_port()
        put_claude_provider(api, "scan-relayed", port=port, secret=secret)
        scene.secrets["model provider key of an agent run"] = secret
        start_model_server(env_id, port=port, delay=1, final="Scanned.")
        body = {"prompt": "write it", "agent": "claude", "provider": "scan-relayed"}
        answer: dict[str, Any] = {}
        url = f"/v1/environments/{env_id}/agent/execute"
        runner = threading.Thread(
            target=lambda: answer.update(api.post(url, json=body, timeout=120).json())
        )
        runner.start()
        try:
            agent = eventually(lambda: _agent_environ(client, env_id), what="the agent running")
            scene.secrets["relay credential of an agent run"] = agent["ANTHROPIC_API_KEY"]
        finally:
            runner.join(120)
        assert answer["status"] == "completed", answer
    finally:
        client.close()


def _engine_tokens(scene: Scene) -> None:
    """Each environment's agent token, as the engine holds it (by design, there only)."""
    client = docker.from_env()
    try:
        for env_id in scene.env_ids:
            env = client.containers.get(f"sandbay-{env_id}").attrs["Config"]["Env"]
            token = next(e.split("=", 1)[1] for e in env if e.startswith("SANDBAY_ENVD_TOKEN="))
            scene.secrets[f"agent token of {env_id}"] = token
    finally:
        client.close()


def _plant_controls(scene: Scene, api: httpx.Client, env_id: str) -> None:
    """A value each scanned place must show (what a user put there is theirs to see)."""
    control = scene.controls
    _ok(api.put(f"/v1/environments/{env_id}/files", params={"path": "/workspace/control.txt"},
                content=control["environment file"].encode()))  # fmt: skip
    started = api.post(
        f"/v1/environments/{env_id}/processes",
        json={"command": ["sh", "-c", f"sleep 600; : {control['process command line']}"]},
    )
    _ok(started, 201)


def _drive(scene: Scene, tmp: Path) -> None:
    server = scene.server
    scene.secrets["bootstrap key (given)"] = server.key
    scene.secrets["operator key (given)"] = ADMIN_KEY
    scene.controls.update(
        {
            "database": f"label-{uuid.uuid4().hex}",
            "log": server.instance,
            "environment file": f"file-{uuid.uuid4().hex}",
            "process environment": f"var-{uuid.uuid4().hex}",
            "process command line": f"argv-{uuid.uuid4().hex}",
        }
    )
    with server.client() as api:
        env = running_env(
            api,
            name="scan",
            labels={"control": scene.controls["database"]},
            env={"SCAN_CONTROL": scene.controls["process environment"]},
        )
        env_id = env["id"]
        scene.env_ids.append(env_id)
        start_app(api, env_id, PORT)
        _plant_controls(scene, api, env_id)
        _keys(scene, api, env_id)
        _model_provider(scene, api)
        _ssh(scene, api, env_id, tmp)
        _previews(scene, api, env_id)
        _daytona_access(scene, api, env_id)
        _agent_run(scene, api)
    _engine_tokens(scene)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, database_url: str | None) -> Iterator[Scene]:
    """Everything driven on a server of this module's own; its environments are read,
    then it is stopped (its log complete, its audit flushed)."""
    own_url = create_database() if database_url else None
    server = new_server(tmp_path_factory.mktemp("scan-servers"), database_url=own_url).start()
    built = Scene(server=server)
    try:
        _drive(built, tmp_path_factory.mktemp("scan-ssh"))
        built.inside = _environments(server.instance)
        server.stop()
        yield built
    finally:
        server.stop()
        remove_engine_objects(server.instance)
        if own_url:
            drop_database(own_url)


# --- scanning ----------------------------------------------------------------------


def _forms(secret: str) -> dict[str, bytes]:
    """How a value may be written: clear, URL-encoded, and base64 (standard and URL
    alphabets, at each of the three alignments it can start at in a longer text)."""
    raw = secret.encode()
    forms = {"clear": raw, "URL-encoded": quote(secret, safe="").encode()}
    forms["form-encoded"] = quote_plus(secret).encode()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        stable = encoded[4 if shift else 0 : -4]  # the characters only the secret decides
        forms[f"base64+{shift}"] = stable
        forms[f"urlsafe base64+{shift}"] = stable.translate(bytes.maketrans(b"+/", b"-_"))
    unique: dict[bytes, str] = {}
    for form, value in forms.items():
        unique.setdefault(value, form)
    return {form: value for value, form in unique.items()}


def _hits(blobs: list[tuple[str, bytes]], values: dict[str, str]) -> list[str]:
    found = []
    for name, value in values.items():
        forms = _forms(value)
        for where, blob in blobs:
            found += [f"{name} ({form}) in {where}" for form, b in forms.items() if b in blob]
    return sorted(set(found))


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False).encode()
    return str(value).encode()


_POSTGRES_TABLES = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
)
_SQLITE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"


def _dump(conn: Any, catalog: str) -> list[tuple[str, bytes]]:
    """Every value of every column of every table the catalog lists (a DB-API
    connection), as stored (bytes as bytes); `table <name>` marks each table read."""
    blobs: list[tuple[str, bytes]] = []
    for (table,) in conn.execute(catalog).fetchall():
        cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 (names from the catalog)
        columns = [c[0] for c in cursor.description or ()]
        blobs.append((f"table {table}", b""))
        for row in cursor.fetchall():
            blobs += [
                (f"{table}.{c}", _as_bytes(v))
                for c, v in zip(columns, row, strict=True)
                if v is not None
            ]
    return blobs


def _database(server: LiveServer) -> list[tuple[str, bytes]]:
    if server.database_url:
        with psycopg.connect(server.database_url) as conn:
            return _dump(conn, _POSTGRES_TABLES)
    with contextlib.closing(sqlite3.connect(server.data_dir / "sandbay.db")) as conn:
        return _dump(conn, _SQLITE_TABLES)


def _data_dir(server: LiveServer) -> list[tuple[str, bytes]]:
    """Every file under the data dir (the log, the SQLite files with their free pages
    and write-ahead log) but the two key files."""
    return [
        (f"data dir {path.relative_to(server.data_dir)}", path.read_bytes())
        for path in sorted(server.data_dir.rglob("*"))
        if path.is_file() and path.name not in KEY_FILES
    ]


def _environments(instance: str) -> list[tuple[str, bytes]]:
    """Every environment of the server, read from the host so that the scan puts
    nothing inside: each process's environment and command line, the files under
    the scanned directories (through /proc/<pid>/root), and the container's output."""
    client = docker.from_env()
    blobs: list[tuple[str, bytes]] = []
    try:
        for container in client.containers.list(
            all=True, filters={"label": f"sandbay.instance={instance}"}
        ):
            name = container.name
            assert container.status == "running", f"{name} is {container.status}"
            pids = [int(row[0]) for row in container.top(ps_args="-eo pid")["Processes"]]
            for pid in pids:
                for part in ("environ", "cmdline"):
                    with contextlib.suppress(OSError):
                        blobs.append(
                            (f"{name} pid {pid} {part}", Path(f"/proc/{pid}/{part}").read_bytes())
                        )
            blobs.append((f"{name} output", container.logs()))
            root = Path(f"/proc/{pids[0]}/root")
            for top in SCANNED_DIRS:
                for dirpath, _dirs, files in os.walk(root / top):
                    for file in files:
                        path = Path(dirpath) / file
                        with contextlib.suppress(OSError):
                            if path.is_file() and path.stat().st_size <= MAX_FILE:
                                blobs.append(
                                    (f"{name} file /{path.relative_to(root)}", path.read_bytes())
                                )
    finally:
        client.close()
    return blobs


# --- what must be shown ----------------------------------------------------------------


def test_the_scan_finds_what_was_planted_in_each_place(scene: Scene) -> None:
    """A control in the database (a label), the log (the instance name), and an
    environment's files, process environment and command line: each is found where
    it was put, so an empty or unread place cannot pass the scans below."""
    controls = scene.controls
    database = _hits(_database(scene.server), {"c": controls["database"]})
    assert any("environments.labels" in hit for hit in database), database
    logged = _hits(_data_dir(scene.server), {"c": controls["log"]})
    assert any("in data dir server.log" in hit for hit in logged), logged
    inside = scene.inside
    assert any("file /workspace/control.txt" in hit
               for hit in _hits(inside, {"c": controls["environment file"]}))  # fmt: skip
    assert any("environ" in hit for hit in _hits(inside, {"c": controls["process environment"]}))
    assert any("cmdline" in hit for hit in _hits(inside, {"c": controls["process command line"]}))
    # Base64 and URL-encoded forms are recognised too.
    value = f"c/{uuid.uuid4().hex}+"  # "/" and "+" change when URL-encoded
    planted = [("b64", b"<" + base64.b64encode(b"xy" + value.encode()) + b">"),
               ("url", b"?q=" + quote(value, safe="").encode() + b"&")]  # fmt: skip
    assert set(_hits(planted, {"c": value})) == {"c (base64+2) in b64", "c (URL-encoded) in url"}


def test_no_secret_in_any_column_of_any_table(scene: Scene) -> None:
    blobs = _database(scene.server)
    tables = {where.split(" ", 1)[1] for where, _ in blobs if where.startswith("table ")}
    for table in ("api_keys", "events", "idempotency_keys", "model_providers",
                  "preview_tokens", "signing_keys", "ssh_credentials"):  # fmt: skip
        assert table in tables
    hits = _hits(blobs, scene.secrets)
    assert not hits, "\n".join(hits)


def test_no_secret_in_the_log_or_the_data_dir(scene: Scene) -> None:
    blobs = _data_dir(scene.server)
    assert {"server.log", "sandbay.db"} <= {
        w.split()[-1] for w, _ in blobs
    } or scene.server.database_url
    hits = _hits(blobs, scene.secrets)
    assert not hits, "\n".join(hits)


def test_no_platform_secret_in_any_environment(scene: Scene) -> None:
    """Nothing the platform handed out or holds is inside: not in a file, not in a
    process's environment or command line, not in the output."""
    hits = _hits(scene.inside, scene.secrets)
    assert not hits, "\n".join(hits)


def test_secret_columns_hold_hashes_or_ciphertext(scene: Scene) -> None:
    """Keys, preview tokens, SSH passwords and tokens as their SHA-256; the model
    providers' keys and the signing key as Fernet ciphertext of the server's key."""
    blobs = _database(scene.server)

    def column(name: str) -> set[str]:
        return {blob.decode() for where, blob in blobs if where == name}

    def digests(*names: str) -> set[str]:
        return {hashlib.sha256(scene.secrets[n].encode()).hexdigest() for n in names}

    keys = ("organization key", "scoped key", "revoked key", "key of a new organization")
    assert digests(*keys) <= column("api_keys.key_hash")
    previews = ("preview token", "preview link token", "Daytona preview token",
                "Daytona signed preview URL token")  # fmt: skip
    assert digests(*previews) <= column("preview_tokens.token_hash")
    assert digests("SSH password", "Daytona SSH token") <= column("ssh_credentials.password_hash")
    box = Fernet((scene.server.data_dir / "secrets.key").read_bytes())

    def opened(name: str) -> set[str]:
        return {box.decrypt(c.encode()).decode() for c in column(name)}

    providers = {scene.secrets["model provider key 2"],
                 scene.secrets["model provider key of an agent run"]}  # fmt: skip
    assert opened("model_providers.secret_ciphertext") == providers
    assert opened("signing_keys.key_ciphertext") == {scene.secrets["rotated Daytona signing key"]}
