"""Snapshots and fork on real Docker: a running environment with 1 GB in /workspace
and files in its root layer forks into 5 copies whose every file is byte-identical,
while the source keeps answering exec (frozen only for the copy); writes in one
copy are seen nowhere else; a stopped environment's snapshot outlives its source
and makes a new environment by name; the quota, deletion and tenants hold."""

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.factories import assert_envelope, delete, running_env, stop, wait_state
from tests.support.inside import run, sh
from tests.support.polling import eventually
from tests.support.server import ADMIN_KEY, LiveServer

FILES = "/workspace/big /workspace/d/small /opt/x/f"
#: A file of the image the source deletes: it must stay deleted in every copy.
DELETED_FILE = "/etc/debian_version"
SEED = (
    "head -c 1G /dev/urandom > /workspace/big && mkdir -p /workspace/d /opt/x && "
    "echo small > /workspace/d/small && echo layer > /opt/x/f && "
    f"chown 1234:2345 /opt/x/f && rm {DELETED_FILE}"
)


def _digests(api: httpx.Client, env: str) -> str:
    return sh(api, env, f"sha256sum {FILES} && stat -c '%u:%g' /opt/x/f")


def _ready(api: httpx.Client, snapshot_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = api.get(f"/v1/snapshots/{snapshot_id}")
        assert found.status_code == 200, found.text
        body: dict[str, Any] = found.json()
        assert body["state"] != "failed", body.get("error")
        return body if body["state"] == "ready" else None

    return dict(eventually(check, what=f"snapshot {snapshot_id} ready", timeout=120))


@pytest.fixture(scope="module")
def source(server: LiveServer) -> Iterator[dict[str, Any]]:
    """One running environment with 1 GB in /workspace and files in its layer."""
    with server.client() as api:
        env = running_env(api, name=f"fork-src-{uuid.uuid4().hex[:8]}", labels={"team": "a"})
        sh(api, env["id"], SEED)
        yield {**env, "digests": _digests(api, env["id"])}
        delete(api, env["id"])


@pytest.mark.usefixtures("sqlite_only")  # 6 GB of copies: the engine's work, not the database's
def test_fork_of_running_environment_copies_every_file_while_it_answers_exec(
    api: httpx.Client, source: dict[str, Any]
) -> None:
    src = source["id"]
    answered: list[tuple[float, int]] = []  # (when it answered, exit code)
    done = threading.Event()

    def keep_asking() -> None:
        while not done.is_set():
            code = run(api, src, "echo alive")["exit_code"]
            answered.append((time.monotonic(), code))

    asker = threading.Thread(target=keep_asking)
    asker.start()
    prefix = f"fork-{uuid.uuid4().hex[:6]}"
    try:
        began = time.monotonic()
        response = api.post(
            f"/v1/environments/{src}/fork",
            json={"count": 5, "name_prefix": prefix, "labels": {"b": "1"}},
        )
        assert response.status_code == 202, response.text
        result = response.json()
        snapshot = _ready(api, result["snapshot"]["id"])
        forks = [wait_state(api, e["id"], "running", timeout=120) for e in result["environments"]]
        ended = time.monotonic()
    finally:
        done.set()
        asker.join()
    try:
        assert {code for _, code in answered} == {0}
        assert len([at for at, _ in answered if began < at < ended]) >= 3
        assert snapshot["frozen_ms"] is not None and snapshot["frozen_ms"] >= 0
        assert snapshot["size_bytes"] >= 1024 * 1024 * 1024
        assert api.get(f"/v1/environments/{src}").json()["state"] == "running"
        assert len({f["id"] for f in forks} | {src}) == 6
        assert len({f["container_id"] for f in forks}) == 5
        assert sorted(f["name"] for f in forks) == [f"{prefix}-{i}" for i in range(1, 6)]
        for fork in forks:
            assert fork["labels"] == {"team": "a", "b": "1"}
            assert _digests(api, fork["id"]) == source["digests"]
            assert run(api, fork["id"], f"test -e {DELETED_FILE}")["exit_code"] == 1
            listed = api.get(f"/v1/environments/{fork['id']}/ssh/credentials")
            assert listed.status_code == 200 and listed.json()["data"] == [], listed.text
        hostnames = {sh(api, f["id"], "cat /etc/hostname") for f in [*forks, source]}
        assert len(hostnames) == 6
        one, others = forks[0]["id"], [f["id"] for f in forks[1:]] + [src]
        sh(api, one, "echo mine > /workspace/only-one && echo mine > /opt/x/only-one")
        sh(api, one, "echo changed > /workspace/d/small")
        for other in others:
            assert run(api, other, "ls /workspace/only-one /opt/x/only-one")["exit_code"] != 0
            assert sh(api, other, "cat /workspace/d/small") == "small\n"
    finally:
        for fork in result["environments"]:
            delete(api, fork["id"])
    gone = api.delete(f"/v1/snapshots/{snapshot['id']}")
    assert gone.status_code == 202, gone.text


#: Writes without pause, in this order: a line to a log, a state file, a file in the
#: root layer. A copy of one point in time sees them at most one step apart.
WRITER = (
    'python3 -c "import os\n'
    "n = 0\n"
    "log = open('/workspace/log', 'a')\n"
    "while True:\n"
    "    n += 1\n"
    "    log.write(f'{n}\\n'); log.flush()\n"
    "    for path in ('/workspace/state', '/opt/state'):\n"
    "        open(path + '.new', 'w').write(str(n)); os.replace(path + '.new', path)\n\""
)


def test_a_busy_environment_is_copied_at_one_point_in_time(api: httpx.Client) -> None:
    """The copy is made while the writer runs, then what changed is copied again
    frozen: a change the first pass missed would show as a stale state file."""
    env = running_env(api, name=f"snap-busy-{uuid.uuid4().hex[:8]}", command=WRITER)
    sh(api, env["id"], "head -c 50M /dev/urandom > /workspace/ballast")
    made = api.post(f"/v1/environments/{env['id']}/snapshots", json={})
    assert made.status_code == 202, made.text
    snapshot = _ready(api, made.json()["id"])
    # A copy that does not run the writer: what the snapshot holds stays as it is.
    copy = running_env(api, snapshot=snapshot["id"], command="sleep infinity")
    try:
        log_n, state_n, layer_n = (
            int(x)
            for x in sh(
                api, copy["id"], "tail -n1 /workspace/log; cat /workspace/state; echo; "
                "cat /opt/state",
            ).split()
        )  # fmt: skip
        assert state_n > 1000  # it wrote all along, the copy included
        assert log_n - 1 <= state_n <= log_n and state_n - 1 <= layer_n <= state_n
    finally:
        delete(api, copy["id"])
        delete(api, env["id"])
        api.delete(f"/v1/snapshots/{snapshot['id']}")


def test_snapshot_of_stopped_environment_outlives_it_and_makes_one_by_name(
    api: httpx.Client,
) -> None:
    env = running_env(api, name=f"snap-stopped-{uuid.uuid4().hex[:8]}", env={"COLOR": "blue"})
    sh(api, env["id"], "head -c 1M /dev/urandom > /workspace/r && echo x > /opt/y")
    digests = sh(api, env["id"], "sha256sum /workspace/r /opt/y")
    stop(api, env["id"])
    wait_state(api, env["id"], "stopped")
    name = f"snap-{uuid.uuid4().hex[:8]}"
    made = api.post(f"/v1/environments/{env['id']}/snapshots", json={"name": name})
    assert made.status_code == 202, made.text
    assert made.json()["state"] == "creating"
    taken = api.post(f"/v1/environments/{env['id']}/snapshots", json={"name": name})
    assert_envelope(taken, 409, "conflict_error")
    snapshot = _ready(api, made.json()["id"])
    assert snapshot["frozen_ms"] is None  # a stopped source is not frozen
    listed = api.get(f"/v1/environments/{env['id']}/snapshots").json()
    assert [s["id"] for s in listed["data"]] == [snapshot["id"]]
    delete(api, env["id"])
    assert_envelope(api.post(f"/v1/environments/{env['id']}/fork"), 404, "not_found_error")
    copy = running_env(api, snapshot=name, labels={"extra": "1"})
    try:
        assert copy["image"] == env["image"]
        assert sh(api, copy["id"], "sha256sum /workspace/r /opt/y") == digests
        assert sh(api, copy["id"], "echo $COLOR") == "blue\n"
    finally:
        delete(api, copy["id"])
    gone = api.delete(f"/v1/snapshots/{name}")
    assert gone.status_code == 202 and gone.json()["state"] == "deleting", gone.text
    eventually(
        lambda: api.get(f"/v1/snapshots/{snapshot['id']}").status_code == 404,
        what="snapshot removed",
    )
    assert snapshot["id"] not in {s["id"] for s in api.get("/v1/snapshots").json()["data"]}
    refused = api.post("/v1/environments", json={"snapshot": name})
    assert_envelope(refused, 404, "not_found_error")


def test_snapshot_past_quota_is_refused_and_other_orgs_see_nothing(
    api: httpx.Client, server: LiveServer, source: dict[str, Any]
) -> None:
    with server.client(key=ADMIN_KEY) as admin:
        org = admin.post("/v1/orgs", json={"name": f"snapq-{uuid.uuid4().hex[:8]}"}).json()
        quotas = admin.put(f"/v1/orgs/{org['id']}/quotas", json={"max_snapshots": 1})
        assert quotas.status_code == 200 and quotas.json()["max_snapshots"] == 1, quotas.text
    with server.client(org["api_key"]["key"]) as other:
        env = running_env(other, name="q", memory_mb=64)
        try:
            first = other.post(f"/v1/environments/{env['id']}/snapshots")
            assert first.status_code == 202, first.text
            second = other.post(f"/v1/environments/{env['id']}/snapshots")
            message = assert_envelope(second, 400, "invalid_request_error")
            assert "quota_exceeded" in message and "1 of 1 snapshots" in message
            forked = other.post(f"/v1/environments/{env['id']}/fork", json={"count": 2})
            assert_envelope(forked, 400, "invalid_request_error")
            listed = other.get("/v1/snapshots").json()
            assert listed["max_snapshots"] == 1 and len(listed["data"]) == 1
            # Another organization's source and snapshot are what a random id is.
            assert_envelope(
                other.post(f"/v1/environments/{source['id']}/fork"), 404, "not_found_error"
            )
            assert_envelope(
                other.get(f"/v1/snapshots/{first.json()['id']}x"), 404, "not_found_error"
            )
            assert first.json()["id"] not in {
                s["id"] for s in api.get("/v1/snapshots").json()["data"]
            }
            assert_envelope(api.get(f"/v1/snapshots/{first.json()['id']}"), 404, "not_found_error")
            _ready(other, first.json()["id"])
        finally:
            delete(other, env["id"])


@pytest.mark.parametrize(
    "body", [{"count": 0}, {"count": 101}, {"count": "x"}, {"name_prefix": "bad name"}, {"x": 1}]
)
def test_fork_input_is_validated(api: httpx.Client, body: dict[str, Any]) -> None:
    response = api.post("/v1/environments/env_nothing/fork", json=body)
    assert_envelope(response, 400, "invalid_request_error")


def test_snapshot_routes_answer_404_for_unknown_ids(api: httpx.Client) -> None:
    for response in (
        api.post("/v1/environments/env_nothing/snapshots"),
        api.get("/v1/snapshots/snap_nothing"),
        api.delete("/v1/snapshots/snap_nothing"),
        api.post("/v1/environments", json={"snapshot": "snap_nothing"}),
    ):
        assert_envelope(response, 404, "not_found_error")
