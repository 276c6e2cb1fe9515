"""Daytona's update_env through the unchanged SDK on real Docker: a variable the
sandbox was created with is gone for every process started after it is unset (exec,
a new session, code_run, a new interpreter context), though the container itself
still holds it; setting it again brings it back."""

import asyncio
import uuid
from collections.abc import Callable, Iterator

import docker
import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    DaytonaError,
    Sandbox,
    SessionExecuteRequest,
)

from sandbay.runtime.docker.names import container_name

pytestmark = pytest.mark.docker
PROBE = "echo ${FOO-unset} ${BAR-unset}"


@pytest.fixture
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    box = daytona.create(
        CreateSandboxFromSnapshotParams(env_vars={"FOO": "1"}, auto_stop_interval=0), timeout=120
    )
    yield box
    daytona.delete(box, wait=True)


def _session(sandbox: Sandbox) -> str:
    name = f"env-{uuid.uuid4().hex[:8]}"
    sandbox.process.create_session(name)
    run = sandbox.process.execute_session_command(name, SessionExecuteRequest(command=PROBE))
    return run.stdout or ""


def _seen(sandbox: Sandbox) -> dict[str, str]:
    """What each kind of new process sees of FOO and BAR."""
    code = "import os; print(os.environ.get('FOO', 'unset'), os.environ.get('BAR', 'unset'))"
    context = sandbox.code_interpreter.create_context()
    return {
        "exec": sandbox.process.exec(PROBE).result.strip(),
        "session": _session(sandbox).strip(),
        "code_run": sandbox.process.code_run(code).result.strip(),
        "interpreter": sandbox.code_interpreter.run_code(code, context=context).stdout.strip(),
    }


def test_unset_removes_a_variable_the_sandbox_was_created_with(
    sandbox: Sandbox, docker_client: docker.DockerClient
) -> None:
    kinds = ("exec", "session", "code_run", "interpreter")
    assert _seen(sandbox) == dict.fromkeys(kinds, "1 unset")

    sandbox.update_env({"BAR": "b"}, unset=["FOO"])
    assert _seen(sandbox) == dict.fromkeys(kinds, "unset b")
    # The container still holds it: only the processes sandbay starts drop it.
    container = docker_client.containers.get(container_name(sandbox.id))
    assert "FOO=1" in container.attrs["Config"]["Env"]

    sandbox.update_env({"FOO": "2"}, unset=["BAR"])
    assert _seen(sandbox) == dict.fromkeys(kinds, "2 unset")


def test_unset_of_a_name_that_is_no_variable_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(DaytonaError, match="not a variable name"):
        sandbox.update_env({}, unset=["A=B"])
    assert sandbox.process.exec(PROBE).result.strip() == "1 unset"


def test_the_async_sdk_unsets_too(
    daytona: Daytona, async_config: Callable[[], DaytonaConfig]
) -> None:
    async def body() -> tuple[str, str]:
        async with AsyncDaytona(async_config()) as client:
            box = await client.create(
                CreateSandboxFromSnapshotParams(env_vars={"FOO": "1"}, auto_stop_interval=0),
                timeout=120,
            )
            try:
                await box.update_env({}, unset=["FOO"])
                unset = (await box.process.exec(PROBE)).result.strip()
                await box.update_env({"FOO": "3"})
                again = (await box.process.exec(PROBE)).result.strip()
            finally:
                await client.delete(box, wait=True)
            return unset, again

    assert asyncio.run(body()) == ("unset unset", "3 unset")
