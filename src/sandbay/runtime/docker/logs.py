"""The workload's output as the engine stores it (`docker logs`), streamed: with
`follow` the answer stays open until the workload stops or the caller goes away,
and closing it closes the engine connection (no thread is left waiting)."""

from collections.abc import AsyncIterator

from sandbay.runtime.docker.engine import ByteReader, Engine, frames
from sandbay.runtime.docker.names import container_name


class DockerLogs:
    """`LogReader` over the Docker Engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def logs(
        self,
        environment_id: str,
        *,
        follow: bool,
        since: float | None,
        tail: int | None,
        timestamps: bool,
        stdout: bool,
        stderr: bool,
    ) -> AsyncIterator[bytes]:
        params: dict[str, str | int | float] = {
            "follow": int(follow),
            "stdout": int(stdout),
            "stderr": int(stderr),
            "timestamps": int(timestamps),
            "tail": "all" if tail is None else tail,
        }
        if since is not None:
            params["since"] = since
        response = await self._engine.open_stream(
            "GET", f"/containers/{container_name(environment_id)}/logs", params
        )

        async def body() -> AsyncIterator[bytes]:
            # Environments run without a TTY, so the engine multiplexes the streams.
            # No chunk size: httpx would hold bytes back until a chunk fills.
            try:
                async for _kind, payload in frames(ByteReader(response.aiter_raw())):
                    yield payload
            finally:
                await response.aclose()

        return body()
