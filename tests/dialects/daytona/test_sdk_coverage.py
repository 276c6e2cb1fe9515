"""Daytona's SDK, call by call: the map of its calls to HTTP routes
(tests/support/daytona_calls.py) lists every public call of the installed SDK, and
docs/daytona-sdk.md says what the app's current route table answers. No server is
needed: the route table is the app's as `create_app` builds it."""

import difflib

from tests.support.daytona_calls import (
    CALLS,
    COMPUTER_USE,
    DOC,
    README,
    REGENERATE,
    readme_with_summary,
    render,
    sdk_calls,
    served_routes,
)


def test_every_public_sdk_call_is_in_the_map() -> None:
    calls = sdk_calls()
    missing = sorted(set(calls) - set(CALLS))
    assert not missing, f"SDK calls missing from tests/support/daytona_calls.py: {missing}"
    gone = sorted(set(CALLS) - set(calls))
    assert not gone, f"mapped calls the SDK no longer has: {gone}"


def test_the_count_is_the_issues_168_with_132_outside_computer_use() -> None:
    calls = [c for c in sdk_calls() if not c.startswith("PtyHandle.")]
    computer_use = [c for c in calls if c.split(".")[0] in COMPUTER_USE]
    assert (len(calls), len(calls) - len(computer_use)) == (168, 132)


def test_every_mapped_route_is_written_method_then_path() -> None:
    methods = {"GET", "POST", "PUT", "PATCH", "DELETE", "WS"}
    bad = [
        (name, route)
        for name, call in CALLS.items()
        for route in call.routes
        if route.split(" ")[0] not in methods or not route.split(" ", 1)[1].startswith("/")
    ]
    assert not bad


def test_the_coverage_document_matches_the_route_table() -> None:
    expected = render(served_routes())
    actual = DOC.read_text() if DOC.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            actual.splitlines(keepends=True), expected.splitlines(keepends=True), "docs", "now"
        )
    )
    assert actual == expected, f"docs/daytona-sdk.md is stale; run `{REGENERATE}`\n{diff}"


def test_the_readme_table_matches_the_route_table() -> None:
    readme = README.read_text()
    assert readme == readme_with_summary(readme, served_routes()), (
        f"the Daytona SDK table in README.md is stale; run `{REGENERATE}`"
    )
