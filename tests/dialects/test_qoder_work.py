"""The Qoder dialect of work items against a live server: every row of the brief's
stop state table with the brief's request bodies, its errors and envelope, and the
worker protocol (poll, ack, heartbeat, stats, list, metadata) at Qoder's paths."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.factories import create_env, delete, scoped_key
from tests.support.server import ADMIN_KEY, LiveServer
from tests.support.work import (
    BRIEF_FIELDS,
    SESSION_DATA,
    assert_qoder_envelope,
    get_item,
    item_in_state,
    qoder,
    queue,
    self_hosted_env,
    work_transitions,
)

JSON = {"Content-Type": "application/json"}
#: force=false is "an empty body, {}, or {"force": false}" (the brief); force=true is
#: {"force": true}. Sent as the brief's curl examples send them.
GRACEFUL: dict[str, dict[str, Any]] = {
    "empty body": {},
    "{}": {"content": b"{}", "headers": JSON},
    '{"force": false}': {"content": b'{"force": false}', "headers": JSON},
}
FORCE: dict[str, Any] = {"content": b'{"force": true}', "headers": JSON}
SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture(scope="module")
def env(server: LiveServer) -> Iterator[dict[str, Any]]:
    with server.client() as api:
        created = self_hosted_env(api, name="qoder-work")
        yield created
        delete(api, created["id"])


def stop(api: httpx.Client, env: dict[str, Any], work_id: str, body: dict[str, Any]) -> Any:
    return api.post(qoder(env["id"], f"/{work_id}/stop"), **body)


def stopped_ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    item = dict(response.json())
    assert list(item) == BRIEF_FIELDS
    return item


# ---- the state table, row by row ---------------------------------------------------------


@pytest.mark.parametrize("body", GRACEFUL)
def test_graceful_stop_of_queued_item_stops_it(
    api: httpx.Client, env: dict[str, Any], body: str
) -> None:
    item = item_in_state(api, env["id"], "queued")
    done = stopped_ok(stop(api, env, item["id"], GRACEFUL[body]))
    assert done["state"] == "stopped" and SECONDS.match(done["stopped_at"])
    assert done["stop_requested_at"] is None and done["acknowledged_at"] is None


@pytest.mark.parametrize("body", GRACEFUL)
@pytest.mark.parametrize("state", ["starting", "active"])
def test_graceful_stop_of_starting_or_active_item_moves_it_to_stopping(
    api: httpx.Client, env: dict[str, Any], state: str, body: str
) -> None:
    item = item_in_state(api, env["id"], state)
    stopping = stopped_ok(stop(api, env, item["id"], GRACEFUL[body]))
    assert stopping["state"] == "stopping"
    assert SECONDS.match(stopping["stop_requested_at"]) and stopping["stopped_at"] is None
    assert SECONDS.match(stopping["acknowledged_at"])
    # The worker sees it on its next heartbeat, and may keep its lease while it drains.
    beat = api.post(qoder(env["id"], f"/{item['id']}/heartbeat"))
    assert beat.status_code == 200 and beat.json()["state"] == "stopping"


@pytest.mark.parametrize("body", GRACEFUL)
def test_graceful_stop_of_stopping_item_confirms_it_stopped(
    api: httpx.Client, env: dict[str, Any], body: str
) -> None:
    item = item_in_state(api, env["id"], "stopping")
    done = stopped_ok(stop(api, env, item["id"], GRACEFUL[body]))
    assert done["state"] == "stopped" and SECONDS.match(done["stopped_at"])
    assert done["stop_requested_at"] is not None
    assert work_transitions(api, env["id"], item["id"])[-2:] == [
        ("active", "stopping", "graceful stop requested"),
        ("stopping", "stopped", "stop confirmed"),
    ]


@pytest.mark.parametrize("body", [*GRACEFUL, "force"])
def test_stop_of_stopped_item_returns_the_existing_item(
    api: httpx.Client, env: dict[str, Any], body: str
) -> None:
    item = item_in_state(api, env["id"], "stopped")
    before = stopped_ok(api.get(qoder(env["id"], f"/{item['id']}")))
    again = stopped_ok(stop(api, env, item["id"], GRACEFUL.get(body, FORCE)))
    assert again == before
    assert len(work_transitions(api, env["id"], item["id"])) == 1  # nothing new recorded


@pytest.mark.parametrize("state", ["queued", "starting", "active", "stopping"])
def test_force_stop_of_any_live_item_stops_it(
    api: httpx.Client, env: dict[str, Any], state: str
) -> None:
    item = item_in_state(api, env["id"], state)
    done = stopped_ok(stop(api, env, item["id"], FORCE))
    assert done["state"] == "stopped" and SECONDS.match(done["stopped_at"])
    assert work_transitions(api, env["id"], item["id"])[-1] == (state, "stopped", "force stop")
    assert get_item(api, env["id"], item["id"])["stop_reason"] == "force stop"


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"{nope", JSON),
        (b"force=true", {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"\xff\xfe", {}),
        (b'{"force": true', JSON),
    ],
)
def test_stop_with_a_body_that_is_not_json_is_400_and_changes_nothing(
    api: httpx.Client, env: dict[str, Any], content: bytes, headers: dict[str, str]
) -> None:
    item = item_in_state(api, env["id"], "active")
    response = api.post(qoder(env["id"], f"/{item['id']}/stop"), content=content, headers=headers)
    assert "not valid JSON" in assert_qoder_envelope(response, 400, "invalid_request_error")
    assert get_item(api, env["id"], item["id"])["state"] == "active"


@pytest.mark.parametrize("content", [b'{"force": "maybe"}', b'{"force": true, "x": 1}', b"[]"])
def test_stop_with_a_json_body_of_the_wrong_shape_is_400(
    api: httpx.Client, env: dict[str, Any], content: bytes
) -> None:
    item = item_in_state(api, env["id"], "queued")
    response = api.post(qoder(env["id"], f"/{item['id']}/stop"), content=content, headers=JSON)
    assert_qoder_envelope(response, 400, "invalid_request_error")
    assert get_item(api, env["id"], item["id"])["state"] == "queued"


def test_stop_answers_the_brief_object_field_for_field(
    api: httpx.Client, env: dict[str, Any]
) -> None:
    item = item_in_state(api, env["id"], "active", metadata={})
    body = stopped_ok(stop(api, env, item["id"], GRACEFUL["{}"]))
    assert body["id"].startswith("work_") and body["environment_id"] == env["id"]
    assert body["type"] == "work" and body["data"] == SESSION_DATA and body["metadata"] == {}
    for field in ("created_at", "acknowledged_at", "started_at", "stop_requested_at"):
        assert SECONDS.match(body[field]), (field, body[field])
    assert MICROS.match(body["latest_heartbeat_at"]) and body["stopped_at"] is None


# ---- the brief's errors --------------------------------------------------------------------


def test_stop_on_an_environment_that_is_not_self_hosted_is_400(api: httpx.Client) -> None:
    managed = create_env(api, name="qoder-managed")
    try:
        response = api.post(qoder(managed["id"], "/work_" + "0" * 32 + "/stop"), json={})
        assert "self_hosted" in assert_qoder_envelope(response, 400, "invalid_request_error")
        poll = api.get(qoder(managed["id"], "/poll"))
        assert_qoder_envelope(poll, 400, "invalid_request_error")
    finally:
        delete(api, managed["id"])


def test_stop_with_a_bad_key_is_401(server: LiveServer, env: dict[str, Any]) -> None:
    path = qoder(env["id"], "/work_" + "0" * 32 + "/stop")
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        response = httpx.post(f"{server.url}{path}", json={}, headers=headers)
        assert_qoder_envelope(response, 401, "authentication_error")


def test_stop_without_work_write_is_403(
    server: LiveServer, api: httpx.Client, env: dict[str, Any]
) -> None:
    item = item_in_state(api, env["id"], "active")
    reader = scoped_key(api, "qoder-reader", "work:read")
    with server.client(key=reader) as scoped:
        assert scoped.get(qoder(env["id"], f"/{item['id']}")).status_code == 200
        for path in ("/stop", "/ack", "/heartbeat"):
            response = scoped.post(qoder(env["id"], f"/{item['id']}{path}"), json={})
            assert "work:write" in assert_qoder_envelope(response, 403, "permission_error")
        assert_qoder_envelope(scoped.get(qoder(env["id"], "/poll")), 403, "permission_error")
    assert get_item(api, env["id"], item["id"])["state"] == "active"


def test_stop_of_unknown_environment_or_work_item_is_404(
    server: LiveServer, api: httpx.Client, env: dict[str, Any]
) -> None:
    other = self_hosted_env(api, name="qoder-elsewhere")
    theirs = queue(api, other["id"])
    missing_env = "env_" + "0" * 32
    for path in (
        qoder(missing_env, "/work_" + "0" * 32 + "/stop"),
        qoder(env["id"], "/work_" + "0" * 32 + "/stop"),
        qoder(env["id"], "/not-a-work-id/stop"),
        qoder(env["id"], f"/{theirs['id']}/stop"),  # an item of another environment
    ):
        assert_qoder_envelope(api.post(path, json={}), 404, "not_found_error")
    # A key restricted to the other environment does not see this one at all.
    restricted = scoped_key(
        api, "qoder-one-env", "work:read", "work:write", environment_ids=[other["id"]]
    )
    mine = item_in_state(api, env["id"], "queued")
    with server.client(key=restricted) as scoped:
        response = scoped.post(qoder(env["id"], f"/{mine['id']}/stop"), json={})
        assert_qoder_envelope(response, 404, "not_found_error")
        assert stopped_ok(scoped.post(qoder(other["id"], f"/{theirs['id']}/stop")))
    delete(api, other["id"])


def test_another_organizations_work_item_is_404(
    server: LiveServer, api: httpx.Client, env: dict[str, Any]
) -> None:
    item = item_in_state(api, env["id"], "queued")
    with server.client(key=ADMIN_KEY) as admin:
        created = admin.post("/v1/orgs", json={"name": "qoder-other-org"})
        assert created.status_code == 201, created.text
    with server.client(key=created.json()["api_key"]["key"]) as stranger:
        for method, suffix in [("POST", "/stop"), ("POST", "/ack"), ("GET", "")]:
            response = stranger.request(method, qoder(env["id"], f"/{item['id']}{suffix}"))
            assert_qoder_envelope(response, 404, "not_found_error")
    assert get_item(api, env["id"], item["id"])["state"] == "queued"


def test_error_envelope_echoes_the_request_id(api: httpx.Client, env: dict[str, Any]) -> None:
    response = api.post(
        qoder(env["id"], "/work_" + "0" * 32 + "/stop"), headers={"x-request-id": "req-42"}
    )
    assert_qoder_envelope(response, 404, "not_found_error")
    assert response.json()["request_id"] == "req-42"
    assert response.headers["x-request-id"] == "req-42"


# ---- the worker protocol at Qoder's paths ---------------------------------------------------


def test_poll_answers_null_when_empty_and_each_item_to_one_poller(
    api: httpx.Client, server: LiveServer
) -> None:
    env = self_hosted_env(api, name="qoder-poll")
    assert api.get(qoder(env["id"], "/poll")).json() is None  # non-blocking
    blocking = api.get(qoder(env["id"], "/poll"), params={"block_ms": 200})
    assert blocking.status_code == 200 and blocking.text == "null"
    first, second = queue(api, env["id"]), queue(api, env["id"])
    polled = [
        api.get(qoder(env["id"], "/poll"), headers={"Worker-ID": f"w{n}"}).json() for n in range(3)
    ]
    assert [p["id"] if p else None for p in polled] == [first["id"], second["id"], None]
    assert list(polled[0]) == BRIEF_FIELDS and polled[0]["state"] == "queued"
    delete(api, env["id"])


@pytest.mark.parametrize(
    "params",
    [
        {"block_ms": 0},
        {"block_ms": 1000},
        {"block_ms": "soon"},
        {"reclaim_older_than_ms": -1},
        {"reclaim_older_than_ms": "x"},
    ],
)
def test_poll_rejects_parameters_out_of_range(
    api: httpx.Client, env: dict[str, Any], params: dict[str, Any]
) -> None:
    response = api.get(qoder(env["id"], "/poll"), params=params)
    assert_qoder_envelope(response, 400, "invalid_request_error")


def test_unacknowledged_item_is_redelivered_and_the_first_poller_loses_it(
    api: httpx.Client,
) -> None:
    env = self_hosted_env(api, name="qoder-reclaim")
    item = queue(api, env["id"])
    a = api.get(qoder(env["id"], "/poll"), headers={"Worker-ID": "a"}).json()
    assert api.get(qoder(env["id"], "/poll"), headers={"Worker-ID": "b"}).json() is None
    b = api.get(
        qoder(env["id"], "/poll"),
        params={"reclaim_older_than_ms": 0},
        headers={"Worker-ID": "b"},
    ).json()
    assert a["id"] == b["id"] == item["id"]
    late = api.post(qoder(env["id"], f"/{item['id']}/ack"), headers={"Worker-ID": "a"})
    assert_qoder_envelope(late, 409, "invalid_request_error")
    acked = api.post(qoder(env["id"], f"/{item['id']}/ack"), headers={"Worker-ID": "b"})
    assert acked.status_code == 200 and acked.json()["state"] == "starting"
    delete(api, env["id"])


def test_ack_is_safe_to_repeat_and_conflicts_when_stopping_or_stopped(
    api: httpx.Client, env: dict[str, Any]
) -> None:
    item = item_in_state(api, env["id"], "queued")
    ack = qoder(env["id"], f"/{item['id']}/ack")
    first = stopped_ok(api.post(ack, headers={"Worker-ID": "w-1"}))
    assert first["state"] == "starting" and SECONDS.match(first["acknowledged_at"])
    assert stopped_ok(api.post(ack, headers={"Worker-ID": "w-1"})) == first
    api.post(qoder(env["id"], f"/{item['id']}/heartbeat"))
    assert stopped_ok(api.post(ack))["state"] == "active"
    assert_qoder_envelope(api.post(ack, headers={"Worker-ID": "w-2"}), 409, "invalid_request_error")
    for state in ("stopping", "stopped"):
        other = item_in_state(api, env["id"], state)
        response = api.post(qoder(env["id"], f"/{other['id']}/ack"))
        assert state in assert_qoder_envelope(response, 409, "invalid_request_error")


def test_heartbeat_starts_the_item_and_clamps_the_lease(
    api: httpx.Client, env: dict[str, Any]
) -> None:
    item = item_in_state(api, env["id"], "starting")
    beat = qoder(env["id"], f"/{item['id']}/heartbeat")
    first = api.post(beat, params={"expected_last_heartbeat": "NO_HEARTBEAT"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"type", "last_heartbeat", "lease_extended", "state", "ttl_seconds"}
    assert body["type"] == "work_heartbeat" and body["state"] == "active"
    assert body["lease_extended"] is True and MICROS.match(body["last_heartbeat"])
    got = api.get(qoder(env["id"], f"/{item['id']}")).json()
    assert got["latest_heartbeat_at"] == body["last_heartbeat"] and got["started_at"]
    last = body["last_heartbeat"]
    for desired, applied in [(1, 10), (60, 60), (100_000, 600)]:
        response = api.post(
            beat, params={"expected_last_heartbeat": last, "desired_ttl_seconds": desired}
        )
        assert response.status_code == 200, response.text
        assert response.json()["ttl_seconds"] == applied and response.json()["state"] == "active"
        assert response.json()["last_heartbeat"] > last
        last = response.json()["last_heartbeat"]


def test_heartbeat_conflicts_and_preconditions(api: httpx.Client, env: dict[str, Any]) -> None:
    item = item_in_state(api, env["id"], "active")
    beat = qoder(env["id"], f"/{item['id']}/heartbeat")
    stale = api.post(beat, params={"expected_last_heartbeat": "NO_HEARTBEAT"})
    assert_qoder_envelope(stale, 412, "precondition_failed_error")
    old = "2020-01-01T00:00:00.000000Z"
    assert_qoder_envelope(
        api.post(beat, params={"expected_last_heartbeat": old}), 412, "precondition_failed_error"
    )
    for bad in ({"expected_last_heartbeat": "yesterday"}, {"desired_ttl_seconds": 0}):
        assert_qoder_envelope(api.post(beat, params=bad), 400, "invalid_request_error")
    for state in ("queued", "stopped"):
        other = item_in_state(api, env["id"], state)
        response = api.post(qoder(env["id"], f"/{other['id']}/heartbeat"))
        assert state in assert_qoder_envelope(response, 409, "invalid_request_error")


def test_stats_report_depth_pending_oldest_and_workers(api: httpx.Client) -> None:
    env = self_hosted_env(api, name="qoder-stats")
    empty = api.get(qoder(env["id"], "/stats")).json()
    assert empty == {
        "type": "work_queue_stats",
        "depth": 0,
        "pending": 0,
        "oldest_queued_at": None,
        "workers_polling": 0,
    }
    oldest = queue(api, env["id"])
    for _ in range(2):
        queue(api, env["id"])
    api.get(qoder(env["id"], "/poll"), headers={"Worker-ID": "w-a"})  # delivers `oldest`
    api.get(qoder(env["id"], "/poll"))  # without Worker-ID: delivers, not counted
    stats = api.get(qoder(env["id"], "/stats")).json()
    assert (stats["depth"], stats["pending"], stats["workers_polling"]) == (1, 2, 1)
    assert stats["oldest_queued_at"] == oldest["created_at"][:19] + "Z"
    delete(api, env["id"])


def test_list_pages_in_queue_order(api: httpx.Client) -> None:
    env = self_hosted_env(api, name="qoder-list")
    made = [queue(api, env["id"], metadata={"n": str(n)})["id"] for n in range(5)]
    first = api.get(qoder(env["id"]), params={"limit": 2}).json()
    assert [i["id"] for i in first["data"]] == made[:2] and first["has_more"]
    assert (first["first_id"], first["last_id"], first["next_page"]) == (made[0], made[1], made[1])
    rest = api.get(qoder(env["id"]), params={"limit": 500, "page": first["next_page"]}).json()
    assert [i["id"] for i in rest["data"]] == made[2:] and not rest["has_more"]
    assert rest["next_page"] is None
    before = api.get(qoder(env["id"]), params={"before_id": made[3], "limit": 2}).json()
    assert [i["id"] for i in before["data"]] == made[1:3] and before["has_more"]
    after = api.get(qoder(env["id"]), params={"after_id": made[3]}).json()
    assert [i["id"] for i in after["data"]] == made[4:]
    both = api.get(qoder(env["id"]), params={"after_id": made[0], "before_id": made[3]})
    assert_qoder_envelope(both, 400, "invalid_request_error")
    assert_qoder_envelope(
        api.get(qoder(env["id"]), params={"limit": 0}), 400, "invalid_request_error"
    )
    delete(api, env["id"])


def test_metadata_is_merge_patched(api: httpx.Client, env: dict[str, Any]) -> None:
    item = item_in_state(api, env["id"], "active", metadata={"job": "daily", "old": "x"})
    path = qoder(env["id"], f"/{item['id']}")
    patched = api.post(path, json={"metadata": {"worker": "byoc-1", "old": None}})
    assert stopped_ok(patched)["metadata"] == {"job": "daily", "worker": "byoc-1"}
    assert stopped_ok(api.post(path, json={}))["metadata"] == {"job": "daily", "worker": "byoc-1"}
    bad = api.post(path, json={"metadata": {"n": 1}})
    assert_qoder_envelope(bad, 400, "invalid_request_error")


def test_every_transition_is_recorded_with_its_work_id(
    api: httpx.Client, env: dict[str, Any]
) -> None:
    item = item_in_state(api, env["id"], "stopping")
    api.post(qoder(env["id"], f"/{item['id']}/stop"))
    assert [(f, t) for f, t, _ in work_transitions(api, env["id"], item["id"])] == [
        ("queued", "starting"),
        ("starting", "active"),
        ("active", "stopping"),
        ("stopping", "stopped"),
    ]
    env_events = api.get(f"/v1/environments/{env['id']}/events", params={"limit": 1000}).json()
    mine = [e for e in env_events["data"] if e["data"].get("work_id") == item["id"]]
    assert mine[0]["type"] == "work.created" and len(mine) == 5
