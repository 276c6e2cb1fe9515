"""Files inside an environment through its agent: contents stream both ways over
HTTP (an upload lands whole or not at all), and every operation runs inside the
environment with the user's own filesystem identity, so paths, symlinks and
permissions resolve exactly as they would for a process of that user."""

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sandbay.domain.errors import (
    InvalidRequest,
    NotFound,
    PathDenied,
    PathNotFound,
    PermissionDenied,
)
from sandbay.domain.files import ContentMatch, FileInfo, FileType, ReplaceOutcome
from sandbay.runtime.envd.channel import Channel

_TYPES = {t.value: t for t in FileType}


def file_info(raw: dict[str, Any]) -> FileInfo:
    """A file entry as the agent gives it."""
    kind = _TYPES.get(str(raw.get("type")), FileType.OTHER)
    return FileInfo(
        name=str(raw.get("name", "")),
        path=str(raw.get("path", "")),
        type=kind,
        is_dir=kind is FileType.DIRECTORY,
        size=int(raw.get("size") or 0),
        mode=str(raw.get("mode") or "0000"),
        modified_at=datetime.fromtimestamp(float(raw.get("mtime") or 0), UTC),
        owner=raw.get("owner"),
        group=raw.get("group"),
        link_target=raw.get("link_target") or None,
    )


@contextmanager
def path_errors() -> Iterator[None]:
    """The agent's 404 and 403 are about a path (the environment answered), so they
    become the path's own errors."""
    try:
        yield
    except (PathNotFound, PathDenied):
        raise
    except NotFound as exc:
        raise PathNotFound(exc.message) from exc
    except PermissionDenied as exc:
        raise PathDenied(exc.message) from exc


class _PathChannel:
    """The channel, with the agent's path errors named as such."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def call(self, environment_id: str, method: str, path: str, **kwargs: Any) -> Any:
        with path_errors():
            return await self._channel.call(environment_id, method, path, **kwargs)

    async def request(self, environment_id: str, method: str, path: str, **kwargs: Any) -> Any:
        with path_errors():
            return await self._channel.request(environment_id, method, path, **kwargs)


class EnvdFiles:
    """`FileSystem` through the environment's agent."""

    def __init__(self, channel: Channel) -> None:
        self._channel = _PathChannel(channel)

    async def stat(self, environment_id: str, path: str) -> FileInfo:
        raw = await self._channel.call(
            environment_id, "GET", "/v1/files/stat", params={"path": path}
        )
        return file_info(raw)

    async def read(self, environment_id: str, path: str) -> tuple[FileInfo, AsyncIterator[bytes]]:
        response = await self._channel.request(
            environment_id, "GET", "/v1/files/content", params={"path": path}
        )
        try:
            info = file_info(json.loads(response.headers.get("x-sandbay-stat", "{}")))
        except ValueError:
            response.close()
            raise
        return info, response.body()

    async def write(
        self,
        environment_id: str,
        path: str,
        chunks: AsyncIterator[bytes],
        size: int,
        *,
        user: str | None,
    ) -> FileInfo:
        if path == "/":
            raise InvalidRequest("cannot write to /")

        async def exact() -> AsyncIterator[bytes]:
            sent = 0
            async for chunk in chunks:
                sent += len(chunk)
                if sent > size:
                    raise InvalidRequest(f"the body is longer than the {size} bytes announced")
                yield chunk
            if sent != size:
                raise InvalidRequest(f"the body ended after {sent} of {size} bytes")

        response = await self._channel.request(
            environment_id,
            "PUT",
            "/v1/files/content",
            params={"path": path, "user": user or ""},
            chunks=exact(),
            length=size,
        )
        return file_info(await response.json())

    async def _entries(
        self, environment_id: str, path: str, params: dict[str, Any]
    ) -> tuple[list[FileInfo], bool]:
        raw = await self._channel.call(environment_id, "GET", path, params=params)
        return [file_info(e) for e in raw.get("entries") or []], bool(raw.get("truncated"))

    async def list_dir(
        self, environment_id: str, path: str, *, user: str | None, limit: int, depth: int = 1
    ) -> tuple[list[FileInfo], bool]:
        params = {"path": path, "depth": depth, "limit": limit, "user": user or ""}
        entries, truncated = await self._entries(environment_id, "/v1/files/list", params)
        if depth == 1:
            entries.sort(key=lambda e: (not e.is_dir, e.name))
        return entries, truncated

    async def find(
        self, environment_id: str, root: str, pattern: str, *, user: str | None, limit: int
    ) -> tuple[list[FileInfo], bool]:
        params = {"path": root, "pattern": pattern, "limit": limit, "user": user or ""}
        return await self._entries(environment_id, "/v1/files/find", params)

    async def mkdir(self, environment_id: str, path: str, *, mode: str, user: str | None) -> None:
        body = {"path": path, "mode": mode, "parents": True, "user": user or ""}
        await self._channel.call(environment_id, "POST", "/v1/files/mkdir", json_body=body)

    async def move(
        self, environment_id: str, source: str, destination: str, *, user: str | None
    ) -> None:
        body = {
            "source": source,
            "destination": destination,
            "overwrite": True,
            "user": user or "",
        }
        await self._channel.call(environment_id, "POST", "/v1/files/move", json_body=body)

    async def remove(
        self, environment_id: str, path: str, *, recursive: bool, user: str | None
    ) -> None:
        params = {"path": path, "recursive": recursive, "user": user or ""}
        await self._channel.call(environment_id, "DELETE", "/v1/files", params=params)

    async def search_content(
        self, environment_id: str, root: str, text: str, *, user: str | None, limit: int
    ) -> tuple[list[ContentMatch], bool]:
        body = {"path": root, "pattern": text, "limit": limit, "user": user or ""}
        raw = await self._channel.call(environment_id, "POST", "/v1/files/search", json_body=body)
        matches = [ContentMatch.model_validate(m) for m in raw.get("matches") or []]
        return matches, bool(raw.get("truncated"))

    async def replace(
        self,
        environment_id: str,
        paths: list[str],
        pattern: str,
        value: str,
        *,
        user: str | None,
    ) -> list[ReplaceOutcome]:
        body = {"files": paths, "pattern": pattern, "new_value": value, "user": user or ""}
        raw = await self._channel.call(environment_id, "POST", "/v1/files/replace", json_body=body)
        return [ReplaceOutcome.model_validate(r) for r in raw.get("results") or []]

    async def set_permissions(
        self,
        environment_id: str,
        path: str,
        *,
        mode: str | None,
        owner: str | None,
        group: str | None,
        user: str | None,
    ) -> FileInfo:
        body = {
            "path": path,
            "mode": mode,
            "owner": owner or "",
            "group": group or "",
            "user": user or "",
        }
        raw = await self._channel.call(
            environment_id, "POST", "/v1/files/permissions", json_body=body
        )
        return file_info(raw)
