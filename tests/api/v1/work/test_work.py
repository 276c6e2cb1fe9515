"""Work items in the native API against a live server: queueing and reading, keys and
their scopes, long polls that hold no database connection and never hand one item
to two pollers, and leases that heartbeats keep and the lease loop takes back. What
each policy does with an expired lease is shown in-process
(tests/services/work/test_leases.py)."""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from tests.support.factories import assert_envelope, create_env, delete, scoped_key
from tests.support.polling import eventually
from tests.support.server import LiveServer
from tests.support.work import (
    BRIEF_FIELDS,
    env_name,
    get_item,
    item_in_state,
    native,
    queue,
    self_hosted_env,
)


@pytest.fixture
def env(api: httpx.Client, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    created = self_hosted_env(api, name=env_name("work", request))
    yield created
    delete(api, created["id"])


def test_queued_item_shows_the_brief_object_and_its_policy(
    api: httpx.Client, env: dict[str, Any]
) -> None:
    item = queue(api, env["name"], metadata={"job": "daily"}, max_attempts=5)
    assert list(item)[: len(BRIEF_FIELDS)] == BRIEF_FIELDS
    assert item["state"] == "queued" and item["environment_id"] == env["id"]
    assert item["metadata"] == {"job": "daily"} and item["attempts"] == 0
    assert (item["on_lease_expired"], item["max_attempts"]) == ("requeue", 5)
    assert get_item(api, env["id"], item["id"]) == item


@pytest.mark.parametrize(
    "body",
    [
        {"metadata": {"n": 1}},
        {"metadata": {"bad key!": "x"}},
        {"data": "not an object"},
        {"max_attempts": 0},
        {"on_lease_expired": "retry-forever"},
        {"surprise": True},
    ],
)
def test_bad_work_items_are_400(api: httpx.Client, env: dict[str, Any], body: Any) -> None:
    assert_envelope(api.post(native(env["id"]), json=body), 400, "invalid_request_error")


def test_managed_environment_takes_no_work_items(api: httpx.Client) -> None:
    managed = create_env(api, name="work-managed")
    try:
        for method, suffix in [("POST", ""), ("GET", ""), ("GET", "/poll"), ("GET", "/stats")]:
            response = api.request(method, native(managed["id"], suffix), json={})
            assert "self_hosted" in assert_envelope(response, 400, "invalid_request_error")
    finally:
        delete(api, managed["id"])


def test_list_filters_by_state_and_pages_in_queue_order(
    api: httpx.Client, env: dict[str, Any]
) -> None:
    made = [item_in_state(api, env["id"], s)["id"] for s in ("queued", "active", "queued")]
    page = api.get(native(env["id"]), params={"limit": 2}).json()
    assert [i["id"] for i in page["data"]] == made[:2] and page["has_more"]
    rest = api.get(native(env["id"]), params={"cursor": page["next_cursor"]}).json()
    assert [i["id"] for i in rest["data"]] == made[2:] and not rest["has_more"]
    queued = api.get(native(env["id"]), params={"state": "queued"}).json()
    assert [i["id"] for i in queued["data"]] == [made[0], made[2]]


def test_work_read_key_reads_but_takes_no_work(
    server: LiveServer, api: httpx.Client, env: dict[str, Any]
) -> None:
    item = item_in_state(api, env["id"], "queued")
    with server.client(key=scoped_key(api, "work-reader", "work:read")) as reader:
        for suffix in ("", f"/{item['id']}", "/stats", f"/{item['id']}/events"):
            assert reader.get(native(env["id"], suffix)).status_code == 200
        for method, suffix in [
            ("POST", ""),
            ("GET", "/poll"),
            ("POST", f"/{item['id']}/ack"),
            ("POST", f"/{item['id']}/heartbeat"),
            ("POST", f"/{item['id']}/stop"),
            ("PATCH", f"/{item['id']}"),
        ]:
            response = reader.request(method, native(env["id"], suffix), json={})
            assert "work:write" in assert_envelope(response, 403, "permission_error")
    assert get_item(api, env["id"], item["id"])["state"] == "queued"


def test_worker_key_scoped_to_its_environment_works_only_there(
    server: LiveServer, api: httpx.Client, env: dict[str, Any]
) -> None:
    other = self_hosted_env(api, name="work-not-mine")
    theirs = queue(api, other["id"])
    mine = queue(api, env["id"])
    key = scoped_key(api, "work-worker", "work:read", "work:write", environment_ids=[env["id"]])
    with server.client(key=key) as worker:
        polled = worker.get(native(env["id"], "/poll"), headers={"Worker-ID": "w"}).json()
        assert polled["id"] == mine["id"]
        assert worker.post(native(env["id"], f"/{mine['id']}/ack")).status_code == 200
        for method, suffix in [("GET", "/poll"), ("GET", f"/{theirs['id']}"), ("POST", "")]:
            response = worker.request(method, native(other["id"], suffix), json={})
            assert_envelope(response, 404, "not_found_error")
    assert get_item(api, other["id"], theirs["id"])["state"] == "queued"
    delete(api, other["id"])


def test_long_polls_hold_no_connection_and_never_share_an_item(
    server: LiveServer, api: httpx.Client, env: dict[str, Any]
) -> None:
    """More waiting long polls than the database pool has connections (16 + 32):
    other requests still get through, and each queued item reaches one poller."""
    pollers = 60

    def poll(n: int) -> dict[str, Any] | None:
        with server.client() as client:
            response = client.get(
                native(env["id"], "/poll"),
                # No redelivery while this test runs: each item must reach one poller.
                params={"block_ms": 25_000, "reclaim_older_than_ms": 600_000},
                headers={"Worker-ID": f"poller-{n}"},
            )
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

    quick = httpx.Client(base_url=server.url, headers={"X-API-KEY": server.key}, timeout=10)
    with ThreadPoolExecutor(pollers) as pool, quick:
        waiting = [pool.submit(poll, n) for n in range(pollers)]
        eventually(
            lambda: quick.get(native(env["id"], "/stats")).json()["workers_polling"] == pollers
        )
        made = {queue(quick, env["id"])["id"] for _ in range(pollers)}
        got = [f.result() for f in waiting]
    delivered = [g["id"] for g in got if g is not None]
    assert sorted(delivered) == sorted(made)  # every item once, no item twice


def test_long_poll_returns_null_when_nothing_arrives(
    api: httpx.Client, env: dict[str, Any]
) -> None:
    response = api.get(native(env["id"], "/poll"), params={"block_ms": 300})
    assert response.status_code == 200 and response.json() is None
    assert_envelope(
        api.get(native(env["id"], "/poll"), params={"block_ms": 60_000}),
        400,
        "invalid_request_error",
    )


def test_metadata_patch_and_work_item_events(api: httpx.Client, env: dict[str, Any]) -> None:
    item = item_in_state(api, env["id"], "active", metadata={"a": "1", "b": "2"})
    patched = api.patch(native(env["id"], f"/{item['id']}"), json={"metadata": {"a": None}})
    assert patched.json()["metadata"] == {"b": "2"}
    events = api.get(native(env["id"], f"/{item['id']}/events")).json()["data"]
    assert [e["type"] for e in events] == [
        "work.created",
        "work.state_changed",
        "work.state_changed",
        "work.metadata_updated",
    ]
    assert all(e["data"]["work_id"] == item["id"] for e in events)


def test_deleting_the_environment_stops_its_live_items(api: httpx.Client) -> None:
    env = self_hosted_env(api, name="work-doomed")
    items = [item_in_state(api, env["id"], s)["id"] for s in ("queued", "active", "stopped")]
    delete(api, env["id"])

    def stopped_by_deletion() -> set[str]:
        events = api.get(f"/v1/environments/{env['id']}/events", params={"limit": 1000}).json()
        return {
            e["data"]["work_id"]
            for e in events["data"]
            if e["type"] == "work.state_changed" and e["reason"] == "environment deleted"
        }

    eventually(lambda: stopped_by_deletion() == set(items[:2]))  # and never the stopped one


def test_openapi_describes_the_work_api(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    validate(spec)
    for path in (
        "/v1/environments/{env}/work",
        "/v1/environments/{env}/work/poll",
        "/v1/environments/{env}/work/{work_id}/heartbeat",
        "/v1/environments/{env}/work/{work_id}/stop",
        "/api/v1/cloud/environments/{environment_id}/work/{work_id}/stop",
    ):
        assert path in spec["paths"], path
    stop = spec["paths"]["/v1/environments/{env}/work/{work_id}/stop"]["post"]
    assert stop["requestBody"]["required"] is False


# ---- leases (on a server whose leases may be 1 s) ----------------------------------------


def _take(api: httpx.Client, env: str, work_id: str, worker: str, *, ttl: int = 1) -> str:
    """Ack and first heartbeat as `worker`; returns the lease token (last heartbeat)."""
    assert api.post(native(env, f"/{work_id}/ack"), headers={"Worker-ID": worker}).is_success
    beat = api.post(
        native(env, f"/{work_id}/heartbeat"),
        params={"expected_last_heartbeat": "NO_HEARTBEAT", "desired_ttl_seconds": ttl},
        headers={"Worker-ID": worker},
    )
    assert beat.status_code == 200, beat.text
    return str(beat.json()["last_heartbeat"])


def _state_becomes(api: httpx.Client, env: str, work_id: str, state: str) -> dict[str, Any]:
    result: dict[str, Any] = eventually(
        lambda: (i := get_item(api, env, work_id))["state"] == state and i, timeout=30
    )
    return result


def test_heartbeats_keep_the_lease(lease_api: httpx.Client, lease_env: str) -> None:
    item = queue(lease_api, lease_env)
    last = _take(lease_api, lease_env, item["id"], "w-1")
    beat = native(lease_env, f"/{item['id']}/heartbeat")
    for _ in range(12):  # 3 s of heartbeats on a 1 s lease
        time.sleep(0.25)
        response = lease_api.post(
            beat, params={"expected_last_heartbeat": last, "desired_ttl_seconds": 1}
        )
        assert response.status_code == 200 and response.json()["state"] == "active"
        last = response.json()["last_heartbeat"]
    assert get_item(lease_api, lease_env, item["id"])["attempts"] == 1


def test_previous_holder_is_refused_once_another_worker_took_the_item(
    lease_api: httpx.Client, lease_env: str
) -> None:
    item = queue(lease_api, lease_env)
    old = _take(lease_api, lease_env, item["id"], "w-old")
    _state_becomes(lease_api, lease_env, item["id"], "queued")
    polled = lease_api.get(native(lease_env, "/poll"), headers={"Worker-ID": "w-new"}).json()
    assert polled["id"] == item["id"]
    _take(lease_api, lease_env, item["id"], "w-new", ttl=60)
    beat = native(lease_env, f"/{item['id']}/heartbeat")
    stale = lease_api.post(beat, params={"expected_last_heartbeat": old})
    assert_envelope(stale, 412, "precondition_failed_error")
    other = lease_api.post(beat, headers={"Worker-ID": "w-old"})
    assert_envelope(other, 412, "precondition_failed_error")
    ack = lease_api.post(native(lease_env, f"/{item['id']}/ack"), headers={"Worker-ID": "w-old"})
    assert_envelope(ack, 409, "conflict_error")
    assert get_item(lease_api, lease_env, item["id"])["worker_id"] == "w-new"
