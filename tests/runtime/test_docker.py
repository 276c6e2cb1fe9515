"""The Docker runtime against the real engine: the shared contract
(`tests/runtime/contract*.py`) for `DockerProvider` and every ability built over its
engine connection, then the Docker-only checks (engine labels and names, every step
idempotent, keyed by environment id, engine errors translated into the domain's)."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import docker
import pytest

from sandbay.domain import ids
from sandbay.domain.runtime import ContainerSpec, ContainerStatus
from sandbay.runtime.docker.names import container_name, volume_name
from sandbay.runtime.docker.provider import DockerProvider
from sandbay.runtime.docker.runtime import DockerRuntime
from sandbay.runtime.docker.stats import DockerStats
from sandbay.runtime.provider import RuntimeProvider
from sandbay.settings import default_agent_dir
from tests.runtime.contract import ArchiverContract, ContractBase, ProviderContract
from tests.runtime.contract_access import (
    FileAgentContract,
    NetworkPolicyContract,
    PortConnectorContract,
)
from tests.runtime.contract_inside import (
    FileSystemContract,
    LogReaderContract,
    MetricsSourceContract,
    ProcessRunnerContract,
)
from tests.support.server import remove_engine_objects


def _ability(attribute: str) -> Any:
    """A class-scoped fixture: the class's runtime's `attribute`, for the contract
    that asks for it under the name it is given in the class."""

    def ability(cls: type, runtime: DockerRuntime) -> object:
        return getattr(runtime, attribute)

    return pytest.fixture(scope="class")(classmethod(ability))


class DockerFixtures(ContractBase):
    """Supplies the contracts' fixtures: one `DockerRuntime` per class, wired as the
    platform wires it (the provider and every ability over its engine connection)."""

    @pytest.fixture(scope="class")
    @classmethod
    async def runtime(cls) -> AsyncIterator[DockerRuntime]:
        runtime = DockerRuntime.open(
            runner_id=cls.runner_id, agent_dir=default_agent_dir(), base_url=None, threads=64
        )
        yield runtime
        await runtime.close()

    provider = _ability("provider")
    runner = _ability("runner")
    files = _ability("files")
    logs = _ability("logs")
    ports = _ability("ports")
    file_agent = _ability("file_agent")
    network_policy = _ability("network")
    archiver = _ability("archiver")

    @pytest.fixture(scope="class", params=[True, False], ids=["cgroups", "stats-api"])
    @classmethod
    def metrics(cls, runtime: DockerRuntime, request: pytest.FixtureRequest) -> DockerStats:
        return DockerStats(runtime.engine, use_cgroups=request.param)

    @classmethod
    async def vanish(cls, provider: RuntimeProvider, environment_id: str) -> None:
        assert isinstance(provider, DockerProvider)
        name = container_name(environment_id)
        await provider.call(lambda api: api.remove_container(name, force=True))

    @classmethod
    async def purge(cls, provider: RuntimeProvider, instance: str) -> None:
        try:
            await super().purge(provider, instance)
        finally:  # by label, straight from the engine, whatever the provider did
            await anyio.to_thread.run_sync(remove_engine_objects, instance)


class TestDockerProvider(DockerFixtures, ProviderContract):
    pass


class TestEnvdRunner(DockerFixtures, ProcessRunnerContract):
    pass


class TestEnvdFiles(DockerFixtures, FileSystemContract):
    pass


class TestDockerLogs(DockerFixtures, LogReaderContract):
    pass


class TestDockerStats(DockerFixtures, MetricsSourceContract):
    pass


class TestEnvdPorts(DockerFixtures, PortConnectorContract):
    pass


class TestEnvdFileAgent(DockerFixtures, FileAgentContract):
    pass


class TestHostNetworkPolicy(DockerFixtures, NetworkPolicyContract):
    pass


class TestDockerArchiver(DockerFixtures, ArchiverContract):
    pass


# ---- Docker only: what the engine itself records ---------------------------------------


@pytest.fixture
def instance() -> Iterator[str]:
    name = f"test-prov-{uuid.uuid4().hex[:8]}"
    yield name
    remove_engine_objects(name)


def _spec(instance: str, **kw: object) -> ContainerSpec:
    defaults: dict[str, object] = {
        "environment_id": ids.new_id("env"),
        "org_id": "org_test",
        "instance": instance,
        "image": "sandbay-base:latest",
        "argv": ["sleep", "infinity"],
        "keep_alive": True,
        "memory_mb": 128,
        "cpu": 0.5,
        "pids_limit": 64,
    }
    defaults.update(kw)
    return ContainerSpec(**defaults)  # type: ignore[arg-type]


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _provider_do(fn):  # type: ignore[no-untyped-def]
    provider = DockerProvider(runner_id="test", agent_dir=default_agent_dir())
    try:
        return await fn(provider)
    finally:
        await provider.close()


def test_create_is_idempotent_and_labels_container_and_volume(
    instance: str, docker_client: docker.DockerClient
) -> None:
    spec = _spec(instance)

    async def go(p: DockerProvider) -> tuple[str, str]:
        first = await p.create(spec)
        second = await p.create(spec)
        return first.container_id, second.container_id

    first, second = _run(_provider_do(go))
    assert first == second
    attrs = docker_client.api.inspect_container(container_name(spec.environment_id))
    assert attrs["Config"]["Labels"]["sandbay.instance"] == instance
    volume = docker_client.volumes.get(volume_name(spec.environment_id))
    assert volume.attrs["Labels"]["sandbay.environment"] == spec.environment_id


def test_start_signal_wait_kill_remove(instance: str, docker_client: docker.DockerClient) -> None:
    spec = _spec(
        instance,
        argv=["/bin/sh", "-c", "trap 'exit 7' USR1; while true; do sleep 0.1; done"],
        keep_alive=False,
    )

    async def go(p: DockerProvider) -> None:
        started = await p.start(spec)  # creates it first
        assert started.running
        assert await p.wait_exit(spec.environment_id, 0.2) is None  # still running
        await p.signal(spec.environment_id, "SIGUSR1")
        assert await p.wait_exit(spec.environment_id, 10) == 7
        info = await p.inspect(spec.environment_id)
        assert info is not None
        assert info.status is ContainerStatus.EXITED and info.exit_code == 7
        await p.signal(spec.environment_id, "SIGTERM")  # not running: a no-op
        await p.start(spec)
        assert await p.kill(spec.environment_id) == 137
        killed = await p.inspect(spec.environment_id)
        assert killed is not None and killed.exit_code == 137
        listed = await p.list_containers(instance)
        assert [c.environment_id for c in listed] == [spec.environment_id]
        await p.remove(spec.environment_id)
        await p.remove(spec.environment_id)  # idempotent
        assert await p.inspect(spec.environment_id) is None
        assert await p.wait_exit(spec.environment_id, 1) == -1  # gone: code unknown

    _run(_provider_do(go))
    assert not docker_client.volumes.list(filters={"name": volume_name(spec.environment_id)})


def test_start_recreates_a_vanished_container_keeping_the_volume(
    instance: str, docker_client: docker.DockerClient
) -> None:
    spec = _spec(instance)

    async def go(p: DockerProvider) -> None:
        await p.start(spec)
        docker_client.containers.get(container_name(spec.environment_id)).exec_run(
            ["sh", "-c", "echo kept > /workspace/f"]
        )
        docker_client.api.remove_container(container_name(spec.environment_id), force=True)
        again = await p.start(spec)
        assert again.running

    _run(_provider_do(go))
    out = docker_client.containers.get(container_name(spec.environment_id)).exec_run(
        ["cat", "/workspace/f"]
    )
    assert out.output == b"kept\n"


def test_missing_image_is_reported(instance: str) -> None:
    async def go(p: DockerProvider) -> bool:
        return await p.image_available("sandbay-nonexistent-image:nope")

    assert _run(_provider_do(go)) is False


def test_host_resources_come_from_the_engine() -> None:
    async def go(p: DockerProvider) -> tuple[float, int]:
        host = await p.host_resources()
        return host.cpus, host.memory_bytes

    cpus, memory = _run(_provider_do(go))
    assert cpus >= 1 and memory > 256 * 1024 * 1024
