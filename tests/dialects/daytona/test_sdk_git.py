"""Daytona's `sandbox.git` through its unchanged SDK, sync and async, against a git
server over HTTP with basic auth that runs in another environment of the test (git
http-backend behind a small WSGI server), reached over the engine's network: clone
with credentials (kept out of the clone), status, add, commit, branches, push and
pull back in a second clone; init, config, remotes, reset and restore; the SDK's
git exception types for a wrong password and an unknown branch."""

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest
from daytona import AsyncDaytona, Daytona, DaytonaConfig, Sandbox
from daytona.common.errors import (
    DaytonaBadRequestError,
    DaytonaGitAuthFailedError,
    DaytonaGitBranchNotFoundError,
    DaytonaGitRepoNotFoundError,
)

from tests.support.factories import delete, running_env
from tests.support.polling import eventually

# The toolbox's work is the environment's (its agent), not the database's.
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("sqlite_only")]

PASSWORD = "s3cret-token-42"
#: The git server: seeds a bare repository (one commit on main), then serves it
#: with `git http-backend` to requests that carry alice's password.
GIT_SERVER = r"""
import base64, subprocess
from wsgiref.simple_server import WSGIRequestHandler, make_server

EXPECTED = "Basic " + base64.b64encode(b"alice:" + PASSWORD.encode()).decode()
subprocess.run(
    "set -e; git init -q --bare -b main /srv/git/repo.git; git init -q -b main /tmp/seed;"
    " cd /tmp/seed; echo hello > README.md; git add README.md;"
    " git -c user.name=Seed -c user.email=seed@example.com commit -qm seed;"
    " git push -q /srv/git/repo.git main",
    shell=True, check=True,
)


def app(environ, start_response):
    if environ.get("HTTP_AUTHORIZATION") != EXPECTED:
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
        return [b""]
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    env = {k: v for k, v in environ.items() if isinstance(v, str)}
    env.update(GIT_PROJECT_ROOT="/srv/git", GIT_HTTP_EXPORT_ALL="1", REMOTE_USER="alice")
    out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
    head, _, rest = out.stdout.partition(b"\r\n\r\n")
    status, headers = "200 OK", []
    for line in head.decode().splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = value.strip()
        elif key:
            headers.append((key, value.strip()))
    start_response(status, headers)
    return [rest]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


make_server("0.0.0.0", 8000, app, handler_class=Quiet).serve_forever()
""".replace("PASSWORD.encode()", repr(PASSWORD.encode()))


@pytest.fixture
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    box = daytona.create(timeout=120)
    try:
        yield box
    finally:
        daytona.delete(box)


@pytest.fixture
def repo_url(api: httpx.Client, daytona: Daytona, sandbox: Sandbox) -> Iterator[str]:
    """The URL of the git server's repository, once `sandbox` gets its 401."""
    server = running_env(
        api,
        name="git-server",
        command='exec python3 -c "$GIT_SERVER"',
        env={"GIT_SERVER": GIT_SERVER},
    )
    try:
        address = daytona.get(server["id"]).process.exec("hostname -i").result.split()[0]
        # Another sandbox is reached only when the allow list names it.
        sandbox.update_network_settings(network_allow_list=f"{address}/32")
        url = f"http://{address}:8000/repo.git"
        probe = f"curl -s -o /dev/null -w '%{{http_code}}' {url}/info/refs"
        eventually(lambda: sandbox.process.exec(probe).result == "401", what="the git server")
        yield url
    finally:
        delete(api, server["id"])


def files_of(box: Sandbox, path: str) -> list[tuple[str, str, str]]:
    return [(f.name, f.staging, f.worktree) for f in box.git.status(path).file_status]


