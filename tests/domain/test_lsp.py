"""The pure parts of language servers: LSP framing read in pieces, answers of either
symbol shape read flat, completion answers of every form, and document paths."""

import pytest

from sandbay.domain.errors import InvalidRequest
from sandbay.domain.lsp import (
    FramingError,
    MessageReader,
    Symbol,
    completions_of,
    document_path,
    encode_message,
    file_uri,
    language_of,
    matches,
    symbols_of,
)


def test_messages_split_anywhere_are_read_whole_and_in_order() -> None:
    data = encode_message({"id": 1, "result": "é"}) + encode_message({"method": "x"})
    reader = MessageReader()
    read = [m for i in range(len(data)) for m in reader.feed(data[i : i + 1])]
    assert read == [{"id": 1, "result": "é"}, {"method": "x"}]


def test_output_that_is_not_framed_is_refused() -> None:
    with pytest.raises(FramingError):
        MessageReader().feed(b"Content-Type: x\r\n\r\n{}")
    with pytest.raises(FramingError):
        MessageReader().feed(b"no header at all " * 300)
    with pytest.raises(FramingError):
        MessageReader().feed(b"Content-Length: 2\r\n\r\n{]")


def test_flat_and_nested_symbols_read_the_same() -> None:
    span = {"start": {"line": 1, "character": 2}, "end": {"line": 3, "character": 0}}
    flat = [{"name": "A", "kind": 5, "location": {"uri": "file:///a.py", "range": span}}]
    nested = [
        {"name": "A", "kind": 5, "range": span, "selectionRange": span, "children": [
            {"name": "m", "kind": 6, "range": span, "selectionRange": span},
        ]},
        "junk",
        {"kind": 5},
    ]  # fmt: skip
    (a,) = symbols_of(flat)
    assert (a.name, a.kind, a.uri, a.range.start.line, a.range.start.character) == (
        "A", 5, "file:///a.py", 1, 2,
    )  # fmt: skip
    assert [(s.name, s.uri) for s in symbols_of(nested, "file:///b.py")] == [
        ("A", "file:///b.py"),
        ("m", "file:///b.py"),
    ]
    assert symbols_of(None) == []


def test_completion_answers_of_every_form() -> None:
    listed = completions_of({"isIncomplete": True, "items": [{"label": "x", "kind": 2}]})
    assert listed.is_incomplete and [i.label for i in listed.items] == ["x"]
    bare = completions_of([{"label": "y", "documentation": "plain"}, {"kind": 1}])
    assert not bare.is_incomplete
    assert [(i.label, i.documentation) for i in bare.items] == [
        ("y", {"kind": "plaintext", "value": "plain"})
    ]
    assert completions_of(None).items == []


def test_document_paths_are_taken_from_the_project() -> None:
    assert document_path("file:///workspace/p/a.py", "/workspace/p") == "/workspace/p/a.py"
    assert document_path("file://src/a.py", "/workspace/p") == "/workspace/p/src/a.py"
    assert document_path("a.py", "/workspace/p") == "/workspace/p/a.py"
    with pytest.raises(InvalidRequest):
        document_path("file://../x.py", "/workspace/p")
    with pytest.raises(InvalidRequest):
        document_path("https://example.com/a.py", "/workspace/p")
    assert file_uri("/workspace/my file.py") == "file:///workspace/my%20file.py"


def test_languages_and_search() -> None:
    assert language_of("python").argv == ("pylsp",)
    assert language_of("javascript").argv[0] == "typescript-language-server"
    with pytest.raises(InvalidRequest, match="unsupported language"):
        language_of("cobol")
    symbol = symbols_of([{"name": "HelperRegistry", "location": {"uri": "u"}}])[0]
    assert isinstance(symbol, Symbol)
    assert matches(symbol, "helperreg") and matches(symbol, "") and not matches(symbol, "zz")
