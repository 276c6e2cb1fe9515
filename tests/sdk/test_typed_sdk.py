"""The typed SDK against a live server: docs/sdk.md's examples run as written, every
error type of the envelope raises its own class, the async client does what the
sync one does, and retries happen only where they are safe."""

import asyncio
import inspect
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbay.domain import errors as domain_errors
from sandbay.domain.environments import Environment
from sandbay.domain.quotas import Quotas
from sandbay.sdk import (
    ApiConnectionError,
    ApiError,
    AsyncSandbay,
    AuthenticationError,
    Client,
    ConflictError,
    ExecOutput,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    Retry,
    Sandbay,
    WaitTimeoutError,
    aio,
    sync,
)
from sandbay.sdk.errors import BY_TYPE
from tests.support.server import ADMIN_KEY, LiveServer

DOC = Path(__file__).parents[2] / "docs" / "sdk.md"
FAST = Retry(retries=3, backoff=0.01)


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_docs_examples_run_against_a_live_server(server: LiveServer) -> None:
    namespace: dict[str, Any] = {"SANDBAY_URL": server.url, "SANDBAY_KEY": server.key}
    blocks = _blocks()
    assert len(blocks) >= 8
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{DOC.name} block {number}", "exec")
        exec(code, namespace)  # noqa: S102 - the documentation's own examples
    assert isinstance(namespace["env"], Environment)


def test_every_error_type_of_the_server_has_its_class() -> None:
    server_types = {
        cls.error_type
        for cls in vars(domain_errors).values()
        if isinstance(cls, type) and issubclass(cls, domain_errors.SandbayError)
    }
    assert server_types <= set(BY_TYPE)
    assert all(issubclass(cls, ApiError) for cls in BY_TYPE.values())


def test_sync_and_async_clients_offer_the_same_calls() -> None:
    def calls(module: Any) -> dict[str, list[str]]:
        found = {}
        for name, cls in vars(module).items():
            if isinstance(cls, type) and issubclass(cls, module._Resource):
                for method, fn in vars(cls).items():
                    if not method.startswith("_"):
                        found[f"{name}.{method}"] = list(inspect.signature(fn).parameters)
        return found

    assert calls(sync) == calls(aio)


@pytest.fixture(scope="module")
def scoped_org(server: LiveServer) -> tuple[str, str]:
    """A fresh organization (id, key), so its quotas touch no other test."""
    with Sandbay(server.url, ADMIN_KEY) as admin:
        made = admin.orgs.create(f"sdk-{uuid.uuid4().hex[:8]}")
    return made.id, made.api_key.key


def test_each_error_type_raises_its_class(server: LiveServer, scoped_org: tuple[str, str]) -> None:
    org_id, key = scoped_org
    with Sandbay(server.url, key, retry=FAST) as client:
        with pytest.raises(NotFoundError) as missing:
            client.environments.get("sdk-no-such-env")
        assert (missing.value.status, missing.value.type) == (404, "not_found_error")
        with pytest.raises(InvalidRequestError) as bad:
            client.environments.create(memory_mb=1)
        assert bad.value.status == 400 and "memory_mb" in bad.value.message

        env = client.environments.create(name="sdk-errors", memory_mb=128)
        try:
            with pytest.raises(ConflictError) as taken:
                client.environments.create(name="sdk-errors")
            assert taken.value.status == 409
            with pytest.raises(WaitTimeoutError):
                client.environments.wait(env.id, "archived", timeout=0.5)

            reader = client.keys.create("reader", permissions=["environments:read"])
            with Sandbay(server.url, reader.key, retry=FAST) as limited:
                assert limited.environments.get(env.id).id == env.id
                with pytest.raises(PermissionDeniedError) as denied:
                    limited.environments.stop(env.id)
                assert denied.value.status == 403
            client.keys.revoke(reader.id)
            with Sandbay(server.url, reader.key, retry=FAST) as revoked:
                with pytest.raises(AuthenticationError) as refused:
                    revoked.environments.get(env.id)
                assert refused.value.status == 401

            with Sandbay(server.url, ADMIN_KEY) as admin:
                admin.orgs.set_quotas(org_id, Quotas(max_running_environments=0))
            with pytest.raises(QuotaExceededError) as quota:
                client.environments.create(name="sdk-over-quota")
            assert isinstance(quota.value, InvalidRequestError)
            assert quota.value.message.startswith("quota_exceeded:")
        finally:
            client.environments.delete(env.id)
            client.environments.wait(env.id, "deleted")


