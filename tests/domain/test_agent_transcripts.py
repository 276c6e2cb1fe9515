"""The CLIs' JSON lines as agent events, redaction and clipping (pure)."""

from sandbay.domain.agent_transcripts import (
    REDACTED,
    CodexTranscript,
    Redactor,
    claude_events,
    clip,
    parse_line,
)


def test_claude_lines_become_messages_tool_uses_results_and_a_final() -> None:
    tool = {"type": "tool_use", "id": "t1", "name": "Write", "input": {"file_path": "/a"}}
    assert claude_events(
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "ok"}, tool]}}
    ) == [
        ("message", {"role": "assistant", "text": "ok"}),
        ("tool_use", {"id": "t1", "name": "Write", "input": {"file_path": "/a"}}),
    ]
    result = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [{"type": "text", "text": "x"}],
    }
    assert claude_events({"type": "user", "message": {"content": [result]}}) == [
        ("tool_result", {"tool_use_id": "t1", "output": "x", "is_error": False})
    ]
    [(kind, final)] = claude_events(
        {"type": "result", "subtype": "error_max_turns", "is_error": True, "result": "stopped"}
    )
    assert kind == "final" and final["status"] == "failed" and final["text"] == "stopped"
    assert claude_events({"type": "stream_event"}) == []


def test_codex_items_are_announced_once_and_failures_are_kept() -> None:
    codex = CodexTranscript()
    item = {"id": "i1", "type": "command_execution", "command": "ls"}
    assert codex.events({"type": "item.started", "item": item}) == [
        ("tool_use", {"id": "i1", "name": "command_execution", "input": {"command": "ls"}})
    ]
    done = {**item, "aggregated_output": "a\n", "exit_code": 2}
    assert codex.events({"type": "item.completed", "item": done}) == [
        ("tool_result", {"tool_use_id": "i1", "output": "a\n", "is_error": True, "exit_code": 2})
    ]
    message = {"id": "i2", "type": "agent_message", "text": "bye"}
    assert codex.events({"type": "item.completed", "item": message})[0][1]["text"] == "bye"
    assert codex.final(0) == ("final", {"status": "completed", "text": "bye", "usage": None})
    assert codex.events({"type": "turn.failed", "error": {"message": "quota"}})[0][0] == "error"
    assert codex.final(1)[1]["status"] == "failed"


def test_redactor_and_clip_and_parse_line() -> None:
    redactor = Redactor(("s3cret-value",))
    assert redactor.data({"a": ["x s3cret-value y"], "b": 1}) == {"a": [f"x {REDACTED} y"], "b": 1}
    assert Redactor().data("s3cret-value") == "s3cret-value"
    clipped = clip({"text": "x" * 20}, limit=5)["text"]
    assert clipped.startswith("xxxxx…") and "15 more" in clipped
    assert parse_line('{"type": "x"}') == {"type": "x"}
    assert parse_line("not json") is None and parse_line("[1]") is None
