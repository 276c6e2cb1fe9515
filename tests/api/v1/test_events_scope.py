"""A key limited to some environments sees nothing of the others: not in the
organization's audit log, not in its live stream, not in any list."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.factories import delete, running_env, scoped_key
from tests.support.inside import sse_events
from tests.support.server import LiveServer
from tests.support.work import queue, self_hosted_env

#: Every list a key can read that spans the organization (native and dialects).
ORG_LISTS = [
    "/v1/events?limit=1000",
    "/v1/environments",
    "/v1/keys",
    "/v1/pools",
    "/v1/orgs/current/usage",
    "/sandbox",
    "/api/v1/environments",
    "/v1/apps",
]


@pytest.fixture
def world(api: httpx.Client) -> Iterator[dict[str, Any]]:
    """Environment A (the key's), B (managed, with an SSH credential) and W
    (self-hosted, with a work item), and what the organization did to them."""
    env_a = self_hosted_env(api, name="scope-a")
    env_b = running_env(api, name="scope-b")
    env_w = self_hosted_env(api, name="scope-w")
    cred = api.get(f"/v1/environments/{env_b['id']}/ssh")
    assert cred.status_code == 200, cred.text
    work = queue(api, env_w["id"])
    yield {
        "a": env_a["id"],
        "hidden": [env_b["id"], env_w["id"], cred.json()["id"], work["id"]],
        "b": env_b["id"],
        "w": env_w["id"],
        "work": work["id"],
    }
    for env in (env_a, env_b, env_w):
        delete(api, env["id"])


def _whole_log(api: httpx.Client) -> str:
    """Every page of the organization's log, oldest first."""
    pages, after = [], None
    while True:
        params = {"limit": 1000} | ({"after": after} if after is not None else {})
        page = api.get("/v1/events", params=params)
        assert page.status_code == 200, page.text
        data = page.json()["data"]
        pages.append(page.text)
        if len(data) < 1000:
            return "".join(pages)
        after = data[-1]["id"]


def _limited(api: httpx.Client, env_id: str) -> str:
    perms = (
        "environments:read",
        "environments:exec",
        "keys:read",
        "work:read",
        "agents:execute",
    )
    return scoped_key(api, "limited", *perms, environment_ids=[env_id])


def test_limited_key_reads_only_its_environments_events(
    server: LiveServer, api: httpx.Client, world: dict[str, Any]
) -> None:
    with server.client(key=_limited(api, world["a"])) as client:
        response = client.get("/v1/events", params={"limit": 1000})
    assert response.status_code == 200, response.text
    events = response.json()["data"]
    assert events and {e["environment_id"] for e in events} == {world["a"]}
    for hidden in world["hidden"]:
        assert hidden not in response.text
    # The organization key still reads everything (the whole log: the session's
    # server holds every earlier test's events, audit records included).
    full = _whole_log(api)
    assert all(hidden in full for hidden in world["hidden"])


def test_limited_key_lists_nothing_of_other_environments(
    server: LiveServer, api: httpx.Client, world: dict[str, Any]
) -> None:
    with server.client(key=_limited(api, world["a"])) as client:
        for path in ORG_LISTS:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            for hidden in world["hidden"]:
                assert hidden not in response.text, (path, hidden)
        b, w = world["b"], world["w"]
        for path in (
            f"/v1/environments/{b}/events",
            f"/v1/environments/{b}/ssh/credentials",
            f"/v1/environments/{b}/agent/runs",
            f"/v1/environments/{b}/processes",
            f"/v1/environments/{w}/work",
            f"/v1/environments/{w}/work/{world['work']}/events",
            f"/sandbox/{b}",
            f"/toolbox/{b}/process/session",
        ):
            response = client.get(path)
            assert response.status_code == 404, (path, response.text)
            for hidden in world["hidden"][2:]:
                assert hidden not in response.text, (path, hidden)


def test_limited_key_stream_carries_only_its_environments_events(
    server: LiveServer, api: httpx.Client, world: dict[str, Any]
) -> None:
    seen: list[dict[str, Any]] = []
    with (
        server.client(key=_limited(api, world["a"])) as client,
        client.stream("GET", "/v1/events", params={"follow": True}) as response,
    ):
        assert response.status_code == 200
        # After the stream is open: an event on B, on W, then one on A.
        assert api.get(f"/v1/environments/{world['b']}/ssh").status_code == 200
        queue(api, world["w"])
        mine = queue(api, world["a"])
        for _, _, event in sse_events(response):
            seen.append(event)
            if event["data"].get("work_id") == mine["id"]:
                break
    assert {e["environment_id"] for e in seen} == {world["a"]}