def test_the_dict_client_raises_the_same_classes(server: LiveServer) -> None:
    with Client(server.url, server.key) as client:
        with pytest.raises(NotFoundError) as missing:
            client.get_environment("sdk-no-such-env")
        assert isinstance(missing.value, ApiError) and missing.value.type == "not_found_error"
        with pytest.raises(InvalidRequestError):
            client.create_environment(cpu=-1)


def test_async_client_creates_waits_and_streams(server: LiveServer) -> None:
    async def scenario() -> tuple[list[str], int | None, list[str]]:
        async with AsyncSandbay(server.url, server.key) as client:
            env = await client.environments.create(name=f"sdk-async-{uuid.uuid4().hex[:6]}")
            try:
                await client.environments.wait(env.id, "running", timeout=120)
                chunks, code = [], None
                async for item in client.environments.exec_stream(env.id, "echo a; echo b"):
                    if isinstance(item, ExecOutput):
                        chunks.append(item.data)
                    else:
                        code = item.exit_code
                await client.files.upload(env.id, "x.txt", b"async")
                assert await client.files.download(env.id, "/workspace/x.txt") == b"async"
                with pytest.raises(NotFoundError):
                    await client.environments.get("sdk-no-such-env")
                states = []
                await client.environments.stop(env.id, force=True)
                async for event in client.environments.follow_events(env.id, after=0):
                    if event.to_state:
                        states.append(event.to_state)
                    if event.to_state == "stopped":
                        break
                return chunks, code, states
            finally:
                await client.environments.delete(env.id)
                await client.environments.wait(env.id, "deleted")

    chunks, code, states = asyncio.run(scenario())
    assert "".join(chunks) == "a\nb\n" and code == 0
    assert states[-2:] == ["stopping", "stopped"] and "running" in states


class Flaky(httpx.BaseTransport):
    """Forwards to the real server; for requests matching `fail`, the first answer
    is lost (a ReadError after the server acted) or replaced (by `status`)."""

    def __init__(self, fail: str, *, status: int | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.fail = fail
        self.status = status
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        matching = f"{request.method} {request.url.path}".startswith(self.fail)
        if matching:
            self.sent.append(request)
        response = self.inner.handle_request(request)
        if matching and len(self.sent) == 1:
            response.read()
            response.close()
            if self.status is None:
                raise httpx.ReadError("connection lost", request=request)
            return httpx.Response(self.status, headers={"Retry-After": "0"}, request=request)
        return response


def test_a_create_whose_answer_was_lost_is_retried_and_creates_one(server: LiveServer) -> None:
    name = f"sdk-retry-{uuid.uuid4().hex[:6]}"
    flaky = Flaky("POST /v1/environments")
    with Sandbay(server.url, server.key, retry=FAST, transport=flaky) as client:
        env = client.environments.create(name=name)
        try:
            keys = {r.headers["Idempotency-Key"] for r in flaky.sent}
            assert len(flaky.sent) == 2 and len(keys) == 1
            same = client.environments.list(limit=1000).data
            assert [e.id for e in same if e.name == name] == [env.id]
        finally:
            client.environments.delete(env.id)


def test_a_get_is_retried_past_a_503(server: LiveServer) -> None:
    flaky = Flaky("GET /v1/keys", status=503)
    with Sandbay(server.url, server.key, retry=FAST, transport=flaky) as client:
        assert client.keys.list().data
    assert len(flaky.sent) == 2


def test_a_command_is_never_sent_twice(server: LiveServer) -> None:
    flaky = Flaky("POST /v1/environments/sdk-no-such-env/exec")
    client = Sandbay(server.url, server.key, retry=FAST, transport=flaky)
    with client, pytest.raises(ApiConnectionError):
        client.environments.exec("sdk-no-such-env", "true")
    assert len(flaky.sent) == 1
