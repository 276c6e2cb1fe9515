"""`DockerRuntime`: the Docker Engine provider, the abilities built over its one
engine connection (logs, stats, archives, host network policy, image builds, live
resizes), and everything inside
an environment (processes, files, git, ports, file sessions) through the environment's
agent over one channel (docs/envd.md). A second provider is one more object of this
shape with its own locator."""

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sandbay.runtime.docker.archive import DockerArchiver
from sandbay.runtime.docker.engine import Engine
from sandbay.runtime.docker.images import DockerImages
from sandbay.runtime.docker.logs import DockerLogs
from sandbay.runtime.docker.network import HostNetworkPolicy
from sandbay.runtime.docker.provider import DockerProvider
from sandbay.runtime.docker.resources import DockerResources
from sandbay.runtime.docker.stats import DockerStats
from sandbay.runtime.egress import EgressGateway
from sandbay.runtime.envd.channel import Channel, Locator
from sandbay.runtime.envd.files import EnvdFiles
from sandbay.runtime.envd.git import EnvdGit
from sandbay.runtime.envd.ports import EnvdFileAgent, EnvdPorts
from sandbay.runtime.envd.processes import EnvdRunner


@dataclass(frozen=True, slots=True)
class DockerRuntime:
    provider: DockerProvider
    engine: Engine
    channel: Channel
    runner: EnvdRunner
    files: EnvdFiles
    git: EnvdGit
    logs: DockerLogs
    stats: DockerStats
    archiver: DockerArchiver
    network: HostNetworkPolicy
    images: DockerImages
    resources: DockerResources
    ports: EnvdPorts
    file_agent: EnvdFileAgent

    @classmethod
    def open(
        cls,
        *,
        runner_id: str,
        agent_dir: Path,
        base_url: str | None,
        threads: int,
        cgroups: bool = True,
        agent_ready_timeout: float = 30.0,
        disk_limits: bool = True,
        egress: EgressGateway | None = None,
        agent_token: Callable[[str], str] | None = None,
    ) -> "DockerRuntime":
        provider = DockerProvider(
            runner_id=runner_id,
            agent_dir=agent_dir,
            base_url=base_url,
            threads=threads,
            agent_ready_timeout=agent_ready_timeout,
            disk_limits=disk_limits,
            agent_token=agent_token,
        )
        engine, channel = provider.engine(), provider.channel
        return cls(
            provider=provider,
            engine=engine,
            channel=channel,
            runner=provider.runner,
            files=EnvdFiles(channel),
            git=EnvdGit(channel),
            logs=DockerLogs(engine),
            stats=DockerStats(engine, use_cgroups=cgroups, disk_root=provider.disk_root),
            archiver=DockerArchiver(provider),
            network=HostNetworkPolicy(engine, egress),
            images=DockerImages(provider),
            resources=DockerResources(provider),
            ports=EnvdPorts(channel),
            file_agent=EnvdFileAgent(channel),
        )

    def routed(self, locator: Locator) -> "DockerRuntime":
        """The same runtime with everything inside environments going through
        `locator` (which reaches runners on other hosts too); the provider's own
        calls (readiness, hooks) stay on this engine."""
        channel = Channel(locator)
        return replace(
            self,
            channel=channel,
            runner=EnvdRunner(channel),
            files=EnvdFiles(channel),
            git=EnvdGit(channel),
            ports=EnvdPorts(channel),
            file_agent=EnvdFileAgent(channel),
        )

    async def close(self) -> None:
        await self.engine.aclose()
        await self.provider.close()
