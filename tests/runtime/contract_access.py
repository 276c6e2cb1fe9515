"""The contracts of the abilities that reach an environment from outside
(`runtime.access`): a port inside it, a file session, its network policy. See
`tests/runtime/contract.py`."""

import os
import uuid

import pytest

from sandbay.domain.errors import Conflict, PortUnreachable
from sandbay.domain.runtime import ContainerSpec, NetworkRules
from sandbay.runtime.access import FileAgent, NetworkPolicy, PortConnector
from sandbay.runtime.provider import RuntimeProvider
from tests.runtime.contract import ECHO_PORT, ContractBase, Environments, eventually, sh


class PortConnectorContract(ContractBase):
    """`PortConnector`: a byte stream to a port inside the environment."""

    async def test_connect_reaches_a_port_inside_the_environment(
        self, ports: PortConnector, shared: ContainerSpec
    ) -> None:
        streams = []

        async def connected() -> bool:
            try:
                streams.append(await ports.connect(shared.environment_id, ECHO_PORT))
            except PortUnreachable:
                return False  # the workload is not listening yet
            return True

        await eventually(connected)
        stream = streams[0]
        await stream.write(b"ping ")
        await stream.write(b"pong")
        await stream.write_eof()  # half-close: the echo still answers
        received = b""
        while data := await stream.read(4096):
            received += data
        assert received == b"ping pong" and stream.at_eof()
        await stream.close()

    async def test_a_closed_port_raises_port_unreachable(
        self, ports: PortConnector, shared: ContainerSpec
    ) -> None:
        with pytest.raises(PortUnreachable):
            await ports.connect(shared.environment_id, 1)

    async def test_connect_needs_a_running_workload(
        self, ports: PortConnector, envs: Environments
    ) -> None:
        stopped = await envs.created()
        with pytest.raises(Conflict):
            await ports.connect(stopped.environment_id, ECHO_PORT)


class FileAgentContract(ContractBase):
    """`FileAgent`: POSIX file operations in one session, as one user."""

    async def test_a_session_reads_and_writes_at_offsets(
        self, file_agent: FileAgent, shared: ContainerSpec, workdir: str
    ) -> None:
        session = await file_agent.open_session(shared.environment_id, user=None)
        try:
            await session.call("mkdir", workdir, 0o755)
            path = f"{workdir}/f"
            fd, _ = await session.call("open", path, os.O_CREAT | os.O_RDWR, 0o640)
            await session.call("write", fd, 0, data=b"hello world")
            await session.call("write", fd, 6, data=b"W")
            assert (await session.call("read", fd, 6, 5))[1] == b"World"
            assert (await session.call("fstat", fd))[0]["size"] == 11
            await session.call("close", fd)
            stat, _ = await session.call("stat", path)
            assert (stat["size"], stat["mode"] & 0o777, stat["uid"]) == (11, 0o640, 0)
            names = [name for name, _ in (await session.call("scandir", workdir))[0]]
            assert sorted(names) == [".", "..", "f"]
            relative = workdir.removeprefix("/workspace/") + "/f"
            assert (await session.call("realpath", relative))[0] == path
            await session.call("remove", path)
            with pytest.raises(FileNotFoundError):  # the errno the environment gave
                await session.call("stat", path)
        finally:
            await session.close()

    async def test_a_session_has_only_its_users_permissions(
        self, file_agent: FileAgent, shared: ContainerSpec
    ) -> None:
        session = await file_agent.open_session(shared.environment_id, user="nobody")
        try:
            with pytest.raises(PermissionError):
                await session.call("open", "/workspace/nobodys", os.O_CREAT | os.O_WRONLY, 0o644)
            path = f"/tmp/nobodys-{uuid.uuid4().hex[:12]}"
            fd, _ = await session.call("open", path, os.O_CREAT | os.O_WRONLY, 0o644)
            await session.call("close", fd)
            assert (await session.call("stat", path))[0]["uid"] == 65534
        finally:
            await session.close()


class NetworkPolicyContract(ContractBase):
    """`NetworkPolicy`: what a running workload may reach, changed while it runs."""

    async def test_rules_take_effect_at_once_and_can_be_lifted(
        self,
        provider: RuntimeProvider,
        network_policy: NetworkPolicy,
        shared: ContainerSpec,
        envs: Environments,
    ) -> None:
        server = (await sh(provider, shared.environment_id, "hostname -i")).split()[0]
        client = (await envs.started()).environment_id
        probe = [
            "python3",
            "-c",
            "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)",
            server,
            str(ECHO_PORT),
        ]

        async def reachable() -> bool:
            result = await provider.run_hook(client, probe, 30)
            return result.exit_code == 0

        await eventually(reachable)  # the shared workload listens
        await network_policy.apply(client, NetworkRules(block_all=True))
        assert not await reachable()
        await network_policy.apply(client, NetworkRules(allow=(f"{server}/32",)))
        assert await reachable()
        await network_policy.apply(client, NetworkRules(allow=("192.0.2.0/24",)))
        assert not await reachable()
        # Lifted: everything but other environments, which only a list names.
        await network_policy.apply(client, NetworkRules())
        assert not await reachable()

    async def test_rules_need_a_running_workload(
        self, network_policy: NetworkPolicy, envs: Environments
    ) -> None:
        stopped = await envs.created()
        with pytest.raises(Conflict):
            await network_policy.apply(stopped.environment_id, NetworkRules(block_all=True))
