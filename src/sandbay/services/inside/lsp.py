"""Language servers inside environments (Daytona's LSP toolbox): one server process per
(environment, language, project), started through the agent with its stdin kept
open and held by this server process, spoken to in LSP (`lsp_rpc`). A document is
opened with its contents read through the agent; symbols and completions are the
server's, read into plain shapes (`domain.lsp`). A server that has no workspace
symbol search (pylsp has none) is searched file by file through its document
symbols. Servers go with their environment when it stops, and every request is
time-bound."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.environments import Event
from sandbay.domain.errors import InvalidRequest, PayloadTooLarge, SandbayError
from sandbay.domain.exec import ProcessSpec
from sandbay.domain.files import name_of
from sandbay.domain.keys import Permission, Principal
from sandbay.domain.lsp import (
    Completions,
    Language,
    Position,
    Symbol,
    completions_of,
    document_path,
    file_uri,
    language_of,
    matches,
    project_path,
    symbols_of,
)
from sandbay.domain.states import EnvState
from sandbay.runtime.inside import FileSystem, ProcessRunner
from sandbay.services.inside.lsp_rpc import Connection
from sandbay.services.inside.target import Target, open_target

log = logging.getLogger(__name__)

_START_S = 60.0  # a first start may index a project
_REQUEST_S = 30.0
_SEARCH_S = 30.0  # the whole file-by-file symbol search
_SEARCH_FILES = 500
_SKIPPED_DIRS = frozenset({"node_modules", "site-packages", "__pycache__"})
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
_GONE = frozenset(
    {
        EnvState.STOPPING,
        EnvState.STOPPED,
        EnvState.ARCHIVING,
        EnvState.ARCHIVED,
        EnvState.DELETING,
        EnvState.DELETED,
        EnvState.ERROR,
    }
)
#: What we tell a server we can take: flat symbols, plain-text or markdown docs.
_CAPABILITIES: dict[str, Any] = {
    "textDocument": {
        "synchronization": {"didSave": False, "dynamicRegistration": False},
        "documentSymbol": {"hierarchicalDocumentSymbolSupport": False},
        "completion": {
            "completionItem": {
                "snippetSupport": False,
                "documentationFormat": ["markdown", "plaintext"],
            },
            "contextSupport": True,
        },
    },
    "workspace": {"symbol": {}, "configuration": True, "workspaceFolders": True},
}


@dataclass(frozen=True, slots=True)
class ServerKey:
    language: str
    project: str


class LanguageServer:
    """One started server: its connection, what it can do, the documents it has open."""

    def __init__(self, language: Language, project: str, connection: Connection) -> None:
        self.language = language
        self.project = project
        self.connection = connection
        self.capabilities: dict[str, Any] = {}
        self.versions: dict[str, int] = {}  # open document URI -> its version
        self.documents = asyncio.Lock()

    async def initialize(self) -> None:
        name = name_of(self.project)
        params = {
            "processId": None,
            "clientInfo": {"name": "sandbay"},
            "rootPath": self.project,
            "rootUri": file_uri(self.project),
            "workspaceFolders": [{"uri": file_uri(self.project), "name": name}],
            "capabilities": _CAPABILITIES,
        }
        answer = await self.connection.request("initialize", params, timeout=_START_S)
        caps = answer.get("capabilities") if isinstance(answer, dict) else None
        self.capabilities = caps if isinstance(caps, dict) else {}
        await self.connection.notify("initialized", {})

    async def request(self, method: str, params: Any, timeout: float = _REQUEST_S) -> Any:
        return await self.connection.request(method, params, timeout=timeout)


async def _launch(
    runner: ProcessRunner, target: Target, language: Language, project: str
) -> LanguageServer:
    """Start the language's program in the project and initialize it; 400 naming the
    program when the image lacks it."""
    program = language.argv[0]
    spec = ProcessSpec(
        argv=list(language.argv),
        env=dict(target.env),
        cwd=project,
        user=target.user,
        stdin=True,
    )
    handle = await runner.spawn(target.environment_id, spec)
    if await handle.started() is None:
        try:
            await handle.wait()
            reason = "it did not start"
        except SandbayError as exc:
            reason = exc.message
        if "executable file not found" in reason:
            raise InvalidRequest(
                f"no {language.id} language server in this sandbox: `{program}` is not "
                f"installed in its image ({language.remedy})"
            )
        raise InvalidRequest(f"the {language.id} language server ({program}) {reason}")
    server = LanguageServer(language, project, Connection(handle, f"{language.id} ({program})"))
    try:
        await server.initialize()
    except BaseException:
        await server.connection.close()
        raise
    return server


class LanguageServers:
    """Every language server this server process runs, by environment."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        runner: ProcessRunner,
        files: FileSystem,
    ) -> None:
        self._sessions = sessions
        self._runner = runner
        self._files = files
        self._by_env: dict[str, dict[ServerKey, LanguageServer]] = {}
        self._starting: dict[tuple[str, ServerKey], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def _target(self, principal: Principal, sandbox: str) -> Target:
        return await open_target(self._sessions, principal, sandbox, Permission.ENVIRONMENTS_EXEC)

    async def start(
        self, principal: Principal, sandbox: str, *, language_id: str, project: str
    ) -> None:
        """Start the server (a started one stays as it is)."""
        language, key = _key(language_id, project)
        target = await self._target(principal, sandbox)
        info = await self._files.stat(target.environment_id, key.project)  # 404 if absent
        if not info.is_dir:
            raise InvalidRequest(f"project path {key.project} is not a directory")
        env_id = target.environment_id
        lock = self._starting.setdefault((env_id, key), asyncio.Lock())
        async with lock:
            servers = self._by_env.setdefault(env_id, {})
            running = servers.get(key)
            if running is not None and running.connection.alive:
                return
            if running is not None:
                servers.pop(key, None)
                await running.connection.close()
            server = await _launch(self._runner, target, language, key.project)
            self._by_env.setdefault(env_id, {})[key] = server

    async def stop(
        self, principal: Principal, sandbox: str, *, language_id: str, project: str
    ) -> None:
        """Stop the server (nothing to do when none runs)."""
        _, key = _key(language_id, project)
        target = await self._target(principal, sandbox)
        server = self._by_env.get(target.environment_id, {}).pop(key, None)
        if server is not None:
            await server.connection.close()

    async def _server(
        self, principal: Principal, sandbox: str, language_id: str, project: str
    ) -> tuple[LanguageServer, Target]:
        """The started server, and its environment (resolved, its activity marked)."""
        _, key = _key(language_id, project)
        target = await self._target(principal, sandbox)
        servers = self._by_env.get(target.environment_id, {})
        server = servers.get(key)
        if server is None:
            raise InvalidRequest(
                f"no {key.language} language server is started for {key.project}; start it first"
            )
        if not server.connection.alive:  # it stays known, so it is named until restarted
            raise server.connection.gone()
        return server, target

    async def did_open(
        self, principal: Principal, sandbox: str, *, language_id: str, project: str, uri: str
    ) -> None:
        """Open the document with its contents as they are now (an open one is reloaded)."""
        server, target = await self._server(principal, sandbox, language_id, project)
        path = document_path(uri, server.project)
        text = await self._read(target.environment_id, path)
        doc = file_uri(path)
        async with server.documents:
            version = server.versions.get(doc)
            if version is None:
                item = {"uri": doc, "languageId": server.language.id, "version": 1, "text": text}
                await server.connection.notify("textDocument/didOpen", {"textDocument": item})
                server.versions[doc] = 1
            else:
                changed = {"uri": doc, "version": version + 1}
                params = {"textDocument": changed, "contentChanges": [{"text": text}]}
                await server.connection.notify("textDocument/didChange", params)
                server.versions[doc] = version + 1

    async def did_close(
        self, principal: Principal, sandbox: str, *, language_id: str, project: str, uri: str
    ) -> None:
        """Close the document (one that is not open stays closed)."""
        server, _ = await self._server(principal, sandbox, language_id, project)
        doc = file_uri(document_path(uri, server.project))
        async with server.documents:
            if server.versions.pop(doc, None) is not None:
                await server.connection.notify(
                    "textDocument/didClose", {"textDocument": {"uri": doc}}
                )

    async def document_symbols(
        self, principal: Principal, sandbox: str, *, language_id: str, project: str, uri: str
    ) -> list[Symbol]:
        server, _ = await self._server(principal, sandbox, language_id, project)
        doc = file_uri(document_path(uri, server.project))
        answer = await server.request("textDocument/documentSymbol", {"textDocument": {"uri": doc}})
        return symbols_of(answer, doc)

    async def workspace_symbols(
        self, principal: Principal, sandbox: str, *, language_id: str, project: str, query: str
    ) -> list[Symbol]:
        """The project's symbols whose names match `query`: the server's own search, or
        (when it has none) its document symbols of each source file, name containing
        the query."""
        server, target = await self._server(principal, sandbox, language_id, project)
        if server.capabilities.get("workspaceSymbolProvider"):
            return symbols_of(await server.request("workspace/symbol", {"query": query}))
        found: list[Symbol] = []
        deadline = time.monotonic() + _SEARCH_S
        for path in await self._sources(target, server):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            params = {"textDocument": {"uri": file_uri(path)}}
            with contextlib.suppress(InvalidRequest):  # a file the server cannot read
                answer = await server.request("textDocument/documentSymbol", params, left)
                found.extend(s for s in symbols_of(answer, file_uri(path)) if matches(s, query))
        return found

    async def _sources(self, target: Target, server: LanguageServer) -> list[str]:
        paths: set[str] = set()
        for pattern in server.language.sources:
            entries, _ = await self._files.find(
                target.environment_id,
                server.project,
                pattern,
                user=target.user,
                limit=_SEARCH_FILES,
            )
            paths.update(e.path for e in entries if not e.is_dir and _searched(e.path))
        return sorted(paths)[:_SEARCH_FILES]

    async def completions(
        self,
        principal: Principal,
        sandbox: str,
        *,
        language_id: str,
        project: str,
        uri: str,
        position: Position,
        context: dict[str, Any] | None,
    ) -> Completions:
        server, _ = await self._server(principal, sandbox, language_id, project)
        doc = file_uri(document_path(uri, server.project))
        params: dict[str, Any] = {
            "textDocument": {"uri": doc},
            "position": {"line": position.line, "character": position.character},
        }
        if context is not None:
            params["context"] = context
        return completions_of(await server.request("textDocument/completion", params))

    async def _read(self, environment_id: str, path: str) -> str:
        info, chunks = await self._files.read(environment_id, path)
        if info.size > MAX_DOCUMENT_BYTES:
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]
            raise PayloadTooLarge(f"{path} is larger than {MAX_DOCUMENT_BYTES} bytes")
        data = bytearray()
        async for chunk in chunks:
            data += chunk
        return data.decode(errors="replace")

    def on_event(self, event: Event) -> None:
        """Bus listener: an environment that leaves running loses its servers."""
        if not event.environment_id or event.to_state not in _GONE:
            return
        servers = self._by_env.pop(event.environment_id, None)
        for key in [k for k in self._starting if k[0] == event.environment_id]:
            self._starting.pop(key, None)
        if servers:
            task = asyncio.create_task(_close_all(servers.values()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Server shutdown: stop every language server."""
        servers = [s for by_key in self._by_env.values() for s in by_key.values()]
        self._by_env.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_close_all(servers), 15)
        for task in list(self._tasks):
            task.cancel()


def _key(language_id: str, project: str) -> tuple[Language, ServerKey]:
    language = language_of(language_id)
    return language, ServerKey(language.id, project_path(project))


def _searched(path: str) -> bool:
    parts = path.split("/")
    return not any(p.startswith(".") or p in _SKIPPED_DIRS for p in parts[:-1])


async def _close_all(servers: Iterable[LanguageServer]) -> None:
    await asyncio.gather(*(s.connection.close() for s in servers), return_exceptions=True)
