"""Daytona's Socket.IO event stream through its unchanged SDK: the SDK's sandboxes
follow state changes pushed to them, its waits (`stop`, `start`) end on the event
rather than on a poll, a wrong key is refused, and no organization (nor a key limited
to some environments) hears of sandboxes it may not see."""

import asyncio
import threading
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any

import httpx
import pytest
import socketio  # type: ignore[import-untyped]
from daytona import AsyncDaytona, AsyncSandbox, Daytona, DaytonaConfig, Sandbox, SandboxState

from tests.support.factories import create_env, delete, scoped_key, stop, wait_state
from tests.support.polling import eventually
from tests.support.server import ADMIN_KEY, LiveServer

EVENTS = ("sandbox.created", "sandbox.state.updated")


@pytest.fixture
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    box = daytona.create(timeout=120)
    try:
        yield box
    finally:
        daytona.delete(box)


def value(state: Enum | None) -> str:
    """A state of either SDK client as its wire value."""
    return str(state.value) if state is not None else ""


def connected(client: Daytona | AsyncDaytona) -> bool:
    """Whether the SDK's event connection is up (events before it are not replayed)."""
    dispatcher = client._event_dispatcher
    return dispatcher is not None and dispatcher.is_connected


def polls_blind_to(box: Sandbox | AsyncSandbox, final: str) -> list[str]:
    """Make the SDK's own `GET /sandbox/{id}` polls of this sandbox never show the
    state `final` (they answer the state the sandbox had before), so a wait for it
    can only end on the pushed event; returns the real states the polls got."""
    seen: list[str] = []
    before = box.state
    api = box._sandbox_api
    real = api.get_sandbox

    def masked(dto: Any) -> Any:
        seen.append(value(dto.state))
        return dto.model_copy(update={"state": before}) if value(dto.state) == final else dto

    if isinstance(box, AsyncSandbox):

        async def get_async(*args: Any, **kwargs: Any) -> Any:
            return masked(await real(*args, **kwargs))

        api.get_sandbox = get_async  # type: ignore[method-assign]
    else:
        api.get_sandbox = lambda *a, **k: masked(real(*a, **k))  # type: ignore[method-assign]
    return seen


class Listener:
    """A raw Socket.IO client as the SDK connects, recording what it hears."""

    def __init__(self, server: LiveServer, key: str) -> None:
        self.client = socketio.Client(reconnection=False)
        self.heard: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        for name in EVENTS:
            self.client.on(name, self._recorder(name))
        self.client.connect(
            server.url,
            socketio_path="/socket.io/",
            auth={"token": key},
            transports=["websocket"],
            wait_timeout=10,
        )

    def _recorder(self, name: str) -> Callable[[dict[str, Any]], None]:
        def record(data: dict[str, Any]) -> None:
            with self.lock:
                self.heard.append((name, data))

        return record

    def ids(self) -> set[str]:
        with self.lock:
            return {(d.get("sandbox") or d)["id"] for _, d in self.heard}

    def states(self, sandbox_id: str) -> list[str]:
        with self.lock:
            return [
                d["newState"]
                for name, d in self.heard
                if name == "sandbox.state.updated" and d["sandbox"]["id"] == sandbox_id
            ]

    def close(self) -> None:
        self.client.disconnect()


def test_sandbox_follows_pushed_state_changes_without_polling(
    daytona: Daytona, sandbox: Sandbox, api: httpx.Client
) -> None:
    eventually(lambda: connected(daytona), what="the SDK's event connection", timeout=15)
    gets = polls_blind_to(sandbox, "stopped")
    stop(api, sandbox.id)  # through the native API: the SDK object is not asked
    eventually(lambda: sandbox.state == SandboxState.STOPPED, what="the pushed stop", timeout=60)
    assert gets == []


def test_stop_and_start_waits_end_on_the_event_not_a_poll(
    daytona: Daytona, sandbox: Sandbox
) -> None:
    # The SDK waits by polling once a second as a safety net and ends the wait early
    # when the event arrives. Its polls here never show the target state, so each
    # wait can only have ended on the event (else it would time out).
    eventually(lambda: connected(daytona), what="the SDK's event connection", timeout=15)
    gets = polls_blind_to(sandbox, "stopped")
    sandbox.stop(timeout=60)
    assert sandbox.state == SandboxState.STOPPED
    assert gets, "the SDK polled once at least"
    gets = polls_blind_to(sandbox, "started")
    sandbox.start(timeout=60)
    assert value(sandbox.state) == "started"
    assert gets


def test_wrong_or_missing_key_is_refused(server: LiveServer) -> None:
    for auth in ({"token": "sbk_org_" + "0" * 32}, {}):
        client = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(
                server.url, socketio_path="/socket.io/", auth=auth, transports=["websocket"]
            )
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):  # another organization's id
        client.connect(
            server.url + "?organizationId=org_someone_else",
            socketio_path="/socket.io/",
            auth={"token": server.key},
            transports=["websocket"],
        )


def test_events_stay_within_the_organization_and_the_keys_environments(
    server: LiveServer, api: httpx.Client
) -> None:
    with server.client(key=ADMIN_KEY) as admin:
        created = admin.post("/v1/orgs", json={"name": "daytona-events-other"})
        assert created.status_code == 201, created.text
        other_key = created.json()["api_key"]["key"]
    mine = create_env(api, name="events-mine")
    allowed = create_env(api, name="events-allowed")
    limited_key = scoped_key(
        api, "events-limited", "environments:read", environment_ids=[allowed["id"]]
    )
    ours, theirs = Listener(server, server.key), Listener(server, other_key)
    limited = Listener(server, limited_key)
    try:
        wait_state(api, mine["id"], "running")
        stop(api, mine["id"])
        eventually(lambda: "stopped" in ours.states(mine["id"]), what="our stop event", timeout=60)
        assert ours.states(mine["id"])[-2:] == ["stopping", "stopped"]
        # The other organization's own sandbox reaches it, after ours would have.
        with server.client(key=other_key) as stranger:
            their_env = create_env(stranger, name="events-theirs")
            eventually(lambda: their_env["id"] in theirs.ids(), what="their own event", timeout=60)
            delete(stranger, their_env["id"])
        # The limited key hears of the environment it may see, after ours would have.
        stop(api, allowed["id"])
        eventually(lambda: "stopped" in limited.states(allowed["id"]), what="its event", timeout=60)
        assert mine["id"] not in theirs.ids()
        assert their_env["id"] not in ours.ids()
        assert limited.ids() == {allowed["id"]}
    finally:
        for listener in (ours, theirs, limited):
            listener.close()
        delete(api, mine["id"])
        delete(api, allowed["id"])


def test_async_client_stop_wait_ends_on_the_event(
    async_config: Callable[[], DaytonaConfig],
) -> None:
    async def scenario() -> None:
        async with AsyncDaytona(async_config()) as daytona:
            box: AsyncSandbox = await daytona.create(timeout=120)
            try:
                for _ in range(150):  # the event connection is set up in the background
                    if connected(daytona):
                        break
                    await asyncio.sleep(0.1)
                assert connected(daytona)
                seen = polls_blind_to(box, "stopped")
                await box.stop(timeout=60)
                assert value(box.state) == "stopped"
                assert seen
            finally:
                await daytona.delete(box)

    asyncio.run(scenario())
