"""Bad input gets a clear 4xx with the envelope, and nothing is created."""

from typing import Any

import httpx
import pytest

from tests.support.factories import assert_envelope, create_env, delete, running_env
from tests.support.server import LiveServer, engine_objects


def _snapshot(api: httpx.Client, server: LiveServer) -> tuple[int, int, int]:
    listed = api.get("/v1/environments", params={"limit": 1000}).json()["data"]
    containers, volumes = engine_objects(server.instance)
    return len(listed), len(containers), len(volumes)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"name": "v-unknown", "flavour": "large"}, 400, "unknown field"),
        ({"name": "v-neg", "memory_mb": -5}, 400, "memory_mb"),
        ({"name": "v-huge", "memory_mb": 10_000_000}, 400, "exceeds the runner"),
        ({"name": "v-cpu", "cpu": 512}, 400, "exceeds the runner"),
        ({"name": "v-img", "image": "sandbay-does-not-exist:never"}, 400, "not found"),
        ({"name": "v-label", "labels": {"big": "x" * 1_000_000}}, 413, "limit"),
        ({"name": "v-label2", "labels": {"big": "x" * 5_000}}, 400, "labels"),
        ({"name": "bad name!"}, 400, "name"),
        ({"name": "v-cidr", "network_allow_list": ["300.0.0.1/8"]}, 400, "CIDR"),
        ({"name": "v-type", "cpu": "many"}, 400, "cpu"),
    ],
)
def test_bad_create_is_refused_and_creates_nothing(
    api: httpx.Client, server: LiveServer, body: dict[str, Any], status: int, needle: str
) -> None:
    before = _snapshot(api, server)
    response = api.post("/v1/environments", json=body)
    message = assert_envelope(response, status, "invalid_request_error")
    assert needle.lower() in message.lower(), message
    assert _snapshot(api, server) == before


def test_body_that_is_not_json_is_400(api: httpx.Client) -> None:
    response = api.post(
        "/v1/environments", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert "JSON" in assert_envelope(response, 400, "invalid_request_error")


def test_colliding_name_is_409_and_creates_nothing(api: httpx.Client, server: LiveServer) -> None:
    env = running_env(api, name="v-collide")
    before = _snapshot(api, server)
    response = api.post("/v1/environments", json={"name": "v-collide"})
    assert "v-collide" in assert_envelope(response, 409, "conflict_error")
    assert _snapshot(api, server) == before
    delete(api, env["id"])


def test_bad_stop_bodies_are_400(api: httpx.Client) -> None:
    env = create_env(api, name="v-stop")
    for body in ({"timeout": -1}, {"signal": "SIGNOPE"}, {"force": "maybe"}, {"extra": 1}):
        response = api.post(f"/v1/environments/{env['id']}/stop", json=body)
        assert_envelope(response, 400, "invalid_request_error")
    assert api.get(f"/v1/environments/{env['id']}").json()["desired_state"] == "running"
    delete(api, env["id"])


def test_bad_query_parameters_are_400(api: httpx.Client) -> None:
    assert_envelope(api.get("/v1/environments?state=flying"), 400, "invalid_request_error")
    assert_envelope(api.get("/v1/environments?limit=0"), 400, "invalid_request_error")
    assert_envelope(api.get("/v1/environments?label=novalue"), 400, "invalid_request_error")
    env = create_env(api, name="v-wait")
    response = api.get(f"/v1/environments/{env['id']}/wait?state=flying")
    assert_envelope(response, 400, "invalid_request_error")
    delete(api, env["id"])


def test_unknown_route_and_method_use_the_envelope(api: httpx.Client) -> None:
    assert_envelope(api.get("/v1/nothing-here"), 404, "not_found_error")
    assert_envelope(api.put("/v1/environments"), 405, "invalid_request_error")
