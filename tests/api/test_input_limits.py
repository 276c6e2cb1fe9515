"""Input limits: body size while reading and before authentication (chunked or
not), header size, JSON depth, NUL and lone surrogates in strings, label count,
event cursors and `since` past what a database or engine holds: all 4xx."""

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.factories import assert_envelope, create_env, delete, running_env
from tests.support.server import LiveServer

MIB = 1024 * 1024
JSON = {"content-type": "application/json"}


def _rss_kib(server: LiveServer) -> int:
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1])


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size


def _send_chunked(server: LiveServer, path: str, total: int) -> int | None:
    """Status of a chunked body of `total` bytes sent without a key; None if the
    server closed the connection before answering (it never read the body)."""
    with server.client(key="") as anonymous:
        try:
            response = anonymous.post(
                path, content=_chunks(total), headers={"content-type": "application/json"}
            )
        except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
            return None
        return response.status_code


@pytest.mark.parametrize(
    "path",
    ["/v1/environments", "/sandbox", "/v1/environments/nope/files/upload"],
)
def test_chunked_32_mib_without_key_is_refused_without_reading_it(
    server: LiveServer, api: httpx.Client, path: str
) -> None:
    before = _rss_kib(server)
    status = _send_chunked(server, path, 32 * MIB)
    after = _rss_kib(server)
    print(f"{path}: status {status}, server VmRSS {before} KiB -> {after} KiB")
    assert status in (401, 413, None)
    assert after - before < 16 * 1024, (before, after)
    assert api.get("/v1/environments").status_code == 200


def test_json_body_past_the_limit_with_length_is_413(api: httpx.Client) -> None:
    body = json.dumps({"name": "big", "labels": {"a": "x" * 300_000}}).encode()
    response = api.post("/v1/environments", content=body)
    assert "limit" in assert_envelope(response, 413, "invalid_request_error")


def test_daytona_body_past_the_limit_is_413_in_daytona_shape(api: httpx.Client) -> None:
    response = api.post("/sandbox", content=_chunks(MIB), headers={"content-type": "text/plain"})
    assert response.status_code == 413
    assert "limit" in response.json()["message"]


def test_deep_json_is_400(api: httpx.Client) -> None:
    body = "[" * 65 + "]" * 65
    response = api.post("/v1/environments", content=body, headers=JSON)
    assert "deeper" in assert_envelope(response, 400, "invalid_request_error")
    # A depth of 100k (a RecursionError in a naive parser) is the same 400.
    response = api.post("/v1/environments", content="[" * 100_000 + "]" * 100_000, headers=JSON)
    assert_envelope(response, 400, "invalid_request_error")


