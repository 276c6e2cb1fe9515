"""The multipart bodies of Daytona's bulk file transfer. Uploads pair
`files[i].path` fields with `files[i].file` parts; downloads answer one part per
requested path, `file` (its bytes, streamed) or `error` (JSON), each naming the path
exactly as requested (the SDK matches parts to requests by that name)."""

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

from starlette.datastructures import FormData, UploadFile

from sandbay.api.sse import ClosingStreamingResponse
from sandbay.domain.errors import SandbayError
from sandbay.domain.files import FileInfo

BOUNDARY = "DAYTONA-FILE-BOUNDARY"
_INDEX = re.compile(r"^files\[(?P<index>[^\]]+)\]\.(?P<kind>path|file)$")
_ERROR_CODES = {400: "INVALID_FILE_PATH", 403: "FILE_ACCESS_DENIED", 404: "FILE_NOT_FOUND"}
Opener = Callable[[str], Awaitable[tuple[FileInfo, AsyncIterator[bytes]]]]


def file_parts(form: FormData) -> tuple[list[tuple[str, UploadFile]], list[str]]:
    """(destination, file) pairs in the form's order, and the parts that lack one."""
    paths: dict[str, str] = {}
    uploads: list[tuple[str, UploadFile]] = []
    problems: list[str] = []
    for name, value in form.multi_items():
        match = _INDEX.match(name)
        if match is None:
            continue
        index = match.group("index")
        if match.group("kind") == "path" and isinstance(value, str) and value.strip():
            paths[index] = value.strip()
        elif match.group("kind") == "file" and isinstance(value, UploadFile):
            if index in paths:
                uploads.append((paths[index], value))
            else:
                problems.append(f"file[{index}]: missing .path metadata")
    return uploads, problems


def _disposition(field: str, path: str) -> str:
    plain = path.encode("latin-1", "replace").decode("latin-1").replace("\\", "\\\\")
    plain = plain.replace('"', '\\"')
    return f'form-data; name="{field}"; filename="{plain}"; filename*=utf-8\'\'{quote(path)}'


def _head(first: bool, headers: dict[str, str]) -> bytes:
    lines = [("" if first else "\r\n") + f"--{BOUNDARY}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _error_part(first: bool, path: str, exc: SandbayError) -> bytes:
    payload = {
        "message": exc.message,
        "statusCode": exc.status_code,
        "code": _ERROR_CODES.get(exc.status_code, "FILE_READ_FAILED"),
        "source": "DAYTONA_DAEMON",
    }
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Content-Disposition": _disposition("error", path),
    }
    return _head(first, headers) + json.dumps(payload).encode()


async def _stream(paths: list[str], opener: Opener) -> AsyncIterator[bytes]:
    for position, path in enumerate(paths):
        first = position == 0
        try:
            info, chunks = await opener(path)
        except SandbayError as exc:
            yield _error_part(first, path, exc)
            continue
        yield _head(
            first,
            {
                "Content-Type": "application/octet-stream",
                "Content-Disposition": _disposition("file", path),
                "Content-Length": str(info.size),
            },
        )
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def download_response(paths: list[str], opener: Opener) -> ClosingStreamingResponse:
    """The streamed answer to a bulk download; the file being sent is closed if the
    client goes away."""
    media_type = f"multipart/form-data; boundary={BOUNDARY}"
    return ClosingStreamingResponse(_stream(paths, opener), media_type=media_type)
