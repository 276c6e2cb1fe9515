"""Git use cases inside an environment: the environment's own git, run as its user
through the runtime's `GitRepos` (the agent). Repository paths go through
`domain.files.normalize_path`; reading a repository needs `environments:read`,
changing one `environments:exec`. Credentials are passed to the agent for one
command and never written into a repository's config. When git fails, its own
words come back as a 400, and `git_problem` names the failure for dialects whose
platforms tell them apart."""

from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from sandbay.domain.errors import InvalidRequest
from sandbay.domain.files import normalize_path
from sandbay.domain.keys import Permission, Principal
from sandbay.services.inside.service import InsideService
from sandbay.services.inside.target import open_target

READ = Permission.ENVIRONMENTS_READ
WRITE = Permission.ENVIRONMENTS_EXEC
RESET_MODES = frozenset({"soft", "mixed", "hard", "merge", "keep"})
CONFIG_SCOPES = frozenset({"global", "local", "system"})


class GitFileStatus(BaseModel):
    name: str
    staging: str
    worktree: str
    extra: str = ""


class GitStatus(BaseModel):
    current_branch: str
    ahead: int = 0
    behind: int = 0
    branch_published: bool = False
    detached: bool = False
    upstream: str = ""
    file_status: list[GitFileStatus] = []


class GitBranches(BaseModel):
    branches: list[str]
    current: str = ""


class GitRemote(BaseModel):
    name: str
    url: str


class GitProblem(StrEnum):
    """Kinds of git failure a caller may act on differently."""

    AUTH_FAILED = "auth_failed"
    REPO_NOT_FOUND = "repo_not_found"
    BRANCH_NOT_FOUND = "branch_not_found"
    BRANCH_EXISTS = "branch_exists"
    PUSH_REJECTED = "push_rejected"
    REMOTE_REJECTED = "remote_rejected"
    DIRTY_WORKTREE = "dirty_worktree"
    MERGE_CONFLICT = "merge_conflict"
    TRANSPORT_FAILED = "transport_failed"


#: What git says for each kind (lowercased), checked in this order: a remote's 403 is
#: an authentication failure before it is a transport one.
_SIGNS: tuple[tuple[GitProblem, tuple[str, ...]], ...] = (
    (
        GitProblem.AUTH_FAILED,
        (
            "authentication failed",
            "could not read username",
            "could not read password",
            "terminal prompts disabled",
            "returned error: 401",
            "returned error: 403",
            "permission denied (publickey",
        ),
    ),
    (
        GitProblem.REPO_NOT_FOUND,
        (
            "not a git repository",
            "repository not found",
            "does not appear to be a git repository",
            "returned error: 404",
        ),
    ),
    (GitProblem.REMOTE_REJECTED, ("[remote rejected]", "hook declined")),
    (
        GitProblem.PUSH_REJECTED,
        ("[rejected]", "updates were rejected", "non-fast-forward", "failed to push"),
    ),
    (
        GitProblem.DIRTY_WORKTREE,
        ("would be overwritten", "please commit your changes or stash them"),
    ),
    (GitProblem.MERGE_CONFLICT, ("conflict (", "automatic merge failed", "fix conflicts")),
    (
        GitProblem.BRANCH_NOT_FOUND,
        (
            "not found in upstream",
            "couldn't find remote ref",
            "did not match any file(s) known to git",
            "invalid reference",
            "not a valid branch name",
        ),
    ),
    (GitProblem.BRANCH_EXISTS, ("already exists",)),
    (
        GitProblem.TRANSPORT_FAILED,
        (
            "could not resolve host",
            "failed to connect",
            "connection refused",
            "connection timed out",
            "unable to access",
            "ssl certificate problem",
            "the remote end hung up",
        ),
    ),
)


def git_problem(message: str) -> GitProblem | None:
    """The kind of a git failure from what git said; None when it is none of them."""
    text = message.lower()
    for problem, signs in _SIGNS:
        if any(sign in text for sign in signs):
            return problem
    return None


def _name(field: str, value: str | None) -> str:
    """A ref, remote or revision name git cannot take for an option."""
    if value is None:
        return ""
    if value.startswith("-") or "\x00" in value or "\n" in value:
        raise InvalidRequest(f"{field} must be a name, not {value[:60]!r}")
    return value


async def _git(
    inside: InsideService,
    principal: Principal,
    env: str,
    operation: str,
    body: dict[str, Any],
    *,
    write: bool,
) -> dict[str, Any]:
    if inside.git is None:
        raise InvalidRequest("git is not available in this installation's environments")
    target = await open_target(inside.sessions, principal, env, WRITE if write else READ)
    request = {**body, "user": target.user or ""}
    return await inside.git.git(target.environment_id, operation, request)


