"""Daytona's language servers (toolbox `/lsp/…`), as the SDK's `LspServer` calls them:
start and stop a server for a language and project, open and close documents, and
ask for document symbols, a symbol search over the project and completions, over the
native language servers (`services/inside/lsp`). Python is served by pylsp;
TypeScript and JavaScript need `typescript-language-server` in the image (Debian
packages none), and a sandbox without its language's server is refused naming it."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.requests import HTTPConnection

from sandbay.api.deps import get_platform
from sandbay.domain.lsp import CompletionItem, Completions, Position, Symbol
from sandbay.services.inside.lsp import LanguageServers

from .errors import DaytonaPrincipal

router = APIRouter(prefix="/toolbox/{sandboxId}/lsp", tags=["daytona-toolbox"])

SandboxId = Annotated[str, Path(alias="sandboxId", description="ID or name of the sandbox")]
LanguageId = Annotated[
    str, Query(alias="languageId", min_length=1, description="python, typescript or javascript")
]
ProjectPath = Annotated[
    str, Query(alias="pathToProject", min_length=1, description="Relative to /workspace")
]


async def get_language_servers(connection: HTTPConnection) -> LanguageServers:
    return get_platform(connection).language_servers


ServersDep = Annotated[LanguageServers, Depends(get_language_servers)]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class LspServerRequest(_Camel):
    language_id: str = Field(min_length=1)
    path_to_project: str = Field(min_length=1)


class LspDocumentRequest(LspServerRequest):
    uri: str = Field(min_length=1, description="file://<path>; relative to the project")


class LspPosition(BaseModel):
    line: int = Field(ge=0)
    character: int = Field(ge=0)


class CompletionContext(_Camel):
    trigger_kind: int = Field(ge=1, le=3)
    trigger_character: str | None = None


class LspCompletionParams(LspDocumentRequest):
    position: LspPosition
    context: CompletionContext | None = None


class LspRange(BaseModel):
    start: LspPosition
    end: LspPosition


class LspLocation(BaseModel):
    uri: str
    range: LspRange


class LspSymbol(BaseModel):
    name: str
    kind: int
    location: LspLocation

    @classmethod
    def of(cls, symbol: Symbol) -> "LspSymbol":
        start, end = symbol.range.start, symbol.range.end
        span = LspRange(
            start=LspPosition(line=start.line, character=start.character),
            end=LspPosition(line=end.line, character=end.character),
        )
        return cls(
            name=symbol.name, kind=symbol.kind, location=LspLocation(uri=symbol.uri, range=span)
        )


class DaytonaCompletionItem(_Camel):
    label: str
    kind: int | None = None
    detail: str | None = None
    documentation: dict[str, Any] | None = None
    sort_text: str | None = None
    filter_text: str | None = None
    insert_text: str | None = None

    @classmethod
    def of(cls, item: CompletionItem) -> "DaytonaCompletionItem":
        return cls(
            label=item.label,
            kind=item.kind,
            detail=item.detail,
            documentation=item.documentation,
            sort_text=item.sort_text,
            filter_text=item.filter_text,
            insert_text=item.insert_text,
        )


class CompletionList(_Camel):
    is_incomplete: bool
    items: list[DaytonaCompletionItem]

    @classmethod
    def of(cls, completions: Completions) -> "CompletionList":
        items = [DaytonaCompletionItem.of(i) for i in completions.items]
        return cls(is_incomplete=completions.is_incomplete, items=items)


@router.post("/start")
async def start(
    sandbox: SandboxId, body: LspServerRequest, principal: DaytonaPrincipal, servers: ServersDep
) -> None:
    """Start the language server for the project (a started one is left as it is)."""
    await servers.start(
        principal, sandbox, language_id=body.language_id, project=body.path_to_project
    )


@router.post("/stop")
async def stop(
    sandbox: SandboxId, body: LspServerRequest, principal: DaytonaPrincipal, servers: ServersDep
) -> None:
    """Stop the project's language server; later calls to it are refused until started."""
    await servers.stop(
        principal, sandbox, language_id=body.language_id, project=body.path_to_project
    )


@router.post("/did-open")
async def did_open(
    sandbox: SandboxId, body: LspDocumentRequest, principal: DaytonaPrincipal, servers: ServersDep
) -> None:
    """Open a document in the server with its current contents (reloads an open one)."""
    await servers.did_open(
        principal,
        sandbox,
        language_id=body.language_id,
        project=body.path_to_project,
        uri=body.uri,
    )


@router.post("/did-close")
async def did_close(
    sandbox: SandboxId, body: LspDocumentRequest, principal: DaytonaPrincipal, servers: ServersDep
) -> None:
    """Close a document in the server."""
    await servers.did_close(
        principal,
        sandbox,
        language_id=body.language_id,
        project=body.path_to_project,
        uri=body.uri,
    )


@router.get("/document-symbols")
async def document_symbols(
    sandbox: SandboxId,
    language_id: LanguageId,
    path_to_project: ProjectPath,
    uri: Annotated[str, Query(min_length=1)],
    principal: DaytonaPrincipal,
    servers: ServersDep,
) -> list[LspSymbol]:
    """The document's symbols (classes, functions, variables, …), nested ones included."""
    symbols = await servers.document_symbols(
        principal, sandbox, language_id=language_id, project=path_to_project, uri=uri
    )
    return [LspSymbol.of(s) for s in symbols]


@router.get("/workspacesymbols")
async def workspace_symbols(
    sandbox: SandboxId,
    language_id: LanguageId,
    path_to_project: ProjectPath,
    principal: DaytonaPrincipal,
    servers: ServersDep,
    query: Annotated[str, Query(max_length=256)] = "",
) -> list[LspSymbol]:
    """Symbols across the project whose names match the query."""
    symbols = await servers.workspace_symbols(
        principal, sandbox, language_id=language_id, project=path_to_project, query=query
    )
    return [LspSymbol.of(s) for s in symbols]


@router.post("/completions", response_model_exclude_none=True)
async def completions(
    sandbox: SandboxId, body: LspCompletionParams, principal: DaytonaPrincipal, servers: ServersDep
) -> CompletionList:
    """Completions at a zero-based position of the document."""
    context = body.context.model_dump(by_alias=True, exclude_none=True) if body.context else None
    answer = await servers.completions(
        principal,
        sandbox,
        language_id=body.language_id,
        project=body.path_to_project,
        uri=body.uri,
        position=Position(body.position.line, body.position.character),
        context=context,
    )
    return CompletionList.of(answer)
