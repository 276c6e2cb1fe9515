"""The inside-an-environment API is in the OpenAPI document with precise schemas."""

import httpx

from tests.support.inside import METRIC_FIELDS
from tests.support.server import LiveServer


def test_openapi_lists_exec_files_logs_metrics_and_streams(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    paths = spec["paths"]
    expected = {
        "/v1/environments/{env}/exec": ["post"],
        "/v1/environments/{env}/exec/stream": ["post"],
        "/v1/environments/{env}/processes": ["get", "post"],
        "/v1/environments/{env}/processes/{process_id}": ["get", "delete"],
        "/v1/environments/{env}/processes/{process_id}/output": ["get"],
        "/v1/environments/{env}/processes/{process_id}/stdin": ["post"],
        "/v1/environments/{env}/processes/{process_id}/signal": ["post"],
        "/v1/environments/{env}/pty": ["get"],
        "/v1/environments/{env}/files": ["get", "put", "delete"],
        "/v1/environments/{env}/files/upload": ["post"],
        "/v1/environments/{env}/files/list": ["get"],
        "/v1/environments/{env}/files/stat": ["get"],
        "/v1/environments/{env}/files/search": ["get"],
        "/v1/environments/{env}/files/mkdir": ["post"],
        "/v1/environments/{env}/files/move": ["post"],
        "/v1/environments/{env}/logs": ["get"],
        "/v1/environments/{env}/metrics": ["get"],
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert set(methods) <= set(paths[path]), (path, paths[path].keys())
    schemas = spec["components"]["schemas"]
    assert set(schemas["ExecResult"]["properties"]) >= {
        "exit_code",
        "stdout",
        "stderr",
        "timed_out",
        "duration_ms",
    }
    assert set(schemas["ExecRequest"]["properties"]) >= {
        "command",
        "cwd",
        "env",
        "timeout",
        "stdin",
    }
    metrics = schemas["ResourceMetrics"]["properties"]
    assert set(metrics) >= METRIC_FIELDS
    assert "metrics" in schemas["Environment"]["properties"]
    stream = paths["/v1/environments/{env}/exec/stream"]["post"]["responses"]["200"]["content"]
    assert "text/event-stream" in stream
    events = paths["/v1/events"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/event-stream"} <= set(events)
    download = paths["/v1/environments/{env}/files"]["get"]["responses"]["200"]["content"]
    assert "application/octet-stream" in download
