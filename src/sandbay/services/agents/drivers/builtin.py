"""sandbay's built-in agent: a small tool-using loop over any OpenAI-compatible chat
completions endpoint (streamed, with httpx from the server), whose tools act inside
the environment through the existing exec and files services: run a command, read,
write and list files. A team with a local model needs no vendor CLI."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbay.domain.agents import AgentRunStatus
from sandbay.domain.errors import SandbayError
from sandbay.domain.exec import ExecRequest
from sandbay.domain.files import normalize_path
from sandbay.domain.keys import Principal
from sandbay.services.agents.providers import Credentials
from sandbay.services.agents.runs import Emit, Outcome, close_source
from sandbay.services.inside import exec as exec_service
from sandbay.services.inside import files as files_service
from sandbay.services.inside.service import InsideService

MAX_STEPS = 25
MAX_READ_BYTES = 256 * 1024
MAX_TOOL_OUTPUT = 16 * 1024
COMMAND_TIMEOUT_S = 600.0
SYSTEM_PROMPT = (
    "You are a software agent working inside a sandboxed Linux environment. Your working "
    "directory is {cwd}. Use the tools to look at and change files and to run commands; "
    "relative paths are taken from the working directory. When the task is done, answer "
    "with a short summary of what you did."
)


def _function(name: str, description: str, props: dict[str, Any], required: list[str]) -> Any:
    parameters = {"type": "object", "properties": props, "required": required}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


TOOLS = [
    _function(
        "run_command",
        "Run a shell command (bash -lc) in the working directory; returns exit code and output.",
        {"command": {"type": "string"}},
        ["command"],
    ),
    _function("read_file", "Read a text file.", {"path": {"type": "string"}}, ["path"]),
    _function(
        "write_file",
        "Create or overwrite a file with the given content (parents are created).",
        {"path": {"type": "string"}, "content": {"type": "string"}},
        ["path", "content"],
    ),
    _function("list_files", "List a directory.", {"path": {"type": "string", "default": "."}}, []),
]


class ModelFailure(Exception):
    """The model endpoint refused or broke the conversation."""


@dataclass
class Turn:
    """One assistant turn read from a chat-completions stream."""

    text: str = ""
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish: str | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            self.text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(
                    int(call.get("index", 0)), {"id": "", "name": "", "arguments": ""}
                )
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            self.finish = choice.get("finish_reason") or self.finish

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": c["id"] or f"call_{i}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"] or "{}"},
                }
                for i, c in sorted(self.calls.items())
            ]
        return message


async def _sse_data(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            yield json.loads(payload)
        except ValueError:
            continue


@dataclass
class BuiltinDriver:
    inside: InsideService
    principal: Principal
    environment_id: str
    model: str
    creds: Credentials
    cwd: str
    prompt: str
    client: httpx.AsyncClient

    async def run(self, emit: Emit) -> Outcome:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT.format(cwd=self.cwd)},
            {"role": "user", "content": self.prompt},
        ]
        for _ in range(MAX_STEPS):
            try:
                turn = await self._complete(messages)
            except (ModelFailure, httpx.HTTPError) as exc:
                return Outcome(AgentRunStatus.FAILED, error=f"model endpoint: {exc}")
            if turn.text:
                await emit("message", {"role": "assistant", "text": turn.text})
            if not turn.calls:
                return Outcome(AgentRunStatus.COMPLETED, text=turn.text, exit_code=0)
            messages.append(turn.message())
            for call in turn.message()["tool_calls"]:
                messages.append(await self._call(call, emit))
        return Outcome(AgentRunStatus.FAILED, error=f"no final answer after {MAX_STEPS} steps")

    async def _complete(self, messages: list[dict[str, Any]]) -> Turn:
        body = {"model": self.model, "messages": messages, "tools": TOOLS, "stream": True}
        headers = {"Authorization": f"Bearer {self.creds.api_key}"}
        url = f"{self.creds.base_url}/chat/completions"
        turn = Turn()
        async with self.client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code >= 400:
                detail = (await response.aread())[:500].decode(errors="replace")
                raise ModelFailure(f"HTTP {response.status_code}: {detail}")
            async for chunk in _sse_data(response):
                turn.add(chunk)
        return turn

    async def _call(self, call: dict[str, Any], emit: Emit) -> dict[str, Any]:
        name = call["function"]["name"]
        try:
            arguments = json.loads(call["function"]["arguments"] or "{}")
        except ValueError:
            arguments = {}
        await emit("tool_use", {"id": call["id"], "name": name, "input": arguments})
        try:
            output, is_error = await self._tool(name, arguments), False
        except SandbayError as exc:
            output, is_error = f"error: {exc.message}", True
        except (KeyError, TypeError, ValueError) as exc:
            output, is_error = f"error: bad arguments for {name}: {exc}", True
        output = output[:MAX_TOOL_OUTPUT]
        await emit(
            "tool_result", {"tool_use_id": call["id"], "output": output, "is_error": is_error}
        )
        return {"role": "tool", "tool_call_id": call["id"], "content": output}

    def _path(
        self, arguments: dict[str, Any], key: str = "path", default: str | None = None
    ) -> str:
        value = arguments.get(key, default)
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string")
        return normalize_path(value, base=self.cwd)

    async def _tool(self, name: str, arguments: dict[str, Any]) -> str:
        env = self.environment_id
        if name == "run_command":
            request = ExecRequest(
                command=["bash", "-lc", str(arguments["command"])],
                cwd=self.cwd,
                timeout=COMMAND_TIMEOUT_S,
            )
            result = await exec_service.run_command(self.inside, self.principal, env, request)
            return f"exit code {result.exit_code}\n{result.stdout}{result.stderr}"
        if name == "read_file":
            _info, chunks = await files_service.download(
                self.inside, self.principal, env, self._path(arguments)
            )
            data = bytearray()
            try:
                async for chunk in chunks:
                    data += chunk
                    if len(data) >= MAX_READ_BYTES:
                        break
            finally:
                await close_source(chunks)
            return data[:MAX_READ_BYTES].decode(errors="replace")
        if name == "write_file":
            content = str(arguments["content"]).encode()

            async def body() -> AsyncIterator[bytes]:
                yield content

            info = await files_service.upload(
                self.inside, self.principal, env, self._path(arguments), body(), len(content)
            )
            return f"wrote {info.size} bytes to {info.path}"
        if name == "list_files":
            listing = await files_service.list_dir(
                self.inside, self.principal, env, self._path(arguments, default="."), limit=500
            )
            return "\n".join(f"{e.name}/" if e.is_dir else e.name for e in listing.data)
        raise ValueError(f"unknown tool {name!r}")
