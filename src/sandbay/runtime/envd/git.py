"""Git inside an environment through its agent (docs/envd.md, Git): the
environment's own git, run as its user; credentials travel in the request body to
the agent, which hands them to git through its askpass helper only."""

from collections.abc import Mapping
from typing import Any

from sandbay.runtime.envd.channel import Channel
from sandbay.runtime.envd.files import path_errors

OPERATIONS = frozenset(
    {
        "clone",
        "status",
        "add",
        "commit",
        "branches",
        "create_branch",
        "checkout",
        "delete_branch",
        "pull",
        "push",
        "init",
        "reset",
        "restore",
        "remotes",
        "remote_add",
        "config_get",
        "config_set",
        "credentials",
    }
)


class EnvdGit:
    """`GitRepos` through the environment's agent."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def git(
        self, environment_id: str, operation: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown git operation {operation!r}")
        with path_errors():
            answer = await self._channel.call(
                environment_id, "POST", f"/v1/git/{operation}", json_body=dict(body)
            )
        return answer if isinstance(answer, dict) else {}
