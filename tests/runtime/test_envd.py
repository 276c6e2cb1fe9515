"""The environment agent (docs/envd.md) on the real engine: any image (one with no
shell and no python3), a workload that kills it or exits, the channel under
`block_all`, and one environment's token opening nothing but its own agent."""

import textwrap
from collections.abc import AsyncIterator

import anyio
import docker
import pytest

from sandbay.domain.errors import PermissionDenied
from sandbay.domain.exec import ProcessSpec
from sandbay.domain.runtime import NetworkRules
from sandbay.runtime.docker.names import container_name
from sandbay.runtime.docker.runtime import DockerRuntime
from sandbay.runtime.envd.channel import PORT
from sandbay.runtime.inside import ProcessHandle
from sandbay.settings import default_agent_dir
from tests.runtime.contract import Environments, eventually
from tests.support.images import static_image
from tests.support.server import remove_engine_objects

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def runtime() -> AsyncIterator[DockerRuntime]:
    runtime = DockerRuntime.open(
        runner_id="envd-tests", agent_dir=default_agent_dir(), base_url=None, threads=8
    )
    yield runtime
    await runtime.close()


@pytest.fixture
async def envs(runtime: DockerRuntime) -> AsyncIterator[Environments]:
    made = Environments(runtime.provider, "sandbay-base:latest")
    made.new_instance()
    yield made
    for instance in made.instances:
        await anyio.to_thread.run_sync(remove_engine_objects, instance)


async def run(
    runtime: DockerRuntime, environment_id: str, argv: list[str], **kw: object
) -> tuple[int | None, bytes]:
    proc = await runtime.runner.spawn(environment_id, ProcessSpec(argv=argv, **kw))  # type: ignore[arg-type]
    out = b"".join([chunk.data async for chunk in proc.output()])
    return await proc.wait(), out


async def screen_until(handle: ProcessHandle, text: bytes) -> bytes:
    seen = b""
    with anyio.fail_after(30):
        async for chunk in handle.output():
            seen += chunk.data
            if text in seen:
                return seen
    raise AssertionError(f"the terminal showed only {seen!r}")


