"""Language servers, the pure parts: which program serves which language, how a
document's path is read from the URI a client sends, LSP's Content-Length framing,
and its symbol and completion answers read into plain shapes (any server's answer,
flat `SymbolInformation` or nested `DocumentSymbol`, reads the same)."""

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sandbay.domain.errors import InvalidRequest
from sandbay.domain.files import normalize_path

#: The largest message a server may send (a completion list of a big module is a few MB).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_MAX_HEADER_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Language:
    """One language and the program that serves it (spoken to over stdin/stdout)."""

    id: str
    argv: tuple[str, ...]
    #: Globs of the language's source files (for a symbol search over a project).
    sources: tuple[str, ...]
    #: How to get the program, said when an image lacks it.
    remedy: str


_TS_REMEDY = (
    "Debian bookworm packages no TypeScript language server; use an image with "
    "`typescript-language-server` on its PATH (npm install -g typescript "
    "typescript-language-server)"
)
LANGUAGES: dict[str, Language] = {
    "python": Language(
        "python", ("pylsp",), ("*.py",), "install Debian's python3-pylsp in the image"
    ),
    "typescript": Language(
        "typescript",
        ("typescript-language-server", "--stdio"),
        ("*.ts", "*.tsx"),
        _TS_REMEDY,
    ),
    "javascript": Language(
        "javascript",
        ("typescript-language-server", "--stdio"),
        ("*.js", "*.jsx"),
        _TS_REMEDY,
    ),
}


def language_of(language_id: str) -> Language:
    language = LANGUAGES.get(language_id)
    if language is None:
        known = ", ".join(LANGUAGES)
        raise InvalidRequest(f"unsupported language: {language_id[:60]!r} (supported: {known})")
    return language


def project_path(path: str) -> str:
    """The project's directory: relative paths are taken from /workspace."""
    return normalize_path(path)


def document_path(uri: str, project: str) -> str:
    """The path a client's `file://…` URI names. Daytona's SDK writes `file://` and the
    path as given (unquoted), so `file://src/a.py` is relative to the project, not a
    host name, and the rest is taken literally."""
    rest = uri.removeprefix("file://")
    if rest == uri and "://" in uri:
        raise InvalidRequest(f"uri must be a file:// URI or a path: {uri[:80]!r}")
    return normalize_path(rest, base=project)


def file_uri(path: str) -> str:
    return "file://" + quote(path)


def encode_message(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class FramingError(Exception):
    """The server's output is not LSP's framing (it is broken or not a server)."""


class MessageReader:
    """LSP's framing read incrementally: feed bytes as they come, take whole messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._length: int | None = None

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        messages: list[dict[str, Any]] = []
        while True:
            if self._length is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > _MAX_HEADER_BYTES:
                        raise FramingError("a header longer than 4 KiB")
                    return messages
                self._length = _content_length(bytes(self._buffer[:end]))
                del self._buffer[: end + 4]
            if len(self._buffer) < self._length:
                return messages
            body = bytes(self._buffer[: self._length])
            del self._buffer[: self._length]
            self._length = None
            try:
                message = json.loads(body)
            except ValueError as exc:
                raise FramingError(f"a message that is not JSON: {exc}") from exc
            if isinstance(message, dict):
                messages.append(message)


def _content_length(header: bytes) -> int:
    for line in header.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                break
            if not 0 <= length <= MAX_MESSAGE_BYTES:
                raise FramingError(f"a message of {length} bytes")
            return length
    raise FramingError(f"a header without Content-Length: {header[:200]!r}")


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    character: int


@dataclass(frozen=True, slots=True)
class Range:
    start: Position
    end: Position


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    kind: int
    uri: str
    range: Range


@dataclass(frozen=True, slots=True)
class CompletionItem:
    label: str
    kind: int | None = None
    detail: str | None = None
    documentation: dict[str, Any] | None = None
    sort_text: str | None = None
    filter_text: str | None = None
    insert_text: str | None = None


@dataclass(frozen=True, slots=True)
class Completions:
    is_incomplete: bool
    items: list[CompletionItem] = field(default_factory=list)


def _position(value: Any) -> Position:
    value = value if isinstance(value, dict) else {}
    return Position(_int(value.get("line")), _int(value.get("character")))


def _range(value: Any) -> Range:
    value = value if isinstance(value, dict) else {}
    return Range(_position(value.get("start")), _position(value.get("end")))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def symbols_of(answer: Any, uri: str = "") -> list[Symbol]:
    """A documentSymbol or workspace/symbol answer, flat; nested `DocumentSymbol`s
    (which carry no URI) are given `uri`, their children listed after them."""
    symbols: list[Symbol] = []
    pending = list(answer) if isinstance(answer, list) else []
    while pending:
        item = pending.pop(0)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        kind = _int(item.get("kind"))
        location = item.get("location")
        if isinstance(location, dict):
            where = _str(location.get("uri")) or uri
            symbols.append(Symbol(item["name"], kind, where, _range(location.get("range"))))
        else:
            symbols.append(Symbol(item["name"], kind, uri, _range(item.get("selectionRange"))))
            children = item.get("children")
            if isinstance(children, list):
                pending[:0] = children
    return symbols


def completions_of(answer: Any) -> Completions:
    """A completion answer (a CompletionList, a bare list of items, or null)."""
    if isinstance(answer, dict):
        raw, incomplete = answer.get("items"), answer.get("isIncomplete") is True
    else:
        raw, incomplete = answer, False
    items = [_completion(i) for i in raw if isinstance(i, dict)] if isinstance(raw, list) else []
    return Completions(incomplete, [i for i in items if i is not None])


def _completion(item: dict[str, Any]) -> CompletionItem | None:
    label = _str(item.get("label"))
    if label is None:
        return None
    docs = item.get("documentation")
    if isinstance(docs, str):
        docs = {"kind": "plaintext", "value": docs}
    kind = item.get("kind")
    return CompletionItem(
        label=label,
        kind=kind if isinstance(kind, int) and not isinstance(kind, bool) else None,
        detail=_str(item.get("detail")),
        documentation=docs if isinstance(docs, dict) else None,
        sort_text=_str(item.get("sortText")),
        filter_text=_str(item.get("filterText")),
        insert_text=_str(item.get("insertText")),
    )


def matches(symbol: Symbol, query: str) -> bool:
    """A symbol search's test where the server has none: the name contains the
    query, ignoring case (an empty query matches everything)."""
    return query.lower() in symbol.name.lower()
