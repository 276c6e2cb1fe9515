"""Daytona's signed file URLs. `sandbox.download_url(path)` and `upload_url(path)`
are signed by the SDK itself with the sandbox's key (`GET /sandbox/{id}/signing-key`,
replaced by `POST …/signing-key/rotate`) and point at the toolbox's
`GET /files/download` and `POST /files/upload-v2` with `path`, `expires` and
`signature` in the query: such a request needs no API key. A request to those paths
that carries a `signature` is routed here (and checked: a tampered, expired or
rotated-away one is 401); one without goes on to the toolbox's API-key routes."""

from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.requests import HTTPConnection
from starlette.routing import Match
from starlette.types import Scope

from sandbay.api.deps import InsideDep, SessionDep, get_platform
from sandbay.api.sse import ClosingStreamingResponse
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.keys import Principal
from sandbay.services.access import file_urls
from sandbay.services.agents.secrets import SecretBox
from sandbay.services.inside import files

from .errors import DaytonaPrincipal, file_errors
from .sandboxes import SandboxIdOrName

router = APIRouter(tags=["daytona"])

SandboxId = Annotated[str, Path(alias="sandboxId", description="ID of the sandbox")]
FilePath = Annotated[str, Query(min_length=1, max_length=4096, description="File in the sandbox")]


async def secret_box(connection: HTTPConnection) -> SecretBox:
    return get_platform(connection).secrets


BoxDep = Annotated[SecretBox, Depends(secret_box)]


class SignedRoute(APIRoute):
    """Matches only a request whose query carries a `signature`, so the toolbox's own
    route for the same path still serves requests made with an API key."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "signature" not in query:
            return Match.NONE, {}
        return super().matches(scope)


#: Out of the OpenAPI document: each shares its path and method with an API-key route.
signed = APIRouter(
    prefix="/toolbox/{sandboxId}",
    route_class=SignedRoute,
    tags=["daytona"],
    include_in_schema=False,
)


async def signed_principal(
    request: Request,
    sandbox: SandboxId,
    path: FilePath,
    session: SessionDep,
    box: BoxDep,
    signature: Annotated[str, Query(max_length=128)],
    expires: Annotated[int, Query(ge=0, description="Unix seconds; 0: never")],
) -> Principal:
    """The caller a signed URL stands for (this sandbox, this operation only)."""
    return await file_urls.signed_principal(
        session,
        box,
        sandbox,
        method=request.method,
        path=path,
        expires=expires,
        signature=signature,
    )


SignedPrincipal = Annotated[Principal, Depends(signed_principal)]


class DaytonaUploadedFile(BaseModel):
    name: str
    path: str
    type: str = "file"


@router.get("/sandbox/{sandboxIdOrName}/signing-key")
async def get_signing_key(
    sandbox: SandboxIdOrName, session: SessionDep, principal: DaytonaPrincipal, box: BoxDep
) -> str:
    """The sandbox's key for signing file URLs (made on first request)."""
    return await file_urls.signing_key(session, box, principal, sandbox)


@router.post("/sandbox/{sandboxIdOrName}/signing-key/rotate")
async def rotate_signing_key(
    sandbox: SandboxIdOrName, session: SessionDep, principal: DaytonaPrincipal, box: BoxDep
) -> str:
    """A new key: every URL signed with the previous one is refused from now on."""
    return await file_urls.rotate_key(session, box, principal, sandbox)


async def _download(toolbox: InsideDep, principal: Principal, sandbox: str, path: str) -> Response:
    with file_errors():
        info, chunks = await files.download(toolbox, principal, sandbox, path)
    headers = {
        "Content-Length": str(info.size),
        "Content-Disposition": f"attachment; filename*=utf-8''{quote(info.name)}",
    }
    return ClosingStreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


@signed.get("/files/download", response_class=Response)
async def signed_download(
    sandbox: SandboxId, path: FilePath, principal: SignedPrincipal, toolbox: InsideDep
) -> Response:
    """A file's bytes through a signed URL (no API key)."""
    return await _download(toolbox, principal, sandbox, path)


async def _upload(
    request: Request, toolbox: InsideDep, principal: Principal, sandbox: str, path: str
) -> DaytonaUploadedFile:
    """Multipart (field `file`) or the raw body; parents are made, a file replaced."""
    kind = request.headers.get("content-type", "")
    with file_errors():
        if kind.startswith("multipart/form-data"):
            async with request.form(max_files=1, max_fields=10) as form:
                part = form.get("file")
                if not isinstance(part, UploadFile):
                    raise InvalidRequest("the form has no `file` part")
                info = await files.upload(
                    toolbox, principal, sandbox, path, _chunks(part), part.size or 0
                )
        else:
            length = request.headers.get("content-length", "")
            if not length.isdigit():
                raise InvalidRequest("a raw upload needs a Content-Length")
            info = await files.upload(
                toolbox, principal, sandbox, path, request.stream(), int(length)
            )
    return DaytonaUploadedFile(name=info.name, path=info.path)


async def _chunks(part: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await part.read(64 * 1024):
        yield chunk


@signed.post("/files/upload-v2")
async def signed_upload(
    request: Request,
    sandbox: SandboxId,
    path: FilePath,
    principal: SignedPrincipal,
    toolbox: InsideDep,
) -> DaytonaUploadedFile:
    """Upload one file through a signed URL (no API key)."""
    return await _upload(request, toolbox, principal, sandbox, path)


router.include_router(signed)


@router.post("/toolbox/{sandboxId}/files/upload-v2", tags=["daytona-toolbox"])
async def upload_file(
    request: Request,
    sandbox: SandboxId,
    path: FilePath,
    principal: DaytonaPrincipal,
    toolbox: InsideDep,
) -> DaytonaUploadedFile:
    """Upload one file (multipart field `file`, or the raw body) to `path`."""
    return await _upload(request, toolbox, principal, sandbox, path)
