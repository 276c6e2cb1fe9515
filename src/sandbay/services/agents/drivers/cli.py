"""The vendor agent CLIs run inside the environment through the exec runtime: Claude
Code (`claude -p --output-format stream-json`) and Codex (`codex exec --json`). The
prompt goes on standard input; the model relay's URL and a credential of this run
only (never the provider's key: docs/model-relay.md) go into the agent process's
environment; their JSON lines become agent events."""

import json
from dataclasses import dataclass

from sandbay.domain.agent_transcripts import CodexTranscript, Emitted, claude_events, parse_line
from sandbay.domain.agents import AgentKind, AgentRunStatus
from sandbay.domain.exec import MAX_EXEC_TIMEOUT_S, ExecExitEvent, ExecOutputEvent, ExecRequest
from sandbay.domain.keys import Principal
from sandbay.services.agents.providers import Credentials
from sandbay.services.agents.runs import Emit, Outcome, close_source
from sandbay.services.inside import exec as exec_service
from sandbay.services.inside.service import InsideService

STDERR_TAIL = 8 * 1024
#: The CLIs must not call home from a sandbox (update checks, telemetry, error reports).
QUIET_ENV = {
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DO_NOT_TRACK": "1",
}
CODEX_KEY_VAR = "SANDBAY_OPENAI_API_KEY"


def claude_command(model: str, creds: Credentials) -> tuple[list[str], dict[str, str]]:
    argv = ["claude", "-p", "--output-format", "stream-json", "--verbose", "--model", model]
    # The environment is the sandbox: tools run without asking. IS_SANDBOX lets Claude
    # Code accept that as root, which environments run as by default.
    argv.append("--dangerously-skip-permissions")
    env = {
        **QUIET_ENV,
        "IS_SANDBOX": "1",
        "ANTHROPIC_API_KEY": creds.api_key,
        "ANTHROPIC_BASE_URL": creds.base_url,
    }
    return argv, env


def codex_command(model: str, creds: Credentials) -> tuple[list[str], dict[str, str]]:
    # A provider of our own, so the base URL is ours whatever the kind; Codex speaks the
    # Responses API (`wire_api = "responses"` is the only one it accepts).
    provider = (
        f'{{name="sandbay", base_url={json.dumps(creds.base_url)}, '
        f'env_key="{CODEX_KEY_VAR}", wire_api="responses"}}'
    )
    argv = [
        "codex", "exec", "--json", "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox", "--model", model,
        "-c", 'model_provider="sandbay"',
        "-c", f"model_providers.sandbay={provider}",
        "-c", "check_for_update_on_startup=false",
        "-c", "analytics.enabled=false",
        "-",
    ]  # fmt: skip
    return argv, {**QUIET_ENV, CODEX_KEY_VAR: creds.api_key}


@dataclass
class CliDriver:
    """Runs one CLI to completion and turns its output into events."""

    inside: InsideService
    principal: Principal  # the platform acting for the caller inside this environment
    environment_id: str
    agent: AgentKind
    model: str
    creds: Credentials
    cwd: str
    prompt: str
    timeout: float

    def _request(self) -> ExecRequest:
        build = claude_command if self.agent is AgentKind.CLAUDE else codex_command
        argv, env = build(self.model, self.creds)
        return ExecRequest(
            command=argv,
            cwd=self.cwd,
            env=env,
            stdin=self.prompt,
            # The run's own timeout comes first; this one only backs it up.
            timeout=min(self.timeout + 60, MAX_EXEC_TIMEOUT_S),
        )

    async def run(self, emit: Emit) -> Outcome:
        codex = CodexTranscript()
        final: dict[str, object] | None = None
        pending = ""
        stderr = ""
        exit_event: ExecExitEvent | None = None
        events = await exec_service.stream_command(
            self.inside, self.principal, self.environment_id, self._request()
        )
        try:
            async for item in events:
                if item.event == "stdout" and isinstance(item.data, ExecOutputEvent):
                    pending += item.data.data
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        final = await self._line(line, codex, emit) or final
                elif item.event == "stderr" and isinstance(item.data, ExecOutputEvent):
                    stderr = (stderr + item.data.data)[-STDERR_TAIL:]
                elif item.event == "exit" and isinstance(item.data, ExecExitEvent):
                    exit_event = item.data
                elif item.event == "error" and isinstance(item.data, dict):
                    return Outcome(AgentRunStatus.FAILED, error=item.data.get("message"))
        finally:
            await close_source(events)
        if pending.strip():
            final = await self._line(pending, codex, emit) or final
        code = exit_event.exit_code if exit_event else None
        if self.agent is AgentKind.CODEX:
            final = codex.final(code)[1]
        return self._outcome(final, code, stderr)

    async def _line(
        self, line: str, codex: CodexTranscript, emit: Emit
    ) -> dict[str, object] | None:
        parsed = parse_line(line)
        if parsed is None:
            return None
        emitted: list[Emitted] = (
            claude_events(parsed) if self.agent is AgentKind.CLAUDE else codex.events(parsed)
        )
        final = None
        for type, data in emitted:
            if type == "final":
                final = data
            else:
                await emit(type, data)
        return final

    def _outcome(self, final: dict[str, object] | None, code: int | None, stderr: str) -> Outcome:
        tail = stderr.strip()[-2000:]
        if final is None:
            error = f"{self.agent.value} exited with {code} without a result"
            return Outcome(
                AgentRunStatus.FAILED, error=f"{error}: {tail}" if tail else error, exit_code=code
            )
        completed = final.get("status") == "completed" and code == 0
        text = final.get("text")
        extra = {
            k: final[k] for k in ("usage", "cost_usd", "num_turns") if final.get(k) is not None
        }
        return Outcome(
            AgentRunStatus.COMPLETED if completed else AgentRunStatus.FAILED,
            text=str(text) if text is not None else None,
            error=None if completed else (tail or f"{self.agent.value} reported a failure"),
            exit_code=code,
            extra=extra,
        )
