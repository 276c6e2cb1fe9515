"""Daytona's language servers through its unchanged SDK, on real Docker with the base
image's pylsp: document symbols of an opened file, a symbol search over the project
(files never opened included), completions after `obj.`, relative paths taken from
the project, a stopped server refusing calls (and its process gone), servers gone
with a stopped sandbox, unsupported languages and a missing TypeScript server
refused by name, and the async client."""

import asyncio
from collections.abc import Callable, Iterator

import pytest
from daytona import AsyncDaytona, Daytona, DaytonaConfig, Sandbox
from daytona.common.errors import DaytonaError
from daytona.common.lsp_server import LspCompletionPosition

from tests.support.polling import eventually

# The toolbox's work is the environment's (its agent), not the database's.
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]

PROJECT = "/workspace/proj"
MAIN = f"{PROJECT}/main.py"
SOURCE = """\
class Greeter:
    def greet(self, name):
        return "hi " + name


def make_greeter():
    return Greeter()


obj = Greeter()
obj.greet("you")
"""
#: Zero-based: the line of `obj.greet(...)`, just after its dot.
AFTER_DOT = LspCompletionPosition(line=10, character=4)
HELPERS = """\
class HelperRegistry:
    pass
"""
CLASS, FUNCTION, METHOD = 5, 12, 6  # LSP's SymbolKind


@pytest.fixture
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    box = daytona.create(timeout=120)
    try:
        box.fs.upload_file(SOURCE.encode(), MAIN)
        box.fs.upload_file(HELPERS.encode(), f"{PROJECT}/pkg/helpers.py")
        yield box
    finally:
        daytona.delete(box)


def _name(label: str) -> str:
    """pylsp labels a callable with its parameters (`greet(name)`)."""
    return label.split("(", 1)[0]


def _language_servers_running(sandbox: Sandbox) -> bool:
    return sandbox.process.exec("pgrep -x pylsp").exit_code == 0


def test_python_server_lists_symbols_searches_the_project_and_completes(
    sandbox: Sandbox,
) -> None:
    lsp = sandbox.create_lsp_server("python", PROJECT)
    lsp.start()
    lsp.did_open(MAIN)

    symbols = {s.name: s for s in lsp.document_symbols(MAIN)}
    assert symbols["Greeter"].kind == CLASS
    assert symbols["make_greeter"].kind == FUNCTION
    assert symbols["greet"].kind in (METHOD, FUNCTION)
    greeter = symbols["Greeter"].location
    assert greeter.uri == f"file://{MAIN}"
    assert greeter.range.start.line == 0

    found = lsp.sandbox_symbols("Greeter")
    assert any(s.name == "Greeter" and s.kind == CLASS for s in found)
    helper = [s for s in lsp.sandbox_symbols("helperreg") if s.name == "HelperRegistry"]
    assert [s.location.uri for s in helper] == [f"file://{PROJECT}/pkg/helpers.py"]
    with pytest.warns(DeprecationWarning, match="sandbox_symbols"):
        assert any(s.name == "Greeter" for s in lsp.workspace_symbols("Greet"))

    completions = lsp.completions(MAIN, AFTER_DOT)
    assert "greet" in {_name(item.label) for item in completions.items}
    lsp.did_close(MAIN)
    lsp.stop()


def test_relative_paths_are_taken_from_the_project(sandbox: Sandbox) -> None:
    lsp = sandbox.create_lsp_server("python", "proj")  # relative to /workspace
    lsp.start()
    lsp.did_open("main.py")
    names = {s.name for s in lsp.document_symbols("main.py")}
    assert {"Greeter", "make_greeter"} <= names
    labels = {_name(i.label) for i in lsp.completions("main.py", AFTER_DOT).items}
    assert "greet" in labels
    lsp.stop()


def test_an_opened_file_is_reloaded_when_opened_again(sandbox: Sandbox) -> None:
    lsp = sandbox.create_lsp_server("python", PROJECT)
    lsp.start()
    lsp.did_open(MAIN)
    sandbox.fs.upload_file(SOURCE.encode() + b"\n\ndef added_later():\n    pass\n", MAIN)
    lsp.did_open(MAIN)
    assert "added_later" in {s.name for s in lsp.document_symbols(MAIN)}
    lsp.stop()


def test_a_stopped_server_refuses_calls_and_its_process_is_gone(sandbox: Sandbox) -> None:
    lsp = sandbox.create_lsp_server("python", PROJECT)
    with pytest.raises(DaytonaError, match="start it first"):
        lsp.document_symbols(MAIN)  # never started
    lsp.start()
    lsp.start()  # a started server stays as it is
    assert sandbox.process.exec("pgrep -xc pylsp").result.strip() == "1"
    lsp.stop()
    eventually(lambda: not _language_servers_running(sandbox), what="pylsp gone")
    for call in (
        lambda: lsp.did_open(MAIN),
        lambda: lsp.document_symbols(MAIN),
        lambda: lsp.sandbox_symbols("Greeter"),
        lambda: lsp.completions(MAIN, AFTER_DOT),
    ):
        with pytest.raises(DaytonaError, match="start it first"):
            call()
    lsp.stop()  # stopping a stopped server changes nothing
    lsp.start()  # and it can start again
    assert "Greeter" in {s.name for s in lsp.document_symbols(MAIN)}
    lsp.stop()


