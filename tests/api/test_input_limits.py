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

from tests.support.factories import assert_envelope, create_env
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
        try:
            sock.sendall(request)
            answer = sock.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431") or b" 400 " in answer[:20]
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
