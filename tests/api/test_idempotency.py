"""`Idempotency-Key` on creates and `If-Match` on an environment's update, on a live
server (SQLite and PostgreSQL)."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.factories import assert_envelope, delete, running_env
from tests.support.server import LiveServer


def _named(api: httpx.Client, name: str) -> list[str]:
    listed = api.get("/v1/environments", params={"limit": 1000})
    assert listed.status_code == 200, listed.text
    return [e["id"] for e in listed.json()["data"] if e["name"] == name]


def test_retried_create_with_the_same_key_gets_the_first_answer(api: httpx.Client) -> None:
    name, key = f"idem-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    first = api.post("/v1/environments", json={"name": name}, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    again = api.post("/v1/environments", json={"name": name}, headers={"Idempotency-Key": key})
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["etag"] == first.headers["etag"]
    assert _named(api, name) == [first.json()["id"]]
    delete(api, first.json()["id"])


def test_same_key_with_another_body_is_422(api: httpx.Client) -> None:
    name, key = f"idem-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    first = api.post("/v1/environments", json={"name": name}, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    other = api.post(
        "/v1/environments", json={"name": name + "-b"}, headers={"Idempotency-Key": key}
    )
    assert_envelope(other, 422, "invalid_request_error")
    assert _named(api, name + "-b") == []
    delete(api, first.json()["id"])


def test_fifty_concurrent_creates_with_one_key_make_one_environment(server: LiveServer) -> None:
    name, key = f"idem-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex

    def create(_: int) -> httpx.Response:
        with server.client() as client:
            return client.post(
                "/v1/environments", json={"name": name}, headers={"Idempotency-Key": key}
            )

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(create, range(50)))
    assert [a.status_code for a in answers] == [201] * 50, [a.text for a in answers]
    assert len({a.text for a in answers}) == 1
    with server.client() as api:
        assert _named(api, name) == [answers[0].json()["id"]]
        delete(api, answers[0].json()["id"])


def test_the_same_key_on_another_route_is_another_request(api: httpx.Client) -> None:
    key = uuid.uuid4().hex
    made = api.post(
        "/v1/keys", json={"name": "idem-key", "permissions": []}, headers={"Idempotency-Key": key}
    )
    assert made.status_code == 201, made.text
    again = api.post(
        "/v1/keys", json={"name": "idem-key", "permissions": []}, headers={"Idempotency-Key": key}
    )
    assert again.json()["id"] == made.json()["id"] and again.json()["key"] == made.json()["key"]
    env = api.post(
        "/v1/environments",
        json={"name": f"idem-{uuid.uuid4().hex[:8]}"},
        headers={"Idempotency-Key": key},
    )
    assert env.status_code == 201 and "idempotent-replayed" not in env.headers
    delete(api, env.json()["id"])


def test_a_refused_create_leaves_the_key_free_for_a_corrected_retry(api: httpx.Client) -> None:
    name, key = f"idem-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    bad = api.post(
        "/v1/environments", json={"name": name, "cpu": -1}, headers={"Idempotency-Key": key}
    )
    assert bad.status_code == 400 or bad.status_code == 422, bad.text
    good = api.post("/v1/environments", json={"name": name}, headers={"Idempotency-Key": key})
    assert good.status_code == 201, good.text
    delete(api, good.json()["id"])


def test_a_malformed_key_is_400(api: httpx.Client) -> None:
    answer = api.post(
        "/v1/environments", json={"name": "never"}, headers={"Idempotency-Key": "x" * 300}
    )
    assert_envelope(answer, 400, "invalid_request_error")


def test_if_match_with_a_stale_version_is_412(api: httpx.Client) -> None:
    env = running_env(api, name=f"etag-{uuid.uuid4().hex[:8]}")  # settled: no transitions
    read = api.get(f"/v1/environments/{env['id']}")
    tag = read.headers["etag"]
    assert tag == f'"{read.json()["version"]}"'
    changed = api.patch(
        f"/v1/environments/{env['id']}", json={"labels": {"a": "1"}}, headers={"If-Match": tag}
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] != tag
    stale = api.patch(
        f"/v1/environments/{env['id']}", json={"labels": {"a": "2"}}, headers={"If-Match": tag}
    )
    assert_envelope(stale, 412, "precondition_failed_error")
    assert api.get(f"/v1/environments/{env['id']}").json()["labels"] == {"a": "1"}
    current = api.get(f"/v1/environments/{env['id']}").headers["etag"]
    assert (
        api.patch(
            f"/v1/environments/{env['id']}",
            json={"labels": {"a": "3"}},
            headers={"If-Match": current},
        ).status_code
        == 200
    )
    # Without If-Match an update works as it always did.
    assert api.patch(f"/v1/environments/{env['id']}", json={"labels": {}}).status_code == 200
    delete(api, env["id"])
