"""`DockerRuntime`: the Docker Engine provider and every ability built over its one
engine connection (exec, files, logs, stats, archives, host network policy, port
relay, file agent). A second provider is one more object of this shape."""

from dataclasses import dataclass

from sandbay.runtime.docker.archive import DockerArchiver
from sandbay.runtime.docker.engine import Engine
from sandbay.runtime.docker.exec import DockerExec
from sandbay.runtime.docker.files import DockerFiles
from sandbay.runtime.docker.fsagent import DockerFileAgent
from sandbay.runtime.docker.logs import DockerLogs
from sandbay.runtime.docker.network import HostNetworkPolicy
from sandbay.runtime.docker.provider import DockerProvider
from sandbay.runtime.docker.relay import DockerPortRelay
from sandbay.runtime.docker.stats import DockerStats


@dataclass(frozen=True, slots=True)
class DockerRuntime:
    provider: DockerProvider
    engine: Engine
    runner: DockerExec
    files: DockerFiles
    logs: DockerLogs
    stats: DockerStats
    archiver: DockerArchiver
    network: HostNetworkPolicy
    ports: DockerPortRelay
    file_agent: DockerFileAgent

    @classmethod
    def open(
        cls, *, runner_id: str, base_url: str | None, threads: int, cgroups: bool = True
    ) -> "DockerRuntime":
        provider = DockerProvider(runner_id=runner_id, base_url=base_url, threads=threads)
        engine = provider.engine()
        runner = DockerExec(engine)
        return cls(
            provider=provider,
            engine=engine,
            runner=runner,
            files=DockerFiles(engine, runner),
            logs=DockerLogs(engine),
            stats=DockerStats(engine, use_cgroups=cgroups),
            archiver=DockerArchiver(provider),
            network=HostNetworkPolicy(engine),
            ports=DockerPortRelay(runner),
            file_agent=DockerFileAgent(runner),
        )

    async def close(self) -> None:
        await self.engine.aclose()
        await self.provider.close()
