"""Daytona's SDK, unchanged, changes sandboxes in place on real Docker: public status,
network policy (seen by a connection from inside one sandbox to another), TTL
(enforced: the sandbox is deleted), activity, variables, a live resize (seen in
`docker inspect`), recovery from `error`, the stop/archive/start/delete waits, every
list filter and sort, and the URLs it is handed behind a TLS reverse proxy. What it
did is checked through sandbay's native API and the engine."""

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import httpx
import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromImageParams,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaError,
    ListSandboxesQuery,
    Resources,
    Sandbox,
    SandboxState,
)
from daytona_api_client import SandboxListSortDirection, SandboxListSortField

from sandbay.services.access.origin import PublicAddress
from tests.support.factories import delete
from tests.support.polling import eventually
from tests.support.server import LiveServer

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]
GIB = 1024**3


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _native(api: httpx.Client, sandbox_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/environments/{sandbox_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def made(api: httpx.Client) -> Iterator[list[str]]:
    """Ids of the sandboxes a test makes, deleted at its end (unless already gone)."""
    ids: list[str] = []
    yield ids
    for sandbox_id in ids:
        if api.get(f"/v1/environments/{sandbox_id}").status_code == 200:
            delete(api, sandbox_id)


def _create(daytona: Daytona, made: list[str], **fields: Any) -> Sandbox:
    resources = fields.pop("resources", None)
    params: CreateSandboxFromImageParams | CreateSandboxFromSnapshotParams
    if resources is not None:
        params = CreateSandboxFromImageParams(
            image="sandbay-base:latest", resources=resources, auto_stop_interval=0, **fields
        )
    else:
        params = CreateSandboxFromSnapshotParams(auto_stop_interval=0, **fields)
    sandbox = daytona.create(params, timeout=120)
    made.append(sandbox.id)
    return sandbox


def test_settings_are_seen_natively_and_take_effect(
    daytona: Daytona, api: httpx.Client, docker_client: docker.DockerClient, made: list[str]
) -> None:
    sandbox = _create(daytona, made, name=f"set-{_tag()}", env_vars={"OLD": "x", "KEEP": "k"})

    sandbox.set_public(True)
    assert sandbox.public is True and _native(api, sandbox.id)["public"] is True
    sandbox.set_public(False)
    assert _native(api, sandbox.id)["public"] is False

    # TTL: deleted at a wall-clock time whatever the state; 0 clears it.
    before = datetime.now(UTC)
    sandbox.set_ttl(30)
    sandbox.refresh_data()
    at = _when(_native(api, sandbox.id)["auto_destroy_at"])
    assert before + timedelta(minutes=29) < at < datetime.now(UTC) + timedelta(minutes=31)
    assert sandbox.auto_destroy_at is not None and _when(sandbox.auto_destroy_at) == at.replace(
        microsecond=at.microsecond // 1000 * 1000
    )
    sandbox.set_ttl(0)
    assert _native(api, sandbox.id)["auto_destroy_at"] is None

    # Activity pushes back the idle clock.
    seen = _when(_native(api, sandbox.id)["last_activity_at"])
    eventually(lambda: datetime.now(UTC) > seen + timedelta(seconds=1.1), what="a second")
    sandbox.refresh_activity()
    assert _when(_native(api, sandbox.id)["last_activity_at"]) > seen

    # Variables: what the SDK sends (set, unset) reaches processes started afterwards.
    sandbox.update_env({"NEW": "1", "TEMP": "t"}, unset=["OLD"])
    assert _native(api, sandbox.id)["env"] == {"KEEP": "k", "NEW": "1", "TEMP": "t"}
    assert sandbox.process.exec("echo $NEW $TEMP $KEEP").result == "1 t k\n"
    sandbox.update_env({"NEW": "2"}, unset=["TEMP"])
    assert sandbox.process.exec("echo $NEW ${TEMP:-gone}").result == "2 gone\n"

    # Pause freezes the sandbox with its processes; start resumes it where it was.
    sandbox.set_auto_pause_interval(10)
    assert _native(api, sandbox.id)["auto_pause_interval"] == 10
    sandbox.process.exec("sh -c 'echo $$ > /tmp/held; exec sleep 600' >/dev/null 2>&1 &")
    held = sandbox.process.exec("cat /tmp/held").result.strip()
    sandbox.pause()
    assert sandbox.state == SandboxState.PAUSED
    native = _native(api, sandbox.id)
    assert (native["state"], native["holds_memory"]) == ("paused", True)
    sandbox.start()
    assert sandbox.state == SandboxState.STARTED
    assert sandbox.process.exec(f"kill -0 {held} && echo alive").result.strip() == "alive"
    sandbox.set_auto_pause_interval(0)

    # Resize: CPU and memory grow live (the engine's limits), the disk never.
    started_at = _native(api, sandbox.id)["started_at"]
    sandbox.resize(Resources(cpu=2, memory=2))
    assert (sandbox.cpu, sandbox.memory, sandbox.state) == (2, 2, SandboxState.STARTED)
    native = _native(api, sandbox.id)
    assert (native["cpu"], native["memory_mb"], native["started_at"]) == (2, 2048, started_at)
    host = docker_client.api.inspect_container(f"sandbay-{sandbox.id}")["HostConfig"]
    assert (host["NanoCpus"], host["Memory"]) == (2 * 10**9, 2 * GIB)
    v2, v1 = "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    limit = sandbox.process.exec(f"cat {v2} 2>/dev/null || cat {v1}").result.strip()
    assert limit == str(2 * GIB)
    with pytest.raises(DaytonaError, match="disk cannot be resized"):
        sandbox.resize(Resources(disk=10))
    with pytest.raises(DaytonaError, match="stopped to decrease"):
        sandbox.resize(Resources(memory=1))
    assert _native(api, sandbox.id)["memory_mb"] == 2048


def test_stop_archive_start_and_delete_wait_for_their_states(
    daytona: Daytona, api: httpx.Client, made: list[str]
) -> None:
    sandbox = _create(daytona, made, name=f"waits-{_tag()}")
    sandbox.fs.upload_file(b"kept", "/workspace/kept.txt")
    sandbox.stop()
    assert sandbox.state == SandboxState.STOPPED
    # A stopped sandbox may shrink; the next start runs with the new size.
    sandbox.resize(Resources(cpu=1, memory=2))
    assert _native(api, sandbox.id)["memory_mb"] == 2048
    sandbox.archive()
    eventually(lambda: daytona.get(sandbox.id).state == SandboxState.ARCHIVED, what="archived")
    sandbox.start(timeout=120)
    assert sandbox.state == SandboxState.STARTED
    assert sandbox.fs.download_file("/workspace/kept.txt") == b"kept"
    assert daytona.get(sandbox.id).memory == 2
    sandbox.delete(wait=True)
    assert sandbox.state == SandboxState.DESTROYED
    assert api.get(f"/v1/environments/{sandbox.id}").status_code == 404


def test_ttl_deletes_the_sandbox_when_it_runs_out(
    daytona: Daytona, api: httpx.Client, made: list[str]
) -> None:
    sandbox = _create(daytona, made, name=f"ttl-{_tag()}")
    sandbox.stop()  # whatever its state
    # What `set_ttl` sends, with a fraction of a minute so the test need not wait one.
    answer = api.post(f"/sandbox/{sandbox.id}/ttl/0.05")
    assert answer.status_code == 200, answer.text
    assert answer.json()["autoDestroyAt"]
    eventually(
        lambda: api.get(f"/v1/environments/{sandbox.id}").status_code == 404,
        what="the sandbox deleted by its TTL",
    )
    history = api.get(f"/v1/environments/{sandbox.id}/events", params={"limit": 1000})
    assert any(e["actor"] == "system:ttl" for e in history.json()["data"])


def test_network_settings_block_and_allow_connections_to_another_sandbox(
    daytona: Daytona, api: httpx.Client, made: list[str]
) -> None:
    tag = _tag()
    source = _create(daytona, made, name=f"net-src-{tag}")
    target = _create(daytona, made, name=f"net-dst-{tag}")
    served = api.post(
        f"/v1/environments/{target.id}/processes",
        json={"command": ["python3", "-m", "http.server", "8000"]},
    )
    assert served.status_code == 201, served.text
    address = target.process.exec("hostname -i").result.split()[0]

    def probe(host: str) -> str:
        return f"python3 -c \"import socket; socket.create_connection(('{host}', 8000), 5)\""

    eventually(lambda: target.process.exec(probe("127.0.0.1")).exit_code == 0, what="serving")

    def reaches() -> bool:
        return source.process.exec(probe(address)).exit_code == 0

    assert not reaches()  # another sandbox is refused unless the allow list names it
    source.update_network_settings(network_block_all=True)
    assert source.network_block_all is True
    assert _native(api, source.id)["network_block_all"] is True
    assert not reaches()

    source.update_network_settings(network_allow_list=f"{address}/32")
    native = _native(api, source.id)
    assert (native["network_block_all"], native["network_allow_list"]) == (
        False,
        [f"{address}/32"],
    )
    assert source.network_allow_list == f"{address}/32" and reaches()

    source.update_network_settings(network_allow_list="10.255.255.0/24")
    assert not reaches()
    source.update_network_settings(network_block_all=False)  # clears the list too
    native = _native(api, source.id)
    assert (native["network_block_all"], native["network_allow_list"]) == (False, [])
    assert not reaches()
    source.update_network_settings(domain_allow_list="Example.com")  # by name, live
    assert source.domain_allow_list == "example.com"
    assert _native(api, source.id)["network_domain_allow_list"] == ["example.com"]
    with pytest.raises(DaytonaError, match="network_domain_allow_list"):
        source.update_network_settings(domain_allow_list="https://not a name")


def test_recover_starts_a_sandbox_in_error_again_with_its_files(
    daytona: Daytona, api: httpx.Client, docker_client: docker.DockerClient, made: list[str]
) -> None:
    image = f"sbx-recover-{_tag()}"
    docker_client.images.get("sandbay-base:latest").tag(image, "latest")
    try:
        sandbox = _create(daytona, made, name=f"rec-{_tag()}", snapshot=f"{image}:latest")
        sandbox.fs.upload_file(b"survives", "/workspace/s.txt")
        with pytest.raises(DaytonaError, match="only one in error can be recovered"):
            sandbox.recover()
        sandbox.stop()
        # The container and its image go away: the next start cannot recreate it.
        docker_client.api.remove_container(f"sandbay-{sandbox.id}", force=True)
        docker_client.images.remove(f"{image}:latest")
        assert api.post(f"/v1/environments/{sandbox.id}/start").status_code == 200
        eventually(lambda: _native(api, sandbox.id)["state"] == "error", what="error")
        sandbox.refresh_data()
        assert sandbox.state == SandboxState.ERROR and sandbox.recoverable is True
        assert [s.id for s in daytona.list(ListSandboxesQuery(is_recoverable=True))] == [sandbox.id]

        docker_client.images.get("sandbay-base:latest").tag(image, "latest")
        sandbox.recover(timeout=120)
        assert sandbox.state == SandboxState.STARTED and not sandbox.recoverable
        assert sandbox.fs.download_file("/workspace/s.txt") == b"survives"
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(f"{image}:latest")


def test_list_honours_every_filter_and_sort_the_sdk_sends(
    daytona: Daytona, api: httpx.Client, made: list[str]
) -> None:
    tag = _tag()
    team = {"team": f"list-{tag}"}
    start = datetime.now(UTC) - timedelta(seconds=1)
    small = _create(daytona, made, name=f"a-{tag}", labels=team)
    big = _create(daytona, made, name=f"b-{tag}", labels=team, resources=Resources(cpu=2, memory=2))
    other = _create(daytona, made, name=f"c-{tag}", labels=team, public=True)
    other.stop()
    big.set_ttl(60)
    small.refresh_activity()

    def names(**query: Any) -> list[str]:
        return [s.name for s in daytona.list(ListSandboxesQuery(labels=team, **query))]

    everyone = {f"a-{tag}", f"b-{tag}", f"c-{tag}"}
    assert set(names()) == everyone
    assert names(name=f"B-{tag}") == [f"b-{tag}"]  # a case-insensitive prefix
    assert names(id=small.id[:-4].upper()) == [f"a-{tag}"]
    assert names(states=[SandboxState.STOPPED]) == [f"c-{tag}"]
    assert set(names(states=[SandboxState.STARTED, SandboxState.STOPPED])) == everyone
    assert names(states=[SandboxState.PAUSED]) == []  # no such state here: nothing
    assert names(states=[SandboxState.DESTROYED]) == []
    assert names(min_cpu=2) == [f"b-{tag}"] and set(names(max_cpu=1)) == everyone - {f"b-{tag}"}
    assert names(min_memory_gib=2) == [f"b-{tag}"]
    assert set(names(max_memory_gib=1)) == everyone - {f"b-{tag}"}
    assert set(names(min_disk_gib=1, max_disk_gib=1000)) == everyone
    assert names(min_disk_gib=1000) == []
    assert names(is_public=True) == [f"c-{tag}"]
    assert set(names(is_recoverable=False)) == everyone
    assert set(names(snapshots=["sandbay-base:latest"])) == everyone
    assert names(snapshots=["nothing:here"]) == []
    assert set(names(targets=["local"])) == everyone and names(targets=["eu"]) == []
    assert set(names(created_at_after=start)) == everyone
    assert names(created_at_before=start) == []
    assert f"a-{tag}" in names(last_activity_after=datetime.now(UTC) - timedelta(minutes=5))
    assert names(last_activity_before=start) == []
    hour = datetime.now(UTC) + timedelta(hours=1)
    assert names(auto_destroy_at_before=hour + timedelta(minutes=1)) == [f"b-{tag}"]
    assert names(auto_destroy_at_after=hour + timedelta(minutes=1)) == []

    asc, desc = SandboxListSortDirection.ASC, SandboxListSortDirection.DESC
    assert names(sort=SandboxListSortField.NAME, order=asc) == sorted(everyone)
    assert names(sort=SandboxListSortField.NAME, order=desc) == sorted(everyone, reverse=True)
    assert names(sort=SandboxListSortField.CPU, order=desc)[0] == f"b-{tag}"
    assert names(sort=SandboxListSortField.MEMORYGIB, order=asc)[-1] == f"b-{tag}"
    assert names(sort=SandboxListSortField.DISKGIB)  # every field sorts
    assert names(sort=SandboxListSortField.CREATEDAT, order=asc) == [
        f"a-{tag}",
        f"b-{tag}",
        f"c-{tag}",
    ]
    assert names(sort=SandboxListSortField.LASTACTIVITYAT, order=desc)[0] == f"a-{tag}"
    # One a page: the SDK follows the cursors through all three.
    assert names(limit=1, sort=SandboxListSortField.NAME, order=asc) == sorted(everyone)
    listed = api.get("/sandbox", params={"labels": f'{{"team": "list-{tag}"}}', "states": "bogus"})
    assert listed.status_code == 400 and "unknown state" in listed.json()["message"]


def test_urls_follow_a_trusted_proxy_or_the_configured_public_url(
    server: LiveServer, made: list[str], daytona: Daytona, make_server: Callable[..., LiveServer]
) -> None:
    sandbox = _create(daytona, made, name=f"url-{_tag()}")
    behind = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "sandbay.example.com"}
    with server.client() as raw:
        assert raw.get(f"/sandbox/{sandbox.id}").json()["toolboxProxyUrl"] == (
            f"http://127.0.0.1:{server.port}/toolbox"
        )
        seen = raw.get(f"/sandbox/{sandbox.id}", headers=behind).json()
        assert seen["toolboxProxyUrl"] == "https://sandbay.example.com/toolbox"
        proxied = raw.get(f"/sandbox/{sandbox.id}/toolbox-proxy-url", headers=behind).json()
        assert proxied["url"] == "https://sandbay.example.com/toolbox"
        link = raw.get(f"/sandbox/{sandbox.id}/ports/3000/preview-url", headers=behind).json()
        assert link["url"] == f"https://sandbay.example.com/preview/{sandbox.id}/3000"
        ssh = raw.post(f"/sandbox/{sandbox.id}/ssh-access", headers=behind).json()
        assert ssh["sshCommand"].endswith(f"{ssh['token']}@sandbay.example.com")
        config = raw.get("/config", headers=behind).json()
        assert config["proxyToolboxUrl"] == "https://sandbay.example.com/toolbox"

    public = make_server(extra_env={"SANDBAY_HTTP__PUBLIC_URL": "https://box.example.org"}).start()
    with public.client() as api2:
        created = api2.post("/sandbox", json={"name": "public-url"}).json()
        try:
            got = api2.get(f"/sandbox/{created['id']}", headers=behind).json()
            assert got["toolboxProxyUrl"] == "https://box.example.org/toolbox"
        finally:
            delete(api2, created["id"])


def test_forwarded_headers_are_believed_only_from_trusted_peers() -> None:
    address = PublicAddress.of(None, "10.0.0.0/8, 127.0.0.1")
    asked = {
        "scheme": "http",
        "host": "internal:8080",
        "forwarded_proto": "https",
        "forwarded_host": "outside.example, proxy2",
    }
    assert address.base_url(peer="10.1.2.3", **asked) == "https://outside.example"
    assert address.base_url(peer="192.0.2.7", **asked) == "http://internal:8080"
    assert PublicAddress.of(None, "").base_url(peer="127.0.0.1", **asked) == (
        "http://internal:8080"
    )
    assert PublicAddress.of(None, "*").base_url(peer="192.0.2.7", **asked) == (
        "https://outside.example"
    )
    configured = PublicAddress.of("https://box.example.org/", "*")
    assert configured.base_url(peer="10.1.2.3", **asked) == "https://box.example.org"


def test_async_sdk_changes_settings_and_lists(
    async_config: Callable[[], DaytonaConfig], api: httpx.Client, made: list[str]
) -> None:
    tag = _tag()

    async def body() -> None:
        async with AsyncDaytona(async_config()) as daytona:
            sandbox = await daytona.create(
                CreateSandboxFromSnapshotParams(
                    name=f"async-{tag}", labels={"async": tag}, auto_stop_interval=0
                ),
                timeout=120,
            )
            made.append(sandbox.id)
            await sandbox.set_public(True)
            await sandbox.set_ttl(45)
            await sandbox.resize(Resources(cpu=2))
            await sandbox.update_env({"ASYNC": tag})
            await sandbox.update_network_settings(network_block_all=True)
            listed = [
                s.name
                async for s in daytona.list(
                    ListSandboxesQuery(labels={"async": tag}, min_cpu=2, is_public=True)
                )
            ]
            assert listed == [f"async-{tag}"]
            await sandbox.stop()
            assert sandbox.state == SandboxState.STOPPED
            await sandbox.delete(wait=True)
            assert sandbox.state == SandboxState.DESTROYED

    asyncio.run(body())
    history = api.get(f"/v1/environments/{made[0]}/events", params={"limit": 1000})
    kinds = {e["type"] for e in history.json()["data"]}
    assert {"environment.resized", "environment.ttl_set", "environment.updated"} <= kinds