async def test_an_image_with_no_shell_and_no_python_gets_exec_files_a_terminal_and_ports(
    runtime: DockerRuntime, envs: Environments
) -> None:
    image = await anyio.to_thread.run_sync(static_image, docker.from_env())
    spec = envs.spec(image=image, argv=[])  # no workload: the agent alone
    await runtime.provider.start(spec)
    env = spec.environment_id
    assert await run(runtime, env, ["/bin/busybox", "echo", "static"]) == (0, b"static\n")

    async def body() -> AsyncIterator[bytes]:
        yield b"round "
        yield b"trip"

    info = await runtime.files.write(env, "/workspace/deep/file.txt", body(), 10, user=None)
    assert (info.size, info.mode) == (10, "0644")
    _, content = await runtime.files.read(env, "/workspace/deep/file.txt")
    assert b"".join([c async for c in content]) == b"round trip"
    assert [
        e.name for e in (await runtime.files.list_dir(env, "/workspace", user=None, limit=10))[0]
    ] == ["deep"]

    pty = await runtime.runner.spawn(
        env, ProcessSpec(argv=["/bin/busybox", "sh"], tty=True, stdin=True, keep=True)
    )
    await pty.started()
    await pty.resize(101, 33)
    await pty.write(b"/bin/busybox stty size\n")
    assert b"33 101" in await screen_until(pty, b"33 101")
    await pty.kill()
    await pty.close()

    server = await runtime.runner.spawn(
        env,
        ProcessSpec(
            argv=["/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/workspace/deep"]
        ),
    )

    async def serves() -> bool:
        try:
            stream = await runtime.ports.connect(env, 8080)
        except Exception:
            return False
        try:
            await stream.write(b"GET /file.txt HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := await stream.read(65536):
                answer += chunk
            return answer.endswith(b"round trip")
        finally:
            await stream.close()

    await eventually(serves)
    await server.kill()
    await server.close()

    session = await runtime.file_agent.open_session(env, user=None)
    try:
        listing, _ = await session.call("scandir", "/workspace/deep")
        assert "file.txt" in [name for name, _ in listing]
    finally:
        await session.close()


async def test_the_workload_cannot_kill_the_agent(
    runtime: DockerRuntime, envs: Environments
) -> None:
    env = (await envs.started()).environment_id
    await run(runtime, env, ["/bin/sh", "-c", "kill -9 1; sleep 0.2"])
    assert await run(runtime, env, ["echo", "still here"]) == (0, b"still here\n")


async def test_the_agent_is_pid_1_and_runs_the_workload_whose_exit_is_the_containers(
    runtime: DockerRuntime, envs: Environments
) -> None:
    spec = await envs.started("echo started > /workspace/out; sleep 0.3; exit 7")
    _, out = await run(runtime, spec.environment_id, ["cat", "/proc/1/cmdline"])
    assert out.split(b"\0")[:2] == [b"/.sandbay/envd", b"init"]
    assert await runtime.provider.wait_exit(spec.environment_id, 20) == 7
    await runtime.provider.start(spec)  # the same container again: its agent answers
    assert await run(runtime, spec.environment_id, ["cat", "/workspace/out"]) == (
        0,
        b"started\n",
    )


async def test_block_all_refuses_the_workloads_traffic_but_not_the_agents_channel(
    runtime: DockerRuntime, envs: Environments
) -> None:
    other = (await envs.started()).environment_id
    env = (await envs.started()).environment_id
    await runtime.network.apply(env, NetworkRules(block_all=True))
    peer = (await run(runtime, other, ["hostname", "-i"]))[1].decode().split()[0]
    probe = f"import socket; socket.create_connection(('{peer}', {PORT}), 3)"
    code, out = await run(runtime, env, ["python3", "-c", probe])
    assert code != 0, out  # its own traffic is refused ...
    assert await run(runtime, env, ["echo", "reached"]) == (0, b"reached\n")  # ... not ours


async def test_one_environments_token_opens_no_other_agent(
    runtime: DockerRuntime, envs: Environments
) -> None:
    a = (await envs.started()).environment_id
    b = (await envs.started()).environment_id
    client = docker.from_env()
    b_ip = client.api.inspect_container(container_name(b))["NetworkSettings"]["IPAddress"]
    # The workload of A cannot learn A's token from PID 1 ...
    code, out = await run(runtime, a, ["/bin/sh", "-c", "cat /proc/1/environ; true"])
    assert code == 0 and b"SANDBAY_ENVD_TOKEN=" not in out
    # ... and whoever had it anyway (the engine's view) opens nothing on B's agent.
    config_env = client.api.inspect_container(container_name(a))["Config"]["Env"]
    token = next(e for e in config_env if e.startswith("SANDBAY_ENVD_TOKEN="))[19:]
    script = textwrap.dedent("""
        import sys, urllib.request, urllib.error
        url = f"http://{sys.argv[1]}:{sys.argv[2]}/v1/health"
        headers = {"Authorization": "Bearer " + sys.argv[3]}
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5)
            print(200)
        except urllib.error.HTTPError as e:
            print(e.code)
    """)
    code, out = await run(runtime, a, ["python3", "-c", script, b_ip, str(PORT), token])
    assert (code, out.strip()) == (0, b"401")
    code, out = await run(runtime, a, ["python3", "-c", script, "127.0.0.1", str(PORT), token])
    assert (code, out.strip()) == (0, b"200")  # the same token does open A's own
    # Nor does the token hand the platform's identity to processes: it is not in their env.
    code, out = await run(runtime, a, ["/bin/sh", "-c", "env"])
    assert b"SANDBAY_ENVD" not in out


async def test_a_user_the_environment_cannot_become_is_refused(
    runtime: DockerRuntime, envs: Environments
) -> None:
    env = (await envs.started(user="nobody")).environment_id
    code, out = await run(runtime, env, ["id", "-u"])
    assert (code, out) == (0, b"65534\n")
    with pytest.raises(PermissionDenied):  # no new privilege: the agent is nobody too
        await runtime.runner.spawn(env, ProcessSpec(argv=["id"], user="root"))
