"""The Python SDK drives an environment's inside: exec, streams, files, logs, metrics."""

import io

import pytest

from sandbay.sdk.client import ApiError, Client
from tests.support.factories import delete, running_env
from tests.support.server import LiveServer


def test_sdk_exec_files_logs_and_metrics(server: LiveServer) -> None:
    with server.client() as api:
        env = running_env(api, name="sdk-inside", command="echo booted; exec sleep infinity")
    with Client(server.url, server.key) as client:
        result = client.exec(env["id"], ["sh", "-c", "cat; exit 2"], stdin="in")
        assert (result["exit_code"], result["stdout"]) == (2, "in")
        events = list(client.exec_stream(env["id"], "echo a; echo b >&2"))
        assert events[-1][0] == "exit" and {e for e, _ in events} >= {"stdout", "stderr"}
        assert client.upload(env["id"], "/workspace/s.txt", io.BytesIO(b"sdk"))["size"] == 3
        sink = io.BytesIO()
        assert client.download(env["id"], "/workspace/s.txt", sink) == 3
        assert sink.getvalue() == b"sdk"
        assert [f["name"] for f in client.list_files(env["id"])] == ["s.txt"]
        assert client.logs(env["id"]) == "booted\n"
        assert "data" in client.metrics(env["id"])
        with pytest.raises(ApiError) as missing:
            client.download(env["id"], "/nope", io.BytesIO())
        assert missing.value.status == 404 and missing.value.type == "not_found_error"
        first = next(client.follow_events(env["id"], after=0))
        assert first["type"] == "environment.created"
    with server.client() as api:
        delete(api, env["id"])
