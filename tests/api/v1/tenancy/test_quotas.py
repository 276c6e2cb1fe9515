"""Quotas refuse creates and starts past the limits, leaving nothing behind on the
engine. The arithmetic of each limit, and who may set them, are shown in-process
(tests/services/tenancy/test_quotas.py)."""

import uuid

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
