"""Quotas refuse creates and starts past the limits, leaving nothing behind."""

import uuid

import httpx

from tests.support.factories import assert_envelope, create_env, delete, stop, wait_state
from tests.support.server import ADMIN_KEY, LiveServer, engine_objects


def _org(server: LiveServer) -> tuple[str, str]:
    with server.client(key=ADMIN_KEY) as admin:
        made = admin.post("/v1/orgs", json={"name": f"quota-{uuid.uuid4().hex[:8]}"}).json()
    return made["id"], made["api_key"]["key"]


def _set(server: LiveServer, org_id: str, **quotas: object) -> None:
    with server.client(key=ADMIN_KEY) as admin:
        answer = admin.put(f"/v1/orgs/{org_id}/quotas", json=quotas)
        assert answer.status_code == 200, answer.text


def test_create_and_start_past_the_quota_are_refused_and_leave_nothing(server: LiveServer) -> None:
    org_id, key = _org(server)
    _set(server, org_id, max_running_environments=1)
    with server.client(key=key) as api:
        first = create_env(api, name="q-one", memory_mb=128)
        wait_state(api, first["id"], "running")
        before = engine_objects(server.instance)
        refused = api.post("/v1/environments", json={"name": "q-two", "memory_mb": 128})
        assert "quota_exceeded" in assert_envelope(refused, 400, "invalid_request_error")
        assert engine_objects(server.instance) == before
        listed = api.get("/v1/environments").json()["data"]
        assert [e["name"] for e in listed] == ["q-one"]

        # A stopped environment does not count; starting it again past the quota is refused.
        stop(api, first["id"], force=True)
        wait_state(api, first["id"], "stopped")
        second = create_env(api, name="q-two", memory_mb=128)
        wait_state(api, second["id"], "running")
        again = api.post(f"/v1/environments/{first['id']}/start")
        assert "quota_exceeded" in assert_envelope(again, 400, "invalid_request_error")
        assert api.get(f"/v1/environments/{first['id']}").json()["state"] == "stopped"
        usage = api.get("/v1/orgs/current/usage").json()
        assert usage["quotas"]["max_running_environments"] == 1
        assert usage["usage"]["running_environments"] == 1
        delete(api, first["id"])
        delete(api, second["id"])


def test_cpu_memory_and_hours_quotas(server: LiveServer) -> None:
    org_id, key = _org(server)
    _set(server, org_id, max_running_memory_mb=256, max_running_cpu=1)
    with server.client(key=key) as api:
        refused = api.post("/v1/environments", json={"name": "q-mem", "memory_mb": 512})
        assert "quota_exceeded" in assert_envelope(refused, 400, "invalid_request_error")
        refused = api.post("/v1/environments", json={"name": "q-cpu", "cpu": 1.5, "memory_mb": 64})
        assert "quota_exceeded" in assert_envelope(refused, 400, "invalid_request_error")
        _set(server, org_id, max_running_hours_per_month=0)
        refused = api.post("/v1/environments", json={"name": "q-hours", "memory_mb": 64})
        assert "hours" in assert_envelope(refused, 400, "invalid_request_error")
        assert api.get("/v1/environments").json()["data"] == []


def test_only_the_operator_sets_quotas(api: httpx.Client) -> None:
    org_id = api.get("/v1/orgs/current").json()["id"]
    answer = api.put(f"/v1/orgs/{org_id}/quotas", json={"max_running_environments": 1})
    assert_envelope(answer, 403, "permission_error")