def test_clone_commit_branch_push_and_pull_back_over_http(sandbox: Sandbox, repo_url: str) -> None:
    git = sandbox.git
    with pytest.raises(DaytonaGitAuthFailedError):
        git.clone(repo_url, "denied", username="alice", password="wrong")
    git.clone(repo_url, "repo", username="alice", password=PASSWORD)
    git.clone(repo_url, "/workspace/other", username="alice", password=PASSWORD)
    # The credentials went to git for the clone only: nothing of them is stored.
    kept = sandbox.process.exec(
        "cat /workspace/repo/.git/config; cat ~/.git-credentials 2>/dev/null; true"
    )
    assert "alice" not in kept.result and PASSWORD not in kept.result
    assert repo_url in kept.result

    status = git.status("repo")
    assert (status.current_branch, status.ahead, status.behind) == ("main", 0, 0)
    assert status.branch_published and status.file_status == []

    sandbox.fs.upload_file(b"notes\n", "repo/notes.txt")
    sandbox.fs.upload_file(b"hello again\n", "repo/README.md")
    assert files_of(sandbox, "repo") == [
        ("README.md", "Unmodified", "Modified"),
        ("notes.txt", "Untracked", "Untracked"),
    ]
    git.add("repo", ["."])
    assert files_of(sandbox, "repo") == [
        ("README.md", "Modified", "Unmodified"),
        ("notes.txt", "Added", "Unmodified"),
    ]
    sha = git.commit("repo", "Add notes", author="Ada Lovelace", email="ada@example.com").sha
    log = sandbox.process.exec("git -C /workspace/repo log -1 --format='%H|%an|%ae|%s'")
    assert log.result.strip() == f"{sha}|Ada Lovelace|ada@example.com|Add notes"
    assert git.status("repo").ahead == 1

    git.create_branch("repo", "feature")
    assert git.status("repo").current_branch == "feature"
    assert sorted(git.branches("repo").branches) == ["feature", "main"]
    git.checkout_branch("repo", "main")
    assert git.branches("repo").current == "main"
    git.delete_branch("repo", "feature")
    assert git.branches("repo").branches == ["main"]
    with pytest.raises(DaytonaGitBranchNotFoundError):
        git.checkout_branch("repo", "no-such-branch")

    git.push("repo", username="alice", password=PASSWORD)
    assert git.status("repo").ahead == 0
    assert git.status("other").behind == 0  # it has not fetched yet
    git.pull("other", username="alice", password=PASSWORD)
    assert sandbox.fs.download_file("other/notes.txt") == b"notes\n"
    head = sandbox.process.exec("git -C /workspace/other rev-parse HEAD").result.strip()
    assert head == sha

    # A branch pushed by name with set_upstream, then a clone of that branch.
    git.create_branch("repo", "topic")
    git.commit("repo", "Empty", author="Ada", email="ada@example.com", allow_empty=True)
    git.push("repo", username="alice", password=PASSWORD, branch="topic", set_upstream=True)
    assert git.status("repo").upstream == "origin/topic"
    git.clone(repo_url, "topic", branch="topic", username="alice", password=PASSWORD)
    assert git.status("topic").current_branch == "topic"
    git.clone(repo_url, "pinned", commit_id=sha, username="alice", password=PASSWORD)
    pinned = git.status("pinned")
    assert pinned.current_branch == "HEAD" and pinned.detached


def test_missing_repository_is_repo_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(DaytonaGitRepoNotFoundError):
        sandbox.git.status("/workspace/not-a-repo")
    sandbox.fs.create_folder("/workspace/plain", "755")
    with pytest.raises(DaytonaGitRepoNotFoundError):
        sandbox.git.status("/workspace/plain")
    with pytest.raises(DaytonaBadRequestError):
        sandbox.git.clone("--upload-pack=touch /tmp/pwned", "x")


def test_async_client_inits_configures_commits_resets_and_restores(
    async_config: Callable[[], DaytonaConfig],
) -> None:
    async def scenario() -> None:
        async with AsyncDaytona(async_config()) as daytona:
            box = await daytona.create(timeout=120)
            try:
                git = box.git
                await git.init("proj", initial_branch="trunk")
                await git.configure_user("Grace Hopper", "grace@example.com")
                assert await git.get_config("user.name") == "Grace Hopper"
                assert await git.get_config("no.such-key") is None
                await git.set_config("core.autocrlf", "false", scope="local", path="proj")
                assert await git.get_config("core.autocrlf", scope="local", path="proj") == "false"

                await box.fs.upload_file(b"one\n", "proj/a.txt")
                await git.add("proj", ["a.txt"])
                first = (await git.commit("proj", "one", "Grace", "grace@example.com")).sha
                assert (await git.branches("proj")).current == "trunk"

                await box.fs.upload_file(b"two\n", "proj/a.txt")
                await git.restore("proj", ["a.txt"])
                assert await box.fs.download_file("proj/a.txt") == b"one\n"
                await box.fs.upload_file(b"three\n", "proj/a.txt")
                await git.add("proj", ["a.txt"])
                await git.restore("proj", ["a.txt"], staged=True)
                status = await git.status("proj")
                assert [(f.name, f.staging, f.worktree) for f in status.file_status] == [
                    ("a.txt", "Unmodified", "Modified")
                ]
                await git.add("proj", ["a.txt"])
                await git.commit("proj", "three", "Grace", "grace@example.com")
                await git.reset("proj", mode="hard", target=first)
                assert await box.fs.download_file("proj/a.txt") == b"one\n"

                await git.remote_add("proj", "origin", "https://example.invalid/a.git")
                await git.remote_add(
                    "proj", "origin", "https://example.invalid/b.git", overwrite=True
                )
                remotes = (await git.remotes("proj")).remotes
                assert [(r.name, r.url) for r in remotes] == [
                    ("origin", "https://example.invalid/b.git")
                ]
                assert await git.remote_get("proj", "upstream") is None

                await git.dangerously_authenticate("bob", "tok", host="git.example.invalid")
                stored = await box.process.exec("cat ~/.git-credentials")
                assert stored.result.strip() == "https://bob:tok@git.example.invalid"
            finally:
                await daytona.delete(box)

    asyncio.run(scenario())
