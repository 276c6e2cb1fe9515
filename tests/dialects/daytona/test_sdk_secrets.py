"""Daytona's secrets and domain allow lists through the unchanged SDK: `daytona.secret`
creates, lists (page by page), gets, updates and deletes the organization's secrets
without ever answering a value; a sandbox created with `secrets={"TOKEN": name}` sees
only the secret's placeholder, and its `domain_allow_list` is the native
`network_domain_allow_list`, changed live by `update_network_settings`."""

import contextlib
import uuid
from collections.abc import Iterator

import httpx
import pytest
from daytona import (
    CreateSandboxFromSnapshotParams,
    CreateSecretParams,
    Daytona,
    Sandbox,
    Secret,
    UpdateSecretParams,
)
from daytona_api_client.exceptions import ApiException

from tests.support.agents import new_secret


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def secret(daytona: Daytona) -> Iterator[tuple[Secret, str]]:
    value = new_secret("sk-daytona")
    made = daytona.secret.create(
        CreateSecretParams(name=_name("dt_token"), value=value, hosts=["api.example.com"])
    )
    yield made, value
    with contextlib.suppress(ApiException):  # the test deleted it
        daytona.secret.delete(made.id)


def test_secret_round_trip_never_answers_the_value(
    daytona: Daytona, api: httpx.Client, secret: tuple[Secret, str]
) -> None:
    made, value = secret
    assert made.id.startswith("sec_") and made.placeholder.startswith("sandbay_secret_")
    assert made.hosts == ["api.example.com"] and made.description is None

    got = daytona.secret.get(made.id)
    assert (got.name, got.placeholder, got.hosts) == (made.name, made.placeholder, made.hosts)

    new_value = new_secret("sk-rotated")
    updated = daytona.secret.update(
        made.id, UpdateSecretParams(value=new_value, hosts=["*.example.com"], description="d")
    )
    assert updated.placeholder == made.placeholder  # sandboxes need nothing new
    assert (updated.hosts, updated.description) == (["*.example.com"], "d")

    answers = [
        api.get("/secret").text,
        api.get("/secret/paginated").text,
        api.get(f"/secret/{made.id}").text,
        api.get(f"/secret/{made.name}").text,
    ]
    assert all(made.id in text for text in answers)
    assert not any(value in text or new_value in text for text in answers)

    taken = api.post("/secret", json={"name": made.name, "value": "x"})
    assert taken.status_code == 409 and taken.json()["statusCode"] == 409

    daytona.secret.delete(made.id)
    with pytest.raises(ApiException) as gone:
        daytona.secret.get(made.id)
    assert gone.value.status == 404


def test_pages_walk_every_secret_once(daytona: Daytona, api: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:6]
    made = [
        daytona.secret.create(CreateSecretParams(name=f"page_{tag}_{i}", value=new_secret()))
        for i in range(3)
    ]
    try:
        seen: list[str] = []
        cursor = None
        while True:
            page = daytona.secret.list(cursor=cursor, limit=2, name=tag, sort="name", order="asc")
            assert page.total == 3
            seen += [s.name for s in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == [s.name for s in made]
        newest = daytona.secret.list(limit=1, name=tag.upper())  # createdAt, desc
        assert [s.name for s in newest.items] == [made[-1].name] and newest.next_cursor
        bad = api.get("/secret/paginated", params={"cursor": "nope"})
        assert bad.status_code == 400 and "cursor" in bad.json()["message"]
        assert api.get("/secret/paginated", params={"limit": 0}).status_code == 400
        assert api.get("/secret/paginated", params={"sort": "value"}).status_code == 400
    finally:
        for s in made:
            daytona.secret.delete(s.id)


def test_bad_secrets_are_clear_400s(api: httpx.Client) -> None:
    for body in (
        {"name": "1starts-with-a-digit", "value": "x"},
        {"name": _name("ok"), "value": ""},
        {"name": _name("ok"), "value": "x", "hosts": ["https://not a host"]},
        {"name": _name("ok")},
    ):
        answer = api.post("/secret", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["statusCode"] == 400
    assert api.patch("/secret/sec_missing", json={"value": "x"}).status_code == 404


@pytest.fixture
def sandbox(daytona: Daytona, secret: tuple[Secret, str]) -> Iterator[Sandbox]:
    made, _ = secret
    params = CreateSandboxFromSnapshotParams(
        secrets={"TOKEN": made.name},
        domain_allow_list="PyPI.org, *.pypi.org",
        auto_stop_interval=0,
    )
    box = daytona.create(params, timeout=120)
    yield box
    daytona.delete(box, wait=True)


@pytest.mark.docker
@pytest.mark.usefixtures("sqlite_only")
def test_a_sandbox_sees_the_placeholder_and_its_domain_list_is_native(
    daytona: Daytona, api: httpx.Client, secret: tuple[Secret, str], sandbox: Sandbox
) -> None:
    made, value = secret
    assert sandbox.process.exec("printf %s $TOKEN").result == made.placeholder
    assert value not in sandbox.process.exec("env").result
    assert sandbox.domain_allow_list == "pypi.org,*.pypi.org"

    native = api.get(f"/v1/environments/{sandbox.id}").json()
    assert native["network_domain_allow_list"] == ["pypi.org", "*.pypi.org"]
    assert native["secrets"] == {"TOKEN": made.name}

    sandbox.update_network_settings(domain_allow_list="example.com")
    assert sandbox.domain_allow_list == "example.com"
    native = api.get(f"/v1/environments/{sandbox.id}").json()
    assert native["network_domain_allow_list"] == ["example.com"]

    sandbox.update_secrets({})
    assert sandbox.process.exec("printf %s ${TOKEN-unset}").result == "unset"
    assert api.get(f"/v1/environments/{sandbox.id}").json()["secrets"] == {}
