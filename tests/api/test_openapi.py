"""The OpenAPI document is valid and describes the native API."""

import httpx
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
