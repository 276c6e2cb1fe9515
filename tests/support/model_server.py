"""A scripted model server for agent tests: the only test double of the agent suite,
because a paid LLM API cannot run here. It speaks the real wire protocols the agents
use (Anthropic Messages, OpenAI chat completions and the OpenAI Responses API, each
streamed as server-sent events or answered as JSON) and is scripted, not smart: in
`tool` mode its first answer to a request that offers tools is a call of a tool that
writes `--path` with `--content`; once the conversation carries that tool's result it
answers with the `--final` text. In `text` mode it always answers the final text.

Standard library only: tests copy it into an environment and run it there with the
image's python3, listening on 127.0.0.1 inside the container. Every request is
appended to `--log` (path, credential header, model, tool names, decision)."""

import argparse
import json
import shlex
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ARGS = argparse.Namespace()
LOCK = threading.Lock()

#: Tool names tried in order, per family: how each agent's file-writing or shell tool is called.
WRITE_TOOLS = ("Write", "write_file", "write")
SHELL_TOOLS = ("shell_command", "exec_command", "shell", "Bash", "run_command", "exec", "bash")


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


# ---- scripting ---------------------------------------------------------------------------


def _tool_name(tool: dict[str, Any]) -> str:
    if "function" in tool and isinstance(tool["function"], dict):
        return str(tool["function"].get("name", ""))
    return str(tool.get("name", ""))


def _tool_params(tool: dict[str, Any]) -> dict[str, Any]:
    if "function" in tool and isinstance(tool["function"], dict):
        schema = tool["function"].get("parameters") or {}
    else:
        schema = tool.get("input_schema") or tool.get("parameters") or {}
    props = schema.get("properties") if isinstance(schema, dict) else None
    return props if isinstance(props, dict) else {}


def _write_args(params: dict[str, Any]) -> dict[str, Any] | None:
    path_key = next((k for k in ("file_path", "path", "filePath") if k in params), None)
    body_key = next((k for k in ("content", "contents", "text") if k in params), None)
    if path_key is None or body_key is None:
        return None
    return {path_key: ARGS.path, body_key: ARGS.content}


def _shell_args(params: dict[str, Any]) -> dict[str, Any] | None:
    script = f"printf %s {shlex.quote(ARGS.content)} > {shlex.quote(ARGS.path)}"
    for key in ("command", "cmd"):
        if key in params:
            if params[key].get("type") == "array":
                return {key: ["bash", "-lc", script]}
            return {key: script}
    return None


