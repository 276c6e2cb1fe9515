"""Daytona's `sandbox.fs` through its unchanged SDK, sync and async: listings to a
depth, content find (grep), name search (glob), replacement visible in the file,
permissions and ownership visible in `stat`, file info, a plain download, and the
SDK's not-found exception for a missing path."""

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest
from daytona import AsyncDaytona, Daytona, DaytonaConfig, Sandbox
from daytona.common.errors import (
    DaytonaFileAccessDeniedError,
    DaytonaFileNotFoundError,
    DaytonaNotFoundError,
)

from tests.support.factories import delete, running_env

# The toolbox's work is the environment's (its agent), not the database's.
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]

TREE = (
    "mkdir -p /workspace/t/src/pkg /workspace/t/.git"
    " && printf 'a = 1\\n# TODO: fix a\\n' > /workspace/t/src/a.py"
    " && printf 'TODO: nothing here\\n' > /workspace/t/.git/ignored.py"
    " && printf 'b = 2\\n' > /workspace/t/src/pkg/b.py"
    " && printf 'top\\n# TODO: top\\n' > /workspace/t/top.txt"
)


@pytest.fixture
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    box = daytona.create(timeout=120)
    try:
        assert box.process.exec(TREE).exit_code == 0
        yield box
    finally:
        daytona.delete(box)


def test_list_files_to_a_depth(sandbox: Sandbox) -> None:
    top = sandbox.fs.list_files("t")
    assert {(f.name, f.is_dir) for f in top} == {(".git", True), ("src", True), ("top.txt", False)}
    two = {f.path for f in sandbox.fs.list_files("/workspace/t", depth=2)}
    assert "/workspace/t/src/pkg" in two and "/workspace/t/src/a.py" in two
    assert "/workspace/t/src/pkg/b.py" not in two
    three = {f.path for f in sandbox.fs.list_files("t", depth=3)}
    assert "/workspace/t/src/pkg/b.py" in three


def test_find_search_and_replace(sandbox: Sandbox) -> None:
    matches = sandbox.fs.find_files("t", "TODO:")
    assert sorted((m.file, m.line, m.content) for m in matches) == [
        ("/workspace/t/src/a.py", 2, "# TODO: fix a"),
        ("/workspace/t/top.txt", 2, "# TODO: top"),
    ]
    found = sandbox.fs.search_files("t", "*.py")
    assert sorted(found.files) == [
        "/workspace/t/.git/ignored.py",
        "/workspace/t/src/a.py",
        "/workspace/t/src/pkg/b.py",
    ]
    assert sandbox.fs.search_files("t", "*.rs").files == []

    results = sandbox.fs.replace_in_files(
        ["t/src/a.py", "/workspace/t/top.txt", "t/missing.txt"], "TODO", "DONE"
    )
    outcome = {r.file: (r.success, r.error) for r in results}
    assert outcome["t/src/a.py"] == (True, None)
    assert outcome["/workspace/t/top.txt"] == (True, None)
    assert outcome["t/missing.txt"][0] is False and outcome["t/missing.txt"][1]
    text = sandbox.process.exec("cat /workspace/t/src/a.py /workspace/t/top.txt").result
    assert text == "a = 1\n# DONE: fix a\ntop\n# DONE: top\n"


def test_permissions_info_and_download(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.fs.set_file_permissions("t/top.txt", mode="750")
    assert sandbox.process.exec("stat -c '%a %U' /workspace/t/top.txt").result.strip() == (
        "750 root"
    )
    sandbox.fs.set_file_permissions("t/top.txt", owner="nobody", group="nogroup")
    stat = sandbox.process.exec("stat -c '%a %U %G' /workspace/t/top.txt").result.strip()
    assert stat == "750 nobody nogroup"

    info = sandbox.fs.get_file_info("t/top.txt")
    assert (info.name, info.size, info.is_dir) == ("top.txt", 16, False)
    assert (info.permissions, info.owner, info.group) == ("0750", "nobody", "nogroup")
    assert sandbox.fs.get_file_info("t/src").is_dir

    plain = api.get(f"/toolbox/{sandbox.id}/files/download", params={"path": "t/top.txt"})
    assert plain.status_code == 200 and plain.content == b"top\n# TODO: top\n"


def test_missing_paths_raise_the_not_found_error(sandbox: Sandbox, api: httpx.Client) -> None:
    with pytest.raises(DaytonaFileNotFoundError):
        sandbox.fs.download_file("t/nope.txt")
    with pytest.raises(DaytonaFileNotFoundError):
        sandbox.fs.get_file_info("/workspace/t/nope.txt")
    with pytest.raises(DaytonaNotFoundError):
        sandbox.fs.list_files("t/nope")
    with pytest.raises(DaytonaNotFoundError):
        sandbox.fs.set_file_permissions("t/nope", mode="644")
    with pytest.raises(DaytonaNotFoundError):
        sandbox.fs.find_files("t/nope", "x")
    missing = api.get(f"/toolbox/{sandbox.id}/files/download", params={"path": "t/nope"})
    assert missing.status_code == 404
    assert (missing.json()["code"], missing.json()["source"]) == (
        "FILE_NOT_FOUND",
        "DAYTONA_DAEMON",
    )


def test_a_path_the_sandbox_user_may_not_read_is_access_denied(
    daytona: Daytona, api: httpx.Client
) -> None:
    env = running_env(api, name="daytona-nobody", user="nobody")
    try:
        box = daytona.get(env["id"])
        with pytest.raises(DaytonaFileAccessDeniedError):
            box.fs.list_files("/root")
        with pytest.raises(DaytonaFileAccessDeniedError):
            box.fs.set_file_permissions("/etc/hostname", mode="777")
        assert box.fs.list_files("/tmp") is not None
    finally:
        delete(api, env["id"])


def test_async_client_finds_searches_replaces_and_sets_permissions(
    async_config: Callable[[], DaytonaConfig],
) -> None:
    async def scenario() -> None:
        async with AsyncDaytona(async_config()) as daytona:
            box = await daytona.create(timeout=120)
            try:
                assert (await box.process.exec(TREE)).exit_code == 0
                assert len(await box.fs.list_files("t", depth=3)) == 7
                matches = await box.fs.find_files("/workspace/t/src", "fix")
                assert [(m.file, m.line) for m in matches] == [("/workspace/t/src/a.py", 2)]
                found = await box.fs.search_files("t/src", "b.*")
                assert found.files == ["/workspace/t/src/pkg/b.py"]
                results = await box.fs.replace_in_files(["t/src/pkg/b.py"], "2", "3")
                assert [(r.file, r.success) for r in results] == [("t/src/pkg/b.py", True)]
                assert await box.fs.download_file("t/src/pkg/b.py") == b"b = 3\n"
                await box.fs.set_file_permissions("t/src", mode="700")
                assert (await box.fs.get_file_info("t/src")).permissions == "0700"
                with pytest.raises(DaytonaFileNotFoundError):
                    await box.fs.get_file_info("t/none")
            finally:
                await daytona.delete(box)

    asyncio.run(scenario())
