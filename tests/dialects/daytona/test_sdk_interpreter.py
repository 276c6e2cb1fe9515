"""Daytona's code interpreter through its unchanged SDK: persistent contexts (the
default one and created ones, isolated from each other), output streamed while a cell
runs, exceptions with their traceback, timeouts that interrupt and leave the context
usable, contexts listed and deleted, and the async client."""

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest
from daytona import AsyncDaytona, Daytona, DaytonaConfig, Sandbox
from daytona.common.code_interpreter import ExecutionError, OutputMessage
from daytona.common.errors import DaytonaError, DaytonaTimeoutError
from daytona_toolbox_api_client import CreateContextRequest

# The toolbox's work is the environment's (its agent), not the database's.
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]


@pytest.fixture
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    box = daytona.create(timeout=120)
    try:
        yield box
    finally:
        daytona.delete(box)


def test_default_context_keeps_variables_imports_and_cwd(sandbox: Sandbox) -> None:
    interpreter = sandbox.code_interpreter
    first = interpreter.run_code("import os, json\nos.chdir('/tmp')\nanswer = 41")
    assert first.error is None and first.stdout == ""
    second = interpreter.run_code("print(json.dumps({'a': answer + 1}), os.getcwd())")
    assert second.error is None
    assert second.stdout == '{"a": 42} /tmp\n'


def test_created_contexts_are_isolated_listed_and_deleted(sandbox: Sandbox) -> None:
    interpreter = sandbox.code_interpreter
    interpreter.run_code("shared = 'default'")
    one = interpreter.create_context(cwd="/tmp")
    two = interpreter.create_context()
    assert one.language == "python" and one.cwd == "/tmp" and one.active
    assert {c.id for c in interpreter.list_contexts()} == {one.id, two.id}

    interpreter.run_code("x = 'one'", context=one)
    interpreter.run_code("x = 'two'", context=two)
    assert interpreter.run_code("print(x)", context=one).stdout == "one\n"
    assert interpreter.run_code("print(x)", context=two).stdout == "two\n"
    assert interpreter.run_code("import os; print(os.getcwd())", context=one).stdout == "/tmp\n"
    isolated = interpreter.run_code("print(shared)", context=one)
    assert isolated.error is not None and isolated.error.name == "NameError"
    assert interpreter.run_code("print(shared)").stdout == "default\n"

    interpreter.delete_context(one)
    assert [c.id for c in interpreter.list_contexts()] == [two.id]
    with pytest.raises(DaytonaError):
        interpreter.run_code("print(x)", context=one)
    with pytest.raises(DaytonaError):
        interpreter.delete_context(one)


def test_stdout_is_streamed_while_the_cell_runs(sandbox: Sandbox) -> None:
    first_seen = threading.Event()
    chunks: list[str] = []

    def on_stdout(message: OutputMessage) -> None:
        chunks.append(message.output)
        first_seen.set()

    # The cell waits (bounded) until the test has seen its first line, which the
    # test can only see if that line was sent while the cell was still running.
    gate = "/tmp/seen-first-line"
    code = (
        "import os, time\n"
        "print('first', flush=True)\n"
        "deadline = time.time() + 30\n"
        f"while not os.path.exists({gate!r}) and time.time() < deadline:\n"
        "    time.sleep(0.05)\n"
        f"print('second' if os.path.exists({gate!r}) else 'not streamed')\n"
    )

    def release_when_seen() -> None:
        if first_seen.wait(30):
            sandbox.fs.create_folder(gate, "755")

    releaser = threading.Thread(target=release_when_seen)
    releaser.start()
    result = sandbox.code_interpreter.run_code(code, on_stdout=on_stdout, timeout=60)
    releaser.join()
    assert chunks[0] == "first\n"
    assert result.stdout == "first\nsecond\n"


def test_exception_is_reported_with_traceback_and_context_survives(sandbox: Sandbox) -> None:
    errors: list[ExecutionError] = []
    stderr: list[str] = []
    result = sandbox.code_interpreter.run_code(
        "import sys\nkept = 7\nprint('to stderr', file=sys.stderr)\n"
        "def f():\n    return 1 / 0\nf()",
        on_error=errors.append,
        on_stderr=lambda m: stderr.append(m.output),
        envs={"CELL_ONLY": "yes"},
    )
    assert result.error is not None and errors == [result.error]
    assert result.error.name == "ZeroDivisionError"
    assert result.error.value == "division by zero"
    assert "Traceback" in result.error.traceback and "1 / 0" in result.error.traceback
    assert "".join(stderr) == result.stderr == "to stderr\n"
    after = sandbox.code_interpreter.run_code("import os; print(kept, os.environ.get('CELL_ONLY'))")
    assert after.error is None and after.stdout == "7 None\n"
    syntax = sandbox.code_interpreter.run_code("x = (")
    assert syntax.error is not None and syntax.error.name == "SyntaxError"


def test_timeout_interrupts_the_cell_and_keeps_the_context(sandbox: Sandbox) -> None:
    interpreter = sandbox.code_interpreter
    interpreter.run_code("before = 'kept'")
    seen: list[str] = []
    with pytest.raises(DaytonaTimeoutError):
        interpreter.run_code(
            "import time\nprint('started', flush=True)\ntime.sleep(60)\nprint('never')",
            on_stdout=lambda m: seen.append(m.output),
            timeout=2,
        )
    assert seen == ["started\n"]
    after = interpreter.run_code("print(before)")
    assert after.error is None and after.stdout == "kept\n"


def test_only_python_contexts_and_unknown_contexts_are_refused(sandbox: Sandbox) -> None:
    # The SDK's own generated client: `create_context` sends no language.
    api = sandbox.code_interpreter._api_client
    with pytest.raises(Exception, match="unsupported language"):
        api.create_interpreter_context(request=CreateContextRequest(language="javascript"))
    with pytest.raises(Exception, match="default"):
        api.delete_interpreter_context(id="default")


def test_async_client_runs_cells_in_contexts(async_config: Callable[[], DaytonaConfig]) -> None:
    async def scenario() -> None:
        async with AsyncDaytona(async_config()) as daytona:
            box = await daytona.create(timeout=120)
            try:
                interpreter = box.code_interpreter
                await interpreter.run_code("n = 20")
                context = await interpreter.create_context()
                await interpreter.run_code("n = 1", context=context)
                chunks: list[str] = []
                result = await interpreter.run_code(
                    "print(n * 2 + 2)", on_stdout=lambda m: chunks.append(m.output)
                )
                assert result.stdout == "42\n" and chunks == ["42\n"]
                mine = await interpreter.run_code("print(n)", context=context)
                assert mine.stdout == "1\n"
                assert [c.id for c in await interpreter.list_contexts()] == [context.id]
                with pytest.raises(DaytonaTimeoutError):
                    await interpreter.run_code("import time; time.sleep(30)", timeout=1)
                assert (await interpreter.run_code("print(n)")).stdout == "20\n"
                await interpreter.delete_context(context)
                assert await interpreter.list_contexts() == []
            finally:
                await daytona.delete(box)

    asyncio.run(scenario())


def test_cell_ignoring_the_interrupt_is_killed_and_the_context_starts_afresh(
    sandbox: Sandbox,
) -> None:
    interpreter = sandbox.code_interpreter
    interpreter.run_code("lost = True")
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    with pytest.raises(DaytonaTimeoutError):
        interpreter.run_code(stubborn, timeout=1)
    fresh = interpreter.run_code("print('lost' in globals())")
    assert fresh.error is None and fresh.stdout == "False\n"