def choose_tool(tools: list[dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The tool call that writes the scripted file, with arguments shaped by its schema."""
    by_name = {_tool_name(t): t for t in tools if isinstance(t, dict)}
    for name in WRITE_TOOLS:
        if name in by_name and (args := _write_args(_tool_params(by_name[name]))):
            return name, args
    for name in SHELL_TOOLS:
        if name in by_name and (args := _shell_args(_tool_params(by_name[name]))):
            return name, args
    return None


def has_tool_result(body: dict[str, Any]) -> bool:
    """Whether the conversation already carries a tool's result (any of the three APIs)."""
    for message in body.get("messages") or []:
        if message.get("role") == "tool":
            return True
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        ):
            return True
    items = body.get("input")
    if isinstance(items, list):
        return any(
            isinstance(i, dict) and str(i.get("type", "")).endswith("_output") for i in items
        )
    return False


def decide(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    tools = body.get("tools") or []
    if ARGS.mode != "tool" or not tools or has_tool_result(body):
        return None
    return choose_tool(tools)


def record(handler: "Handler", body: dict[str, Any], decision: object) -> None:
    headers = handler.headers
    entry = {
        "time": time.time(),
        "path": handler.path,
        "x_api_key": headers.get("x-api-key"),
        "authorization": headers.get("authorization"),
        "model": body.get("model"),
        "stream": bool(body.get("stream")),
        "tools": [_tool_name(t) for t in body.get("tools") or [] if isinstance(t, dict)],
        "decision": decision,
    }
    with LOCK, open(ARGS.log, "a") as f:
        f.write(json.dumps(entry) + "\n")


# ---- wire formats ---------------------------------------------------------------------------


def anthropic_events(body: dict[str, Any], call: tuple[str, dict[str, Any]] | None) -> list[Any]:
    model = body.get("model", "scripted")
    usage = {"input_tokens": 12, "output_tokens": 0}
    message = {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    events: list[Any] = [("message_start", {"type": "message_start", "message": message})]
    if call is None:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": ARGS.final}
        stop = "end_turn"
    else:
        block = {"type": "tool_use", "id": new_id("toolu_"), "name": call[0], "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(call[1])}
        stop = "tool_use"
    events += [
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        ),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 9},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def anthropic_json(body: dict[str, Any], call: tuple[str, dict[str, Any]] | None) -> dict[str, Any]:
    if call is None:
        content: list[dict[str, Any]] = [{"type": "text", "text": ARGS.final}]
    else:
        content = [{"type": "tool_use", "id": new_id("toolu_"), "name": call[0], "input": call[1]}]
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "scripted"),
        "content": content,
        "stop_reason": "end_turn" if call is None else "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 9},
    }


def chat_chunks(body: dict[str, Any], call: tuple[str, dict[str, Any]] | None) -> list[Any]:
    base = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    if call is None:
        chunks += [chunk({"content": ARGS.final}), chunk({}, "stop")]
    else:
        head = {"index": 0, "id": new_id("call_"), "type": "function"}
        chunks += [
            chunk({"tool_calls": [{**head, "function": {"name": call[0], "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": json.dumps(call[1])}}]}),
            chunk({}, "tool_calls"),
        ]
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks


def chat_json(body: dict[str, Any], call: tuple[str, dict[str, Any]] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": ARGS.final if call is None else None}
    if call is not None:
        message["tool_calls"] = [
            {
                "id": new_id("call_"),
                "type": "function",
                "function": {"name": call[0], "arguments": json.dumps(call[1])},
            }
        ]
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "stop" if call is None else "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }


def responses_item(call: tuple[str, dict[str, Any]] | None) -> dict[str, Any]:
    if call is None:
        return {
            "type": "message",
            "id": new_id("msg_"),
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": ARGS.final, "annotations": []}],
        }
    return {
        "type": "function_call",
        "id": new_id("fc_"),
        "call_id": new_id("call_"),
        "name": call[0],
        "arguments": json.dumps(call[1]),
        "status": "completed",
    }


def responses_object(body: dict[str, Any], output: list[Any], status: str) -> dict[str, Any]:
    return {
        "id": ARGS.response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": body.get("model", "scripted"),
        "output": output,
        "usage": {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 9,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 21,
        },
    }


def responses_events(body: dict[str, Any], call: tuple[str, dict[str, Any]] | None) -> list[Any]:
    ARGS.response_id = new_id("resp_")
    item = responses_item(call)
    started = {**item, "status": "in_progress"}
    events: list[Any] = [
        ("response.created", {"response": responses_object(body, [], "in_progress")}),
        ("response.in_progress", {"response": responses_object(body, [], "in_progress")}),
    ]
    if call is None:
        started["content"] = []
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        events += [
            ("response.output_item.added", {"output_index": 0, "item": started}),
            ("response.content_part.added", {**where, "part": part}),
            ("response.output_text.delta", {**where, "delta": ARGS.final}),
            ("response.output_text.done", {**where, "text": ARGS.final}),
            ("response.content_part.done", {**where, "part": item["content"][0]}),
        ]
    else:
        started["arguments"] = ""
        where = {"item_id": item["id"], "output_index": 0}
        events += [
            ("response.output_item.added", {"output_index": 0, "item": started}),
            ("response.function_call_arguments.delta", {**where, "delta": item["arguments"]}),
            ("response.function_call_arguments.done", {**where, "arguments": item["arguments"]}),
        ]
    events += [
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": responses_object(body, [item], "completed")}),
    ]
    return [
        (name, {"type": name, "sequence_number": n, **data})
        for n, (name, data) in enumerate(events)
    ]


# ---- HTTP ----------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in events:
            if isinstance(event, tuple):
                text = f"event: {event[0]}\ndata: {json.dumps(event[1])}\n\n"
            else:
                text = f"data: {json.dumps(event)}\n\n"
            self.wfile.write(text.encode())
            self.wfile.flush()
        self.close_connection = True

    def do_GET(self) -> None:
        models = [
            {"id": m, "object": "model", "created": 0, "owned_by": "sandbay"} for m in ARGS.models
        ]
        self._json(200, {"object": "list", "data": models})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "invalid JSON"}})
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/count_tokens"):
            record(self, body, "count_tokens")
            self._json(200, {"input_tokens": 12})
            return
        call = decide(body)
        record(self, body, list(call) if call else "final")
        time.sleep(ARGS.delay)  # a slow model: lets tests cancel or time out a run
        stream = bool(body.get("stream"))
        if path.endswith("/messages"):
            self._sse(anthropic_events(body, call)) if stream else self._json(
                200, anthropic_json(body, call)
            )
        elif path.endswith("/chat/completions"):
            if stream:
                self._sse([*chat_chunks(body, call)])
                return
            self._json(200, chat_json(body, call))
        elif path.endswith("/responses"):
            events = responses_events(body, call)
            self._sse(events) if stream else self._json(200, events[-1][1]["response"])
        else:
            self._json(404, {"error": {"message": f"no route {path}"}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mode", choices=["tool", "text"], default="tool")
    parser.add_argument("--path", default="/workspace/agent-output.txt")
    parser.add_argument("--content", default="written by the agent\n")
    parser.add_argument("--final", default="Done: the file is written.")
    parser.add_argument("--models", nargs="*", default=["scripted-model"])
    parser.add_argument("--log", default="/tmp/model-server.jsonl")
    parser.add_argument("--delay", type=float, default=0.0, help="Seconds before each answer")
    parser.parse_args(namespace=ARGS)
    ARGS.response_id = new_id("resp_")
    server = ThreadingHTTPServer((ARGS.host, ARGS.port), Handler)
    print(f"model server listening on {ARGS.host}:{ARGS.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