def test_brackets_inside_strings_do_not_count_as_depth(api: httpx.Client) -> None:
    response = api.post("/v1/environments", json={"name": "[" * 200, "image": "x{{"})
    assert_envelope(response, 400, "invalid_request_error")  # a bad name, not depth
    assert "deeper" not in response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/environments", '{"name": "nul", "labels": {"a": "b\\u0000c"}}'),
        ("/v1/environments", '{"name": "sur", "labels": {"a": "\\ud800"}}'),
        ("/v1/environments", '{"name": "key", "labels": {"\\udfff": "v"}}'),
        ("/v1/environments", '{"name": "env", "env": {"A": "x\\u0000"}}'),
        ("/v1/keys", '{"name": "k\\u0000", "permissions": ["environments:read"]}'),
        ("/v1/work", '{"kind": "x", "data": {"deep": [{"v": "\\ud83d"}]}}'),
        ("/sandbox", '{"labels": {"a": "\\u0000"}}'),
    ],
)
def test_nul_and_lone_surrogates_in_strings_are_400(
    api: httpx.Client, path: str, body: str
) -> None:
    response = api.post(path, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert "NUL" in response.text or "surrogate" in response.text


def test_surrogate_pairs_and_escaped_backslashes_are_fine(api: httpx.Client) -> None:
    # Refused for its cpu only: the pair is one character, the backslash escaped.
    body = '{"name": "p", "cpu": "many", "labels": {"a": "\\ud83d\\ude00", "b": "\\\\u0000"}}'
    response = api.post("/v1/environments", content=body, headers=JSON)
    assert "cpu" in assert_envelope(response, 400, "invalid_request_error")


def test_headers_past_the_limit_are_refused(server: LiveServer, api: httpx.Client) -> None:
    host, port = server.url.split("//")[1].split(":")
    request = (
        f"GET /v1/environments HTTP/1.1\r\nHost: {host}\r\nX-Big: {'a' * 200_000}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)  # all of it: the server reads on while it answers
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert api.get("/v1/environments").status_code == 200


BIG = str(2**70)


@pytest.mark.parametrize("path", ["/v1/events", "/v1/environments/{id}/events"])
def test_event_cursor_past_int64_is_400(api: httpx.Client, path: str) -> None:
    env = create_env(api, name=f"cursor-{uuid.uuid4().hex[:8]}")
    url = path.format(id=env["id"])
    assert_envelope(api.get(url, params={"after": BIG}), 400, "invalid_request_error")
    for last in (BIG.encode(), "²".encode("latin-1")):
        response = api.get(url, params={"follow": "true"}, headers={"Last-Event-ID": last})
        assert_envelope(response, 400, "invalid_request_error")
    assert api.get(url, params={"after": str(2**63 - 1)}).json()["data"] == []


@pytest.mark.parametrize("since", [BIG, "nan", "inf", "-1"])
def test_logs_since_out_of_range_is_400(api: httpx.Client, since: str) -> None:
    env = create_env(api, name=f"since-{uuid.uuid4().hex[:8]}")
    response = api.get(f"/v1/environments/{env['id']}/logs", params={"since": since})
    assert "since" in assert_envelope(response, 400, "invalid_request_error")


@pytest.mark.parametrize(
    "url",
    [
        "/v1/environments/env%00x",
        "/v1/environments?name=a%00b",
        "/v1/environments?label=a%3Db%00",
        "/sandbox/x%00y",
    ],
)
def test_nul_in_path_or_query_is_400(api: httpx.Client, url: str) -> None:
    response = api.get(url)
    assert response.status_code == 400, response.text
    assert "NUL" in response.text


def test_more_than_64_labels_is_400(api: httpx.Client) -> None:
    for count in (65, 10_000):
        labels = {f"k{i}": "v" for i in range(count)}
        response = api.post("/v1/environments", json={"name": "many", "labels": labels})
        assert response.status_code in (400, 413), response.text
    assert (
        "64 labels"
        in api.post(
            "/v1/environments", json={"name": "many", "labels": {f"k{i}": "v" for i in range(65)}}
        ).text
    )


# ---- the hand-crafted nasty inputs of issue 16 ------------------------------------


@pytest.fixture(scope="module")
def running(server: LiveServer) -> Iterator[str]:
    """One running environment shared by the cases that reach inside one."""
    with server.client() as client:
        env = running_env(client, name=f"nasty-{uuid.uuid4().hex[:8]}")
        yield env["id"]
        delete(client, env["id"])


def _assert_4xx_envelope(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["type"] and body["error"]["message"], body


def test_huge_json_array_is_413_and_huge_flat_object_too(api: httpx.Client) -> None:
    flat = json.dumps({f"k{i}": i for i in range(100_000)})
    _assert_4xx_envelope(api.post("/v1/environments", content=flat, headers=JSON))
    wide = "[" + ",".join(["1"] * 200_000) + "]"
    _assert_4xx_envelope(api.post("/v1/environments", content=wide, headers=JSON))


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "bad-\xff\xfe"}',
        b'{"name": "x", "labels": {"a": "\xc3\x28"}}',
        b'{"name": "x", "labels": {"\xed\xa0\x80": "v"}}',  # a surrogate, UTF-8-encoded
        b"\xef\xbb\xbf\x80\x81",
    ],
)
def test_invalid_utf8_in_a_json_body_is_400(api: httpx.Client, body: bytes) -> None:
    response = api.post("/v1/environments", content=body, headers=JSON)
    assert_envelope(response, 400, "invalid_request_error")


@pytest.mark.parametrize(
    "url",
    [
        "/v1/environments?name=%ff%fe",
        "/v1/environments?label=a%3D%c3%28",
        "/v1/environments/env_%ff%fe",
        "/v1/events?after=%ff",
        "/sandbox/%c3%28",
    ],
)
def test_invalid_utf8_in_a_query_or_path_is_4xx(api: httpx.Client, url: str) -> None:
    response = api.get(url)
    assert 400 <= response.status_code < 500, response.text
    assert response.json(), response.text