async def clone(
    inside: InsideService,
    principal: Principal,
    env: str,
    *,
    url: str,
    path: str,
    branch: str | None = None,
    commit_id: str | None = None,
    username: str | None = None,
    password: str | None = None,
    depth: int | None = None,
    insecure_skip_tls: bool = False,
) -> None:
    """Clone `url` into `path`; with `commit_id`, leave HEAD detached there."""
    if not url.strip() or url.startswith("-"):
        raise InvalidRequest("url must be a repository URL")
    if depth is not None and depth < 0:
        raise InvalidRequest("depth must not be negative")
    body = {
        "url": url.strip(),
        "path": normalize_path(path),
        "branch": _name("branch", branch),
        "commit_id": _name("commit_id", commit_id),
        "username": username or "",
        "password": password or "",
        "depth": depth or 0,
        "insecure_skip_tls": insecure_skip_tls,
    }
    await _git(inside, principal, env, "clone", body, write=True)


async def status(inside: InsideService, principal: Principal, env: str, path: str) -> GitStatus:
    answer = await _git(
        inside, principal, env, "status", {"path": normalize_path(path)}, write=False
    )
    return GitStatus.model_validate(answer)


async def add(
    inside: InsideService, principal: Principal, env: str, path: str, files: list[str]
) -> None:
    """Stage `files` (paths in the repository; "." for everything)."""
    if not files:
        raise InvalidRequest("files must name at least one path ('.' for all)")
    body = {"path": normalize_path(path), "files": files}
    await _git(inside, principal, env, "add", body, write=True)


async def commit(
    inside: InsideService,
    principal: Principal,
    env: str,
    path: str,
    *,
    message: str,
    author: str | None = None,
    email: str | None = None,
    allow_empty: bool = False,
) -> str:
    """Commit what is staged; the new commit's sha."""
    if not message.strip():
        raise InvalidRequest("message must not be empty")
    body = {
        "path": normalize_path(path),
        "message": message,
        "author": author or "",
        "email": email or "",
        "allow_empty": allow_empty,
    }
    answer = await _git(inside, principal, env, "commit", body, write=True)
    return str(answer.get("sha", ""))


async def branches(inside: InsideService, principal: Principal, env: str, path: str) -> GitBranches:
    answer = await _git(
        inside, principal, env, "branches", {"path": normalize_path(path)}, write=False
    )
    return GitBranches.model_validate(answer)


async def _branch_op(
    inside: InsideService,
    principal: Principal,
    env: str,
    operation: str,
    path: str,
    name: str,
    **extra: Any,
) -> None:
    if not name:
        raise InvalidRequest("a branch name is required")
    body = {"path": normalize_path(path), "name": _name("name", name), **extra}
    await _git(inside, principal, env, operation, body, write=True)


async def create_branch(
    inside: InsideService, principal: Principal, env: str, path: str, name: str
) -> None:
    """Create a branch at HEAD and check it out."""
    await _branch_op(inside, principal, env, "create_branch", path, name)


async def delete_branch(
    inside: InsideService,
    principal: Principal,
    env: str,
    path: str,
    name: str,
    *,
    force: bool = False,
) -> None:
    await _branch_op(inside, principal, env, "delete_branch", path, name, force=force)


async def checkout(
    inside: InsideService, principal: Principal, env: str, path: str, branch: str
) -> None:
    if not branch:
        raise InvalidRequest("a branch is required")
    body = {"path": normalize_path(path), "branch": _name("branch", branch)}
    await _git(inside, principal, env, "checkout", body, write=True)


async def pull(
    inside: InsideService,
    principal: Principal,
    env: str,
    path: str,
    *,
    username: str | None = None,
    password: str | None = None,
    remote: str | None = None,
    branch: str | None = None,
) -> None:
    """Pull the current branch's upstream, or `branch` of `remote`."""
    body = {
        "path": normalize_path(path),
        "username": username or "",
        "password": password or "",
        "remote": _name("remote", remote),
        "branch": _name("branch", branch),
    }
    await _git(inside, principal, env, "pull", body, write=True)


