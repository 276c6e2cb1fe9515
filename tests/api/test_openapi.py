"""The OpenAPI document is valid and describes the native API."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema import validate as validate_instance
from openapi_spec_validator import validate

from tests.support.server import LiveServer


def test_openapi_document_validates_and_lists_the_api(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    validate(spec)
    paths = spec["paths"]
    for path in (
        "/v1/environments",
        "/v1/environments/{env}",
        "/v1/environments/{env}/start",
        "/v1/environments/{env}/stop",
        "/v1/environments/{env}/restart",
        "/v1/environments/{env}/wait",
        "/v1/environments/{env}/events",
        "/v1/keys",
        "/v1/orgs",
    ):
        assert path in paths, path
    schemes = spec["components"]["securitySchemes"]
    assert {"APIKeyHeader", "HTTPBearer"} <= set(schemes)
    env_schema = spec["components"]["schemas"]["Environment"]["properties"]
    for field in ("id", "name", "state", "desired_state", "runner_id", "container_id", "version"):
        assert field in env_schema


WRITES = {"post", "put", "patch", "delete"}


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield path, method, op


def _expected_errors(method: str, op: dict[str, Any]) -> set[str]:
    where = {p["in"] for p in op.get("parameters", [])}
    expected = {"400"}
    if "path" in where or ("requestBody" in op and op.get("security")):
        expected.add("404")
    if op.get("security"):
        expected |= {"401", "403", "429", "503"}
    if method in WRITES:
        expected |= {"409", "413"}
    if "path" in where:
        expected.add("409")
    if method == "post":
        expected.add("422")
    return expected


def _error_ref(spec: dict[str, Any], path: str, method: str, status: str) -> str:
    schema = spec["paths"][path][method]["responses"][status]["content"]["application/json"]
    return str(schema["schema"]["$ref"]).rsplit("/", 1)[-1]


def test_every_operation_declares_the_errors_it_can_answer(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    missing = []
    for path, method, op in _operations(spec):
        declared = set(op["responses"])
        if lacking := _expected_errors(method, op) - declared:
            missing.append(f"{method.upper()} {path}: {sorted(lacking)}")
        for status in (s for s in declared if s >= "400"):
            assert "application/json" in op["responses"][status].get("content", {}), (path, status)
        for status in {"429", "503"} & declared:
            assert "Retry-After" in op["responses"][status]["headers"], (path, status)
    assert not missing, "\n".join(missing)
    # FastAPI's 422 shape is never answered (validation errors are 400 envelopes).
    assert "HTTPValidationError" not in str(spec["paths"])
    assert "412" in spec["paths"]["/v1/environments/{env}"]["patch"]["responses"]
    assert "404" not in spec["paths"]["/v1/environments"]["get"]["responses"]
    assert "401" not in spec["paths"]["/healthz"]["get"]["responses"]


def test_event_streams_are_declared_as_events_of_json(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    stream = spec["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]
    event = stream["text/event-stream"]["schema"]
    assert event["properties"]["data"]["contentMediaType"] == "application/json"
    assert "org_id" in event["properties"]["data"]["contentSchema"]["properties"]


@pytest.mark.parametrize(
    ("path", "method", "shape"),
    [
        ("/v1/environments/{env}", "get", "Error"),
        ("/v1/keys", "post", "Error"),
        ("/sandbox/{sandboxIdOrName}", "get", "DaytonaError"),
        ("/toolbox/{sandboxId}/files", "get", "DaytonaToolboxError"),
        ("/api/v1/cloud/environments/{environment_id}/work/poll", "get", "QoderError"),
        ("/api/v1/environments", "get", "CloudCliError"),
        ("/v1/apps", "get", "CamposCloudError"),
        ("/v1/instances", "get", "ChowderError"),
    ],
)
def test_errors_are_declared_in_the_shape_the_surface_answers(
    server: LiveServer, path: str, method: str, shape: str
) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert _error_ref(spec, path, method, "400") == shape
    assert shape in spec["components"]["schemas"]


def test_a_refusal_matches_its_declared_shape(server: LiveServer) -> None:
    """What the server answers is what the document says, native and dialect."""
    spec = httpx.get(f"{server.url}/openapi.json").json()
    with server.client() as client:
        cases = [
            ("/v1/environments/{env}", "/v1/environments/env_nope", 404),
            ("/sandbox/{sandboxIdOrName}", "/sandbox/nope", 404),
            ("/v1/instances/{instance_id}", "/v1/instances/nope", 404),
            ("/v1/apps/{appId}", "/v1/apps/nope", 404),
            ("/api/v1/environments/{id}", "/api/v1/environments/nope", 404),
            ("/toolbox/{sandboxId}/files", "/toolbox/nope/files?path=/", 404),
        ]
        for template, url, status in cases:
            response = client.get(url)
            assert response.status_code == status, response.text
            declared = spec["paths"][template]["get"]["responses"]
            assert str(response.status_code) in declared, (url, response.status_code)
            ref = _error_ref(spec, template, "get", str(response.status_code))
            validate_instance(response.json(), {**spec["components"]["schemas"][ref]})
    with server.client(key="") as anonymous:
        response = anonymous.get("/v1/environments")
        assert response.status_code == 401
        validate_instance(response.json(), spec["components"]["schemas"]["Error"])