@pytest.mark.parametrize(
    "env",
    ["..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..", "...."],
)
def test_path_traversal_in_an_id_is_404(api: httpx.Client, env: str) -> None:
    response = api.get(f"/v1/environments/{env}")
    assert response.status_code in (400, 404), response.text
    assert set(response.json()) == {"error"}
    assert "root:" not in response.text


@pytest.mark.parametrize(
    "path",
    ["../../etc/passwd", "/workspace/../../etc/passwd", "a/../../b", "%2e%2e%2f%2e%2e%2fetc"],
)
def test_path_traversal_in_a_file_path_is_400(api: httpx.Client, running: str, path: str) -> None:
    for method, url in [
        ("GET", f"/v1/environments/{running}/files"),
        ("GET", f"/v1/environments/{running}/files/stat"),
        ("PUT", f"/v1/environments/{running}/files"),
    ]:
        # A percent-encoded spelling is sent as is (the server decodes it once).
        target = f"{url}?path={path}" if "%" in path else url
        params = None if "%" in path else {"path": path}
        response = api.request(method, target, params=params, content=b"x")
        assert "'..'" in assert_envelope(response, 400, "invalid_request_error")
        assert "root:" not in response.text


@pytest.mark.parametrize(
    "fields",
    [
        '{"name": "n", "memory_mb": 18446744073709551616}',
        '{"name": "n", "cpu": 1e400}',
        '{"name": "n", "cpu": -1e400}',
        '{"name": "n", "cpu": NaN}',
        '{"name": "n", "cpu": Infinity}',
        '{"name": "n", "cpu": -0}',
        '{"name": "n", "cpu": -0.0}',
        '{"name": "n", "disk_gb": 1e308}',
        '{"name": "n", "memory_mb": -9223372036854775809}',
    ],
)
def test_overflowing_numbers_in_a_body_are_400(api: httpx.Client, fields: str) -> None:
    response = api.post("/v1/environments", content=fields, headers=JSON)
    assert_envelope(response, 400, "invalid_request_error")


@pytest.mark.parametrize(
    "url",
    [
        "/v1/environments?limit=18446744073709551616",
        "/v1/environments?limit=-0",
        "/v1/environments?limit=NaN",
        "/v1/environments?limit=1e400",
        "/v1/events?after=-1",
        "/v1/events?after=18446744073709551616",
    ],
)
def test_overflowing_numbers_in_a_query_are_400(api: httpx.Client, url: str) -> None:
    assert_envelope(api.get(url), 400, "invalid_request_error")


def test_range_filters_past_what_a_column_holds_still_filter(api: httpx.Client) -> None:
    """Daytona's list filters, scaled to the column (GiB to MB), beyond a 64-bit
    integer: they compare (nothing is that big, everything is smaller), no overflow."""
    env = api.post("/v1/environments", json={"name": "ranged"}).json()
    try:
        big = "5.605238514929385e+16"
        assert api.get("/sandbox", params={"minMemoryGiB": big}).json()["items"] == []
        listed = api.get("/sandbox", params={"maxMemoryGiB": big, "maxCpu": "4.7e181"})
        assert listed.status_code == 200, listed.text
        assert env["id"] in [box["id"] for box in listed.json()["items"]]
    finally:
        api.delete(f"/v1/environments/{env['id']}")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "labels", "labels": {f"k{i}": "v" for i in range(10_000)}},
        {"labels": {f"k{i}": "v" for i in range(10_000)}},
    ],
)
def test_10k_labels_are_refused_native_and_daytona(api: httpx.Client, body: dict) -> None:
    path = "/v1/environments" if "name" in body else "/sandbox"
    response = api.post(path, json=body)
    assert response.status_code in (400, 413), response.text
    assert response.json()


@pytest.mark.parametrize(
    "url",
    [
        "/v1/environments?limit=1&limit=2",
        "/v1/environments?cursor=a&cursor=b",
        "/v1/events?after=1&after=2",
    ],
)
def test_duplicate_scalar_query_parameters_are_400(api: httpx.Client, url: str) -> None:
    assert "more than once" in assert_envelope(api.get(url), 400, "invalid_request_error")


def test_repeatable_query_parameters_may_repeat(api: httpx.Client) -> None:
    response = api.get("/v1/environments", params=[("label", "a=b"), ("label", "c=d")])
    assert response.status_code == 200, response.text
