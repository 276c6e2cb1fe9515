"""Live event streams (server-sent events): order, and resumption without gaps."""

from typing import Any

import httpx

from tests.support.factories import delete, running_env, stop, wait_state
from tests.support.inside import sse_events


def _changes(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (e["from_state"], e["to_state"]) for e in events if e["type"] == "environment.state_changed"
    ]


def test_sse_client_sees_running_stopping_stopped_in_order(api: httpx.Client) -> None:
    env = running_env(api, name="sse-stop")
    url = f"/v1/environments/{env['id']}/events"
    seen: list[dict[str, Any]] = []
    with api.stream("GET", url, params={"follow": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stop(api, env["id"])  # after the stream is open: only new events come
        for _, event_id, event in sse_events(response):
            assert event_id == str(event["id"])
            seen.append(event)
            if event["to_state"] == "stopped":
                break
    assert _changes(seen) == [("running", "stopping"), ("stopping", "stopped")]
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids)
    delete(api, env["id"])


def test_org_stream_resumes_after_reconnect_without_gaps(api: httpx.Client) -> None:
    env = running_env(api, name="sse-resume")
    seen: list[dict[str, Any]] = []
    with api.stream("GET", "/v1/events", params={"follow": True}) as response:
        stop(api, env["id"])
        for _, _, event in sse_events(response):
            seen.append(event)
            if event["to_state"] == "stopping":
                break  # hang up mid-way
    last_id = seen[-1]["id"]
    # Things happen while nobody listens.
    wait_state(api, env["id"], "stopped")
    api.post(f"/v1/environments/{env['id']}/start")
    wait_state(api, env["id"], "running")
    with api.stream(
        "GET", "/v1/events", params={"follow": True}, headers={"Last-Event-ID": str(last_id)}
    ) as response:
        for _, _, event in sse_events(response):
            seen.append(event)
            if event["environment_id"] == env["id"] and event["to_state"] == "running":
                break
    # Exactly what the log holds after the first event seen: no gap, no repeat.
    first = seen[0]["id"]
    logged = api.get("/v1/events", params={"after": first - 1, "limit": 1000}).json()["data"]
    logged = [e for e in logged if e["id"] <= seen[-1]["id"]]
    assert [e["id"] for e in seen] == [e["id"] for e in logged]
    assert _changes([e for e in seen if e["environment_id"] == env["id"]]) == [
        ("running", "stopping"),
        ("stopping", "stopped"),
        ("stopped", "starting"),
        ("starting", "running"),
    ]
    # `after` resumes the same way as the header.
    with api.stream("GET", "/v1/events", params={"follow": True, "after": first - 1}) as response:
        assert next(sse_events(response))[2]["id"] == first
    delete(api, env["id"])


def test_non_follow_events_are_still_pages(api: httpx.Client) -> None:
    env = running_env(api, name="sse-pages")
    page = api.get(f"/v1/environments/{env['id']}/events", params={"limit": 2}).json()
    assert page["has_more"] is True and len(page["data"]) == 2 and page["next_cursor"]
    org = api.get("/v1/events", params={"limit": 1}).json()
    assert set(org) == {"data", "has_more", "next_cursor"}
    delete(api, env["id"])


def test_environment_stream_ends_when_it_is_deleted(api: httpx.Client) -> None:
    env = running_env(api, name="sse-delete")
    url = f"/v1/environments/{env['id']}/events"
    with api.stream("GET", url, params={"follow": True}) as response:
        api.delete(f"/v1/environments/{env['id']}")
        events = [e for _, _, e in sse_events(response)]  # ends by itself
    assert events[-1]["to_state"] == "deleted"
