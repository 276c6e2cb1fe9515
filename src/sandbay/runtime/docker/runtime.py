"""The Docker implementations of the optional abilities, built over the provider's
own engine connection."""

from dataclasses import dataclass

from sandbay.runtime.docker.engine import Engine
from sandbay.runtime.docker.exec import DockerExec
from sandbay.runtime.docker.files import DockerFiles
from sandbay.runtime.docker.logs import DockerLogs
from sandbay.runtime.docker.provider import DockerProvider
from sandbay.runtime.docker.stats import DockerStats


@dataclass(frozen=True, slots=True)
class DockerToolbox:
    engine: Engine
    runner: DockerExec
    files: DockerFiles
    logs: DockerLogs
    stats: DockerStats

    @classmethod
    def for_provider(cls, provider: DockerProvider, *, cgroups: bool = True) -> "DockerToolbox":
        engine = provider.engine()
        runner = DockerExec(engine)
        return cls(
            engine=engine,
            runner=runner,
            files=DockerFiles(engine, runner),
            logs=DockerLogs(engine),
            stats=DockerStats(engine, use_cgroups=cgroups),
        )

    async def close(self) -> None:
        await self.engine.aclose()
