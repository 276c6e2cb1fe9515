"""AI agents inside environments: the agents sandbay can run, the model providers an
organization stores (their credentials never leave the server: agents inside an
environment reach them through the model relay), and the shapes of an agent run and
its transcript."""

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
)

from sandbay.domain.errors import InvalidRequest
from sandbay.domain.files import WORKSPACE, normalize_path

MAX_PROMPT_CHARS = 100_000
MAX_AGENT_TIMEOUT_S = 24 * 3600.0
_PROVIDER_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_GIT_URL = re.compile(r"^(https?|ssh|git|file)://[^\s]+$|^[\w.-]+@[\w.-]+:[^\s]+$")


class AgentKind(StrEnum):
    CLAUDE = "claude"  # Claude Code (`claude -p`), Anthropic Messages API
    CODEX = "codex"  # OpenAI Codex CLI (`codex exec`), OpenAI Responses API
    BUILTIN = "builtin"  # sandbay's own loop, any OpenAI-compatible chat completions API


class ProviderKind(StrEnum):
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    OPENAI_COMPATIBLE = "openai-compatible"


#: The provider kinds each agent can use, in order of preference.
AGENT_PROVIDERS: dict[AgentKind, tuple[ProviderKind, ...]] = {
    AgentKind.CLAUDE: (ProviderKind.ANTHROPIC,),
    AgentKind.CODEX: (ProviderKind.OPENAI, ProviderKind.OPENAI_COMPATIBLE),
    AgentKind.BUILTIN: (ProviderKind.OPENAI_COMPATIBLE, ProviderKind.OPENAI),
}
AGENT_NAMES = {
    AgentKind.CLAUDE: "Claude Code",
    AgentKind.CODEX: "OpenAI Codex",
    AgentKind.BUILTIN: "sandbay built-in agent",
}
#: The executable that must be on PATH inside the environment (None: runs in sandbay).
AGENT_EXECUTABLES = {AgentKind.CLAUDE: "claude", AgentKind.CODEX: "codex", AgentKind.BUILTIN: None}
DEFAULT_BASE_URLS = {
    ProviderKind.ANTHROPIC: "https://api.anthropic.com",
    ProviderKind.OPENAI: "https://api.openai.com/v1",
}


def _check_base_url(value: str | None) -> str | None:
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http(s) URL")
    if any(c in value for c in "\"'\\ \n\r\t"):
        raise ValueError("must not contain quotes, backslashes or whitespace")
    return value.rstrip("/")


BaseUrl = Annotated[str | None, AfterValidator(_check_base_url)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s\"']+$")]


def secret_hint(secret: str) -> str:
    """What may be shown of a credential: its length class and last four characters."""
    return f"…{secret[-4:]}" if len(secret) >= 12 else "…"


class ModelProviderPut(BaseModel):
    """Create or replace a model provider. Without `api_key`, an existing provider
    keeps its stored credential (change the base URL or models only)."""

    model_config = ConfigDict(extra="forbid")

    kind: ProviderKind
    base_url: BaseUrl = Field(
        None, description="API base URL; default the vendor's (required for openai-compatible)"
    )
    api_key: SecretStr | None = Field(
        None, description="The credential; stored encrypted, never returned", max_length=8192
    )
    models: list[ModelName] = Field(default_factory=list, max_length=200)
    default_model: ModelName | None = Field(None, description="Default: the first of `models`")


class ModelProvider(BaseModel):
    """A model provider as the API shows it: never the credential, only a hint."""

    name: str
    kind: ProviderKind
    base_url: str | None
    models: list[str]
    default_model: str | None
    api_key_hint: str = Field(description="Last characters of the stored credential")
    created_at: datetime
    updated_at: datetime


class ModelProviderList(BaseModel):
    data: list[ModelProvider]


ProviderName = Annotated[str, StringConstraints(pattern=_PROVIDER_NAME)]


def _check_project(value: str | None) -> str | None:
    if value is None:
        return None
    path = normalize_path(value.strip() or ".", base=WORKSPACE)
    if path != WORKSPACE and not path.startswith(WORKSPACE + "/"):
        raise ValueError("must be a project under /workspace")
    return path


def _check_git_url(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > 2048 or value.startswith("-") or not _GIT_URL.match(value):
        raise ValueError("must be a git URL (https://, ssh://, git://, file:// or user@host:path)")
    return value


ProjectPath = Annotated[str | None, AfterValidator(_check_project)]
GitUrl = Annotated[str | None, AfterValidator(_check_git_url)]


class AgentExecuteRequest(BaseModel):
    """Run an agent inside an environment on a prompt."""

    model_config = ConfigDict(extra="forbid")

    prompt: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)]
    agent: AgentKind = AgentKind.CLAUDE
    model: ModelName | None = Field(None, description="Default: the provider's default model")
    provider: ProviderName | None = Field(
        None, description="Model provider by name; default the first one the agent can use"
    )
    project: ProjectPath = Field(
        None,
        description="Working directory: a project name or path under /workspace "
        "(created if absent); default /workspace",
    )
    git_url: GitUrl = Field(
        None, description="Clone this repository into the project first (kept if it is there)"
    )
    stream: bool = Field(False, description="Answer as server-sent events while the agent works")
    timeout: float | None = Field(
        None, gt=0, le=MAX_AGENT_TIMEOUT_S, description="Seconds; default the server's"
    )


class AgentRunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


FINISHED = frozenset(s for s in AgentRunStatus if s is not AgentRunStatus.RUNNING)


class AgentEvent(BaseModel):
    """One event of a run: `run.started`, `status`, `message`, `reasoning`, `tool_use`,
    `tool_result`, `error`, and `result` (always last)."""

    seq: int
    type: str
    data: dict[str, Any]
    time: datetime


class AgentRun(BaseModel):
    """An agent run and its transcript."""

    id: str
    environment_id: str
    agent: AgentKind
    model: str | None
    provider: str | None
    prompt: str
    cwd: str
    git_url: str | None
    status: AgentRunStatus
    result: str | None = Field(description="The agent's final answer")
    error: str | None
    exit_code: int | None
    created_at: datetime
    ended_at: datetime | None
    duration_ms: int | None
    events: list[AgentEvent]


class AgentModelsEntry(BaseModel):
    """An agent and the models the organization's providers offer it."""

    agent: AgentKind
    name: str
    available: bool = Field(description="The organization has a provider this agent can use")
    providers: list[str]
    models: list[str]
    default_model: str | None


class AgentModels(BaseModel):
    data: list[AgentModelsEntry]


def require_model(model: str | None, agent: AgentKind) -> str:
    if not model:
        raise InvalidRequest(
            f"no model: name one, or give the provider a default model for {agent.value}"
        )
    return model