async def push(
    inside: InsideService,
    principal: Principal,
    env: str,
    path: str,
    *,
    username: str | None = None,
    password: str | None = None,
    remote: str | None = None,
    branch: str | None = None,
    set_upstream: bool = False,
) -> None:
    """Push the current branch (publishing it when it has no upstream yet), or
    `branch` to `remote`."""
    body = {
        "path": normalize_path(path),
        "username": username or "",
        "password": password or "",
        "remote": _name("remote", remote),
        "branch": _name("branch", branch),
        "set_upstream": set_upstream,
    }
    await _git(inside, principal, env, "push", body, write=True)


async def init(
    inside: InsideService,
    principal: Principal,
    env: str,
    path: str,
    *,
    bare: bool = False,
    initial_branch: str | None = None,
) -> None:
    body = {
        "path": normalize_path(path),
        "bare": bare,
        "initial_branch": _name("initial_branch", initial_branch),
    }
    await _git(inside, principal, env, "init", body, write=True)


async def reset(
    inside: InsideService,
    principal: Principal,
    env: str,
    path: str,
    *,
    mode: str | None = None,
    target: str | None = None,
    files: list[str] | None = None,
) -> None:
    if mode and mode not in RESET_MODES:
        raise InvalidRequest(f"mode must be one of {', '.join(sorted(RESET_MODES))}")
    body = {
        "path": normalize_path(path),
        "mode": mode or "",
        "target": _name("target", target),
        "files": files or [],
    }
    await _git(inside, principal, env, "reset", body, write=True)


async def restore(
    inside: InsideService,
    principal: Principal,
    env: str,
    path: str,
    *,
    files: list[str],
    staged: bool = False,
    worktree: bool = False,
    source: str | None = None,
) -> None:
    """Restore `files` in the worktree (when neither is asked), the index, or both."""
    if not files:
        raise InvalidRequest("files must name at least one path")
    body = {
        "path": normalize_path(path),
        "files": files,
        "staged": staged,
        "worktree": worktree,
        "source": _name("source", source),
    }
    await _git(inside, principal, env, "restore", body, write=True)


async def remotes(
    inside: InsideService, principal: Principal, env: str, path: str
) -> list[GitRemote]:
    answer = await _git(
        inside, principal, env, "remotes", {"path": normalize_path(path)}, write=False
    )
    return [GitRemote.model_validate(r) for r in answer.get("remotes") or []]


async def add_remote(
    inside: InsideService,
    principal: Principal,
    env: str,
    path: str,
    *,
    name: str,
    url: str,
    fetch: bool = False,
    overwrite: bool = False,
) -> None:
    """Add a remote (409 if it exists, unless `overwrite` replaces its URL)."""
    if not name or not url.strip():
        raise InvalidRequest("name and url are required")
    body = {
        "path": normalize_path(path),
        "name": _name("name", name),
        "url": url.strip(),
        "fetch": fetch,
        "overwrite": overwrite,
    }
    await _git(inside, principal, env, "remote_add", body, write=True)


def _config_body(key: str, scope: str | None, path: str | None) -> dict[str, Any]:
    scope = scope or "global"
    if scope not in CONFIG_SCOPES:
        raise InvalidRequest("scope must be global, local or system")
    if not key or key.startswith("-") or "\n" in key:
        raise InvalidRequest("key must be a config key such as user.name")
    if scope == "local" and not path:
        raise InvalidRequest("path is required for the local scope")
    return {"key": key, "scope": scope, "path": normalize_path(path) if path else ""}


async def get_config(
    inside: InsideService,
    principal: Principal,
    env: str,
    key: str,
    *,
    scope: str | None = None,
    path: str | None = None,
) -> str | None:
    """A config value of the environment user's git; None when it is not set."""
    body = _config_body(key, scope, path)
    answer = await _git(inside, principal, env, "config_get", body, write=False)
    value = answer.get("value")
    return None if value is None else str(value)


async def set_config(
    inside: InsideService,
    principal: Principal,
    env: str,
    key: str,
    value: str,
    *,
    scope: str | None = None,
    path: str | None = None,
) -> None:
    body = {**_config_body(key, scope, path), "value": value}
    await _git(inside, principal, env, "config_set", body, write=True)


async def store_credentials(
    inside: InsideService,
    principal: Principal,
    env: str,
    *,
    username: str,
    password: str,
    host: str | None = None,
    protocol: str | None = None,
) -> None:
    """Keep a username and password for protocol://host in the environment user's git
    credential store, in plain text: only for callers who ask for exactly that."""
    if not username or not password:
        raise InvalidRequest("username and password are required")
    body = {
        "username": username,
        "password": password,
        "host": host or "",
        "protocol": protocol or "",
    }
    await _git(inside, principal, env, "credentials", body, write=True)
