"""What a runner's outage means for its environments: while the Swarm does not hear
from a node, each of its environments is marked (`runner_unreachable_since`, with an
`environment.runner_unreachable` event) and keeps its state and desired state; when
the node is back the mark goes (`environment.runner_reachable`) and the node's own
runner brings each to its desired state. Nothing is deleted or failed for an
outage, and no replica acts on another node's containers meanwhile."""

from collections.abc import Collection

from sandbay.db.queries import runners as queries
from sandbay.db.session import AsyncSession
from sandbay.kit.clock import utcnow
from sandbay.services.events.record import record_environment_event

ACTOR = "system:runners"


async def mark_runners(session: AsyncSession, down: Collection[str], ready: Collection[str]) -> int:
    """Mark the environments of `down` runners, clear those of `ready` ones; how many
    changed."""
    now = utcnow()
    changed = 0
    for env in await queries.to_mark(session, down, unreachable=True):
        env.runner_unreachable_since = now
        record_environment_event(
            session, env, "environment.runner_unreachable", actor=ACTOR,
            reason="the Swarm does not hear from its runner", data={"runner_id": env.runner_id},
        )  # fmt: skip
        changed += 1
    for env in await queries.to_mark(session, ready, unreachable=False):
        since = env.runner_unreachable_since
        env.runner_unreachable_since = None
        record_environment_event(
            session, env, "environment.runner_reachable", actor=ACTOR,
            reason="its runner is back",
            data={
                "runner_id": env.runner_id,
                "seconds": None if since is None else round((now - since).total_seconds(), 1),
            },
        )  # fmt: skip
        changed += 1
    return changed