def test_servers_are_gone_after_the_sandbox_stops(daytona: Daytona, sandbox: Sandbox) -> None:
    lsp = sandbox.create_lsp_server("python", PROJECT)
    lsp.start()
    daytona.stop(sandbox)
    daytona.start(sandbox)
    with pytest.raises(DaytonaError, match="start it first"):
        lsp.document_symbols(MAIN)
    assert not _language_servers_running(sandbox)


def test_unsupported_language_and_missing_server_are_refused_by_name(sandbox: Sandbox) -> None:
    with pytest.raises(DaytonaError, match="unsupported language") as refused:
        sandbox.create_lsp_server("cobol", PROJECT).start()  # type: ignore[arg-type]
    assert refused.value.status_code == 400
    with pytest.raises(DaytonaError, match="typescript-language-server") as missing:
        sandbox.create_lsp_server("typescript", PROJECT).start()
    assert missing.value.status_code == 400
    with pytest.raises(DaytonaError, match="typescript-language-server"):
        sandbox.create_lsp_server("javascript", PROJECT).start()


def test_bad_projects_and_documents_are_refused(sandbox: Sandbox) -> None:
    with pytest.raises(DaytonaError) as absent:
        sandbox.create_lsp_server("python", "/workspace/nowhere").start()
    assert absent.value.status_code == 404
    with pytest.raises(DaytonaError, match="not a directory"):
        sandbox.create_lsp_server("python", MAIN).start()
    lsp = sandbox.create_lsp_server("python", PROJECT)
    lsp.start()
    with pytest.raises(DaytonaError) as missing:
        lsp.did_open(f"{PROJECT}/missing.py")
    assert missing.value.status_code == 404
    with pytest.raises(DaytonaError, match=r"'\.\.'"):
        lsp.did_open("../../etc/passwd")
    lsp.stop()


def test_async_client_lists_symbols_and_completes(
    async_config: Callable[[], DaytonaConfig],
) -> None:
    async def scenario() -> None:
        async with AsyncDaytona(async_config()) as daytona:
            box = await daytona.create(timeout=120)
            try:
                await box.fs.upload_file(SOURCE.encode(), MAIN)
                lsp = box.create_lsp_server("python", PROJECT)
                await lsp.start()
                await lsp.did_open(MAIN)
                names = {s.name for s in await lsp.document_symbols(MAIN)}
                assert {"Greeter", "make_greeter"} <= names
                assert any(s.name == "Greeter" for s in await lsp.sandbox_symbols("Greeter"))
                labels = {_name(i.label) for i in (await lsp.completions(MAIN, AFTER_DOT)).items}
                assert "greet" in labels
                await lsp.stop()
                with pytest.raises(DaytonaError, match="start it first"):
                    await lsp.document_symbols(MAIN)
            finally:
                await daytona.delete(box)

    asyncio.run(scenario())


def test_a_server_that_died_is_reported_and_starts_again(sandbox: Sandbox) -> None:
    lsp = sandbox.create_lsp_server("python", PROJECT)
    lsp.start()
    sandbox.process.exec("pkill -KILL -x pylsp")

    def refused_as_exited() -> bool:
        try:
            lsp.document_symbols(MAIN)
        except DaytonaError as exc:
            return "has exited" in str(exc) and exc.status_code == 400
        return False

    eventually(refused_as_exited, what="the dead server reported")
    with pytest.raises(DaytonaError, match="start it again"):
        lsp.completions(MAIN, AFTER_DOT)
    lsp.start()
    assert "Greeter" in {s.name for s in lsp.document_symbols(MAIN)}
    lsp.stop()


def test_odd_documents_and_positions_answer_without_server_errors(sandbox: Sandbox) -> None:
    sandbox.fs.upload_file(bytes(range(256)) * 4, f"{PROJECT}/blob.py")
    sandbox.fs.create_folder(f"{PROJECT}/adir", "755")
    lsp = sandbox.create_lsp_server("python", PROJECT)
    lsp.start()
    lsp.did_open(f"{PROJECT}/blob.py")
    assert isinstance(lsp.document_symbols(f"{PROJECT}/blob.py"), list)
    with pytest.raises(DaytonaError) as directory:
        lsp.did_open(f"{PROJECT}/adir")
    assert directory.value.status_code is not None and directory.value.status_code < 500
    far = LspCompletionPosition(line=10_000, character=3)
    assert lsp.completions(MAIN, far).items == []  # past the end: nothing to offer
    with pytest.raises(DaytonaError) as negative:
        lsp.completions(MAIN, LspCompletionPosition(line=-1, character=0))
    assert negative.value.status_code == 400
    assert lsp.sandbox_symbols("") is not None  # every symbol of the project
    lsp.stop()
