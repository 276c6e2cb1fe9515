"""Daytona's git toolbox (`/toolbox/{sandboxId}/git/…`), as the SDK's `sandbox.git`
calls it: clone, status, add, commit, branches (list, create, delete), checkout,
pull, push, init, reset, restore, remotes, config and stored credentials, over the
native git service. Bodies are the daemon's (snake_case); git failures answer the
daemon's `GIT_…` codes. The commit history (`GET /git/history`) is refused."""

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from sandbay.api.deps import InsideDep
from sandbay.domain.errors import InvalidRequest
from sandbay.services.inside import git
from sandbay.services.inside.git import GitRemote

from .errors import DaytonaPrincipal, git_errors

router = APIRouter(prefix="/toolbox/{sandboxId}/git", tags=["daytona-toolbox"])

SandboxId = Annotated[str, Path(alias="sandboxId", description="ID or name of the sandbox")]
RepoPath = Annotated[str, Query(description="Repository; relative to /workspace")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: str


class _Auth(_Body):
    username: str | None = None
    password: str | None = None


class CloneRequest(_Auth):
    url: str
    branch: str | None = None
    commit_id: str | None = None
    depth: int | None = Field(None, ge=0)
    insecure_skip_tls: bool | None = None


class AddRequest(_Body):
    files: list[str] = Field(min_length=1)


class CommitRequest(_Body):
    message: str
    author: str
    email: str
    allow_empty: bool | None = None


class BranchRequest(_Body):
    name: str


class CheckoutRequest(_Body):
    branch: str


class PullRequest(_Auth):
    remote: str | None = None
    branch: str | None = None


class PushRequest(PullRequest):
    set_upstream: bool | None = None


class InitRequest(_Body):
    bare: bool | None = None
    initial_branch: str | None = None


class ResetRequest(_Body):
    mode: str | None = None
    target: str | None = None
    files: list[str] | None = None


class RestoreRequest(_Body):
    files: list[str] = Field(min_length=1)
    staged: bool | None = None
    worktree: bool | None = None
    source: str | None = None


class AddRemoteRequest(_Body):
    name: str
    url: str
    fetch: bool | None = None
    overwrite: bool | None = None


class SetConfigRequest(BaseModel):
    key: str
    value: str
    scope: str | None = None
    path: str | None = None


class ConfigureUserRequest(BaseModel):
    name: str
    email: str
    scope: str | None = None
    path: str | None = None


class AuthenticateRequest(BaseModel):
    username: str
    password: str
    host: str | None = None
    protocol: str | None = None


class DaytonaFileStatus(BaseModel):
    name: str
    staging: str
    worktree: str
    extra: str


class DaytonaGitStatus(BaseModel):
    """The daemon's GitStatus: camelCase, unlike its requests."""

    model_config = ConfigDict(populate_by_name=True)

    current_branch: str = Field(serialization_alias="currentBranch")
    ahead: int
    behind: int
    branch_published: bool = Field(serialization_alias="branchPublished")
    detached: bool
    upstream: str
    file_status: list[DaytonaFileStatus] = Field(serialization_alias="fileStatus")


class CommitResponse(BaseModel):
    hash: str


class BranchesResponse(BaseModel):
    branches: list[str]
    current: str


class RemotesResponse(BaseModel):
    remotes: list[GitRemote]


class ConfigResponse(BaseModel):
    value: str | None


@router.post("/clone")
async def clone(
    sandbox: SandboxId, body: CloneRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Clone `url` into `path` (a branch, or a commit left checked out detached);
    `username` and `password` are used for this clone only, never stored in it."""
    with git_errors():
        await git.clone(
            inside,
            principal,
            sandbox,
            url=body.url,
            path=body.path,
            branch=body.branch,
            commit_id=body.commit_id,
            username=body.username,
            password=body.password,
            depth=body.depth,
            insecure_skip_tls=bool(body.insecure_skip_tls),
        )


@router.get("/status", response_model_by_alias=True)
async def status(
    sandbox: SandboxId, path: RepoPath, principal: DaytonaPrincipal, inside: InsideDep
) -> DaytonaGitStatus:
    """The current branch, how far it is ahead of and behind its upstream, and each
    changed file's status in the index and the worktree."""
    with git_errors():
        state = await git.status(inside, principal, sandbox, path)
    return DaytonaGitStatus.model_validate(state.model_dump())


@router.post("/add")
async def add(
    sandbox: SandboxId, body: AddRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Stage files ("." for everything)."""
    with git_errors():
        await git.add(inside, principal, sandbox, body.path, body.files)


@router.post("/commit")
async def commit(
    sandbox: SandboxId, body: CommitRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> CommitResponse:
    """Commit what is staged as `author` <`email`>; the new commit's hash."""
    with git_errors():
        sha = await git.commit(
            inside,
            principal,
            sandbox,
            body.path,
            message=body.message,
            author=body.author,
            email=body.email,
            allow_empty=bool(body.allow_empty),
        )
    return CommitResponse(hash=sha)


@router.get("/branches")
async def list_branches(
    sandbox: SandboxId, path: RepoPath, principal: DaytonaPrincipal, inside: InsideDep
) -> BranchesResponse:
    """The local branches and the one checked out (empty when HEAD is detached)."""
    with git_errors():
        found = await git.branches(inside, principal, sandbox, path)
    return BranchesResponse(branches=found.branches, current=found.current)


@router.post("/branches")
async def create_branch(
    sandbox: SandboxId, body: BranchRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Create a branch at HEAD and check it out."""
    with git_errors():
        await git.create_branch(inside, principal, sandbox, body.path, body.name)


@router.delete("/branches")
async def delete_branch(
    sandbox: SandboxId,
    body: Annotated[BranchRequest, Body()],
    principal: DaytonaPrincipal,
    inside: InsideDep,
) -> None:
    """Delete a merged branch (git's own check refuses an unmerged one)."""
    with git_errors():
        await git.delete_branch(inside, principal, sandbox, body.path, body.name)


@router.post("/checkout")
async def checkout(
    sandbox: SandboxId, body: CheckoutRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Check out a branch (or a commit)."""
    with git_errors():
        await git.checkout(inside, principal, sandbox, body.path, body.branch)


@router.post("/pull")
async def pull(
    sandbox: SandboxId, body: PullRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Pull the current branch's upstream, or `branch` of `remote` ("origin")."""
    with git_errors():
        await git.pull(
            inside,
            principal,
            sandbox,
            body.path,
            username=body.username,
            password=body.password,
            remote=body.remote,
            branch=body.branch,
        )


@router.post("/push")
async def push(
    sandbox: SandboxId, body: PushRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Push the current branch (publishing and tracking it if it has no upstream yet),
    or `branch` to `remote`, tracked with `set_upstream`."""
    with git_errors():
        await git.push(
            inside,
            principal,
            sandbox,
            body.path,
            username=body.username,
            password=body.password,
            remote=body.remote,
            branch=body.branch,
            set_upstream=bool(body.set_upstream),
        )


@router.post("/init")
async def init(
    sandbox: SandboxId, body: InitRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Make a repository (bare, or with a named first branch)."""
    with git_errors():
        await git.init(
            inside,
            principal,
            sandbox,
            body.path,
            bare=bool(body.bare),
            initial_branch=body.initial_branch,
        )


@router.post("/reset")
async def reset(
    sandbox: SandboxId, body: ResetRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Reset HEAD to `target` in `mode`, or only `files` in the index."""
    with git_errors():
        await git.reset(
            inside,
            principal,
            sandbox,
            body.path,
            mode=body.mode,
            target=body.target,
            files=body.files,
        )


@router.post("/restore")
async def restore(
    sandbox: SandboxId, body: RestoreRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Restore files in the worktree (by default) or the index, from `source`."""
    with git_errors():
        await git.restore(
            inside,
            principal,
            sandbox,
            body.path,
            files=body.files,
            staged=bool(body.staged),
            worktree=bool(body.worktree),
            source=body.source,
        )


@router.get("/remotes")
async def list_remotes(
    sandbox: SandboxId, path: RepoPath, principal: DaytonaPrincipal, inside: InsideDep
) -> RemotesResponse:
    """The repository's remotes and their URLs."""
    with git_errors():
        return RemotesResponse(remotes=await git.remotes(inside, principal, sandbox, path))


@router.post("/remotes")
async def add_remote(
    sandbox: SandboxId, body: AddRemoteRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Add a remote (409 if it exists, unless `overwrite`), fetched with `fetch`."""
    with git_errors():
        await git.add_remote(
            inside,
            principal,
            sandbox,
            body.path,
            name=body.name,
            url=body.url,
            fetch=bool(body.fetch),
            overwrite=bool(body.overwrite),
        )


@router.get("/config")
async def get_config(
    sandbox: SandboxId,
    key: str,
    principal: DaytonaPrincipal,
    inside: InsideDep,
    scope: str | None = None,
    path: str | None = None,
) -> ConfigResponse:
    """A git config value (global scope by default); null when not set."""
    with git_errors():
        value = await git.get_config(inside, principal, sandbox, key, scope=scope, path=path)
    return ConfigResponse(value=value)


@router.post("/config")
async def set_config(
    sandbox: SandboxId, body: SetConfigRequest, principal: DaytonaPrincipal, inside: InsideDep
) -> None:
    """Set a git config value (global scope by default)."""
    with git_errors():
        await git.set_config(
            inside, principal, sandbox, body.key, body.value, scope=body.scope, path=body.path
        )


@router.post("/config/user")
async def configure_user(
    sandbox: SandboxId,
    body: ConfigureUserRequest,
    principal: DaytonaPrincipal,
    inside: InsideDep,
) -> None:
    """Set user.name and user.email."""
    with git_errors():
        for key, value in (("user.name", body.name), ("user.email", body.email)):
            await git.set_config(
                inside, principal, sandbox, key, value, scope=body.scope, path=body.path
            )


@router.post("/credentials")
async def authenticate(
    sandbox: SandboxId,
    body: AuthenticateRequest,
    principal: DaytonaPrincipal,
    inside: InsideDep,
) -> None:
    """Store a username and password for protocol://host (https://github.com by
    default) in git's credential store, in plain text, as the caller asks."""
    with git_errors():
        await git.store_credentials(
            inside,
            principal,
            sandbox,
            username=body.username,
            password=body.password,
            host=body.host,
            protocol=body.protocol,
        )


@router.get("/history")
async def history(sandbox: SandboxId, path: RepoPath, principal: DaytonaPrincipal) -> None:
    """Not served: sandbay's agent has no commit log operation yet (400)."""
    raise InvalidRequest(
        "the commit history is not supported by sandbay; run `git log` through process.exec"
    )
