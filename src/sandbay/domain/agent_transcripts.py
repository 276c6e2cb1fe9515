"""The agent CLIs' JSON-lines output (`claude -p --output-format stream-json`,
`codex exec --json`) turned into sandbay's agent events, and the helpers every run
applies to what it records: output clipping and credential redaction. Pure."""

import json
from dataclasses import dataclass, field
from typing import Any

#: (event type, data). `final` is internal: the run turns it into its `result` event.
Emitted = tuple[str, dict[str, Any]]

MAX_TEXT_CHARS = 16 * 1024
REDACTED = "[REDACTED]"


def clip(value: Any, limit: int = MAX_TEXT_CHARS) -> Any:
    """Long strings anywhere in an event's data are cut (the transcript stays small)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"… [{len(value) - limit} more]"
    if isinstance(value, dict):
        return {k: clip(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [clip(v, limit) for v in value[:200]]
    return value


@dataclass(frozen=True, slots=True)
class Redactor:
    """Replaces credentials wherever they appear in text an event or a log may carry."""

    secrets: tuple[str, ...] = ()

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret and secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def data(self, value: Any) -> Any:
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


def parse_line(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _text_of(content: Any) -> str:
    """A tool result's content: a string, or blocks whose text parts are joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b
        )
    return "" if content is None else json.dumps(content)


# ---- Claude Code ---------------------------------------------------------------------------


def _claude_assistant(message: dict[str, Any]) -> list[Emitted]:
    out: list[Emitted] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            out.append(("message", {"role": "assistant", "text": block["text"]}))
        elif kind == "thinking" and block.get("thinking"):
            out.append(("reasoning", {"text": block["thinking"]}))
        elif kind == "tool_use":
            data = {"id": block.get("id"), "name": block.get("name"), "input": block.get("input")}
            out.append(("tool_use", data))
    return out


def _claude_user(message: dict[str, Any]) -> list[Emitted]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [
        (
            "tool_result",
            {
                "tool_use_id": b.get("tool_use_id"),
                "output": _text_of(b.get("content")),
                "is_error": bool(b.get("is_error")),
            },
        )
        for b in content
        if isinstance(b, dict) and b.get("type") == "tool_result"
    ]


def claude_events(line: dict[str, Any]) -> list[Emitted]:
    """Events of one line of `claude -p --output-format stream-json --verbose`."""
    kind = line.get("type")
    if kind == "system" and line.get("subtype") == "init":
        data = {"message": "session started", "session_id": line.get("session_id")}
        return [("status", {**data, "model": line.get("model")})]
    if kind == "assistant":
        return _claude_assistant(line.get("message") or {})
    if kind == "user":
        return _claude_user(line.get("message") or {})
    if kind == "result":
        failed = bool(line.get("is_error")) or line.get("subtype") != "success"
        final = {
            "status": "failed" if failed else "completed",
            "text": line.get("result"),
            "usage": line.get("usage"),
            "cost_usd": line.get("total_cost_usd"),
            "num_turns": line.get("num_turns"),
        }
        return [("final", final)]
    return []


# ---- Codex -------------------------------------------------------------------------------


@dataclass
class CodexTranscript:
    """`codex exec --json` lines: items start and complete; a tool use is reported
    once even when only its completion is seen."""

    announced: set[str] = field(default_factory=set)
    last_message: str | None = None
    failure: str | None = None
    usage: dict[str, Any] | None = None

    def _tool_use(self, item: dict[str, Any], name: str, arguments: Any) -> list[Emitted]:
        item_id = str(item.get("id"))
        if item_id in self.announced:
            return []
        self.announced.add(item_id)
        return [("tool_use", {"id": item_id, "name": name, "input": arguments})]

    def _tool(self, item: dict[str, Any], done: bool) -> list[Emitted]:
        kind = item.get("type")
        arguments: Any
        if kind == "command_execution":
            name, arguments = "command_execution", {"command": item.get("command")}
            output, is_error = item.get("aggregated_output", ""), item.get("exit_code") not in (0,)
        elif kind == "file_change":
            name, arguments = "file_change", {"changes": item.get("changes")}
            output, is_error = item.get("status", ""), item.get("status") == "failed"
        elif kind == "mcp_tool_call":
            name = f"{item.get('server')}.{item.get('tool')}"
            arguments = item.get("arguments")
            output = _text_of(item.get("result")) or str(item.get("error") or "")
            is_error = item.get("status") == "failed"
        else:  # web_search and whatever later versions add
            name, arguments, output, is_error = str(kind), {"query": item.get("query")}, "", False
        out = self._tool_use(item, name, arguments)
        if done:
            result = {"tool_use_id": str(item.get("id")), "output": output, "is_error": is_error}
            if kind == "command_execution":
                result["exit_code"] = item.get("exit_code")
            out.append(("tool_result", result))
        return out

    def _item(self, item: dict[str, Any], done: bool) -> list[Emitted]:
        kind = item.get("type")
        if kind == "agent_message":
            if not done:
                return []
            self.last_message = str(item.get("text") or "")
            return [("message", {"role": "assistant", "text": self.last_message})]
        if kind == "reasoning":
            return [("reasoning", {"text": item.get("text")})] if done else []
        if kind == "todo_list":
            return [("status", {"message": "plan", "items": item.get("items")})] if done else []
        if kind == "error":
            return [("status", {"level": "warning", "message": item.get("message")})]
        return self._tool(item, done)

    def events(self, line: dict[str, Any]) -> list[Emitted]:
        kind = line.get("type")
        if kind == "thread.started":
            return [("status", {"message": "thread started", "thread_id": line.get("thread_id")})]
        if kind in ("item.started", "item.updated", "item.completed"):
            item = line.get("item")
            return self._item(item, kind == "item.completed") if isinstance(item, dict) else []
        if kind == "turn.completed":
            self.usage = line.get("usage")
            return []
        if kind in ("turn.failed", "error"):
            error = line.get("error")
            message = error.get("message") if isinstance(error, dict) else line.get("message")
            self.failure = str(message or "the agent failed")
            return [("error", {"type": "agent_error", "message": self.failure})]
        return []

    def final(self, exit_code: int | None) -> Emitted:
        failed = self.failure is not None or exit_code != 0
        data = {"status": "failed" if failed else "completed", "text": self.last_message}
        return ("final", {**data, "usage": self.usage})
