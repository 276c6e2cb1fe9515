"""The tenant matrix: every route that takes an id in its path (native, every dialect,
toolbox and WebSocket routes, routes left out of the OpenAPI document), called with
another organization's key on this organization's real objects, answers exactly what
this organization's key gets for a random id of the same kind, with nothing of the
object in it. Routes come from the app's route table and bodies from `/openapi.json`;
a route whose path parameters this module cannot name fails the meta-test."""

from collections.abc import Iterator

import httpx
import pytest

from tests.support.matrix import (
    CASES,
    REFUSED_BEFORE_LOOKUP,
    World,
    answer,
    assert_no_trace,
    build_world,
    looked_up,
)
from tests.support.routes import Case, app_routes, case_id, unnamed_parameters
from tests.support.server import LiveServer


@pytest.fixture(scope="module")
def world(server: LiveServer) -> Iterator[World]:
    with server.client() as api:
        built = build_world(server, api)
        try:
            yield built
        finally:
            built.close(api)


def test_every_route_with_a_path_parameter_has_a_case(server: LiveServer) -> None:
    """A new route whose parameters have no id kind here fails: name its kind in
    `tests/support/matrix.py` and it is in the matrix."""
    assert unnamed_parameters() == []
    labels = {r.label for r in app_routes()}
    assert set(REFUSED_BEFORE_LOOKUP) - labels == set(), "stale entries"
    with httpx.Client(base_url=server.url) as client:
        document = client.get("/openapi.json").json()
    served = {(r.method, r.path) for r in app_routes()}
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in {"get", "put", "post", "patch", "delete"}
    }
    assert documented - served == set()
    with_ids = {(m, p) for m, p in documented if "{" in p}
    assert with_ids <= {(c.route.method, c.route.path) for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_another_organization_gets_what_a_random_id_gets(world: World, case: Case) -> None:
    theirs = answer(world, case, key=world.other_key, real=True)
    random = answer(world, case, key=world.key, real=False)
    if case.route.label not in REFUSED_BEFORE_LOOKUP:
        assert looked_up(random), f"{case.route.label} never reaches its lookup: {random}"
    assert theirs == random, f"{case.route.label}: {theirs} != {random}"
    assert_no_trace(world, theirs)
