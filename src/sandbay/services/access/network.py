"""Network policy of running environments (the Daytona brief's `networkBlockAll` and
`networkAllowList`): the database says what it should be, `NetworkEnforcer.sync`
makes the running container match, one environment at a time, always from the
row as it is now (so of two racing updates, the later one ends up in force).

It runs after an update (the PATCH answers once the new policy is in force), after
every start this process sees on the bus, and in a periodic sweep that also covers
starts made by other processes (`sandbay reconciler`) and server restarts."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sandbay.db.cas import commit_or_conflict, commit_unless_stale
from sandbay.db.models import EnvironmentModel
from sandbay.db.queries import access as queries
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.egress import DomainPolicy
from sandbay.domain.environments import Environment, EnvironmentKind, EnvironmentUpdate, Event
from sandbay.domain.errors import RuntimeFailure, SandbayError
from sandbay.domain.keys import Principal
from sandbay.domain.runtime import NetworkRules
from sandbay.domain.states import EnvState
from sandbay.runtime.access import NetworkPolicy
from sandbay.runtime.egress import EgressGateway, Refusal
from sandbay.services.environments import records as envs
from sandbay.services.environments.records import network_rules
from sandbay.services.events.record import record_environment_event, record_event

log = logging.getLogger(__name__)
#: Reads an environment's domain policy (its names and its secrets, decrypted).
DomainPolicyLoader = Callable[[AsyncSession, EnvironmentModel], Awaitable[DomainPolicy]]
NETWORK_FIELDS = frozenset(
    {
        "network_block_all",
        "network_allow_list",
        "network_domain_allow_list",
        "network_domain_deny_list",
        "secrets",
    }
)
ACTOR = "system:network"
#: States whose container runs no more: the egress gateway stops serving it.
_GONE = frozenset(
    {EnvState.STOPPED, EnvState.ARCHIVED, EnvState.ERROR, EnvState.DELETING, EnvState.DELETED}
)


class NetworkEnforcer:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        policy: NetworkPolicy,
        runner_id: str,
        *,
        egress: EgressGateway | None = None,
        domain_policy: DomainPolicyLoader | None = None,
    ) -> None:
        self._sessions = sessions
        self._policy = policy
        self._runner_id = runner_id
        self._egress = egress
        self._domain_policy = domain_policy
        if egress is not None:
            egress.on_refusal = self.record_refusal
            egress.policy_source = self.domain_policy_of
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def sync(self, environment_id: str, *, quiet: bool = False) -> NetworkRules | None:
        """Enforce the environment's current policy if it runs here; the rules now in
        force (None when it does not run here). Raises `RuntimeFailure` when they
        cannot be enforced."""
        async with self._locks.setdefault(environment_id, asyncio.Lock()):
            async with self._sessions() as session:
                env = await session.get(EnvironmentModel, environment_id, populate_existing=True)
            if (
                env is None
                or env.state is not EnvState.RUNNING
                or env.kind is not EnvironmentKind.MANAGED
                or env.runner_id != self._runner_id
            ):
                return None
            rules = network_rules(env)
            try:
                if rules.proxied and not rules.block_all:
                    await self._load_domain_policy(env)
                await self._policy.apply(environment_id, rules)
            except SandbayError as exc:
                await self._record(env, "environment.network_policy_failed", rules, exc.message)
                raise
            if not quiet:
                await self._record(env, "environment.network_policy_applied", rules, None)
            return rules

    async def _load_domain_policy(self, env: EnvironmentModel) -> None:
        """Hand the environment's names and secrets to the egress gateway (before its
        rules send anything there: a gateway without them refuses everything)."""
        if self._egress is None or self._domain_policy is None:
            raise RuntimeFailure("this runner has no egress proxy for a policy by name")
        policy = await self.domain_policy_of(env.id)
        if policy is not None:  # None: a change since lifted it; its own sync follows
            self._egress.set_policy(env.id, policy)

    async def domain_policy_of(self, environment_id: str) -> DomainPolicy | None:
        """The environment's names and secrets as the database has them now."""
        if self._domain_policy is None:
            return None
        async with self._sessions() as session:
            env = await session.get(EnvironmentModel, environment_id)
            if env is None or not network_rules(env).proxied:
                return None
            return await self._domain_policy(session, env)

    async def record_refusal(self, refusal: Refusal) -> None:
        """An `environment.egress_refused` event (the gateway rate-limits them)."""
        async with self._sessions() as session:
            env = await session.get(EnvironmentModel, refusal.environment_id)
            if env is None:
                return
            record_event(
                session,
                org_id=env.org_id,
                environment_id=env.id,
                type="environment.egress_refused",
                actor=ACTOR,
                reason=refusal.reason,
                data={
                    "kind": refusal.kind,
                    "name": refusal.name,
                    "address": refusal.address,
                    "port": refusal.port,
                    "suppressed": refusal.suppressed,
                },
            )
            await session.commit()

    async def _record(
        self, env: EnvironmentModel, type: str, rules: NetworkRules, reason: str | None
    ) -> None:
        async with self._sessions() as session:
            row = await session.get(EnvironmentModel, env.id)
            if row is None:
                return
            record_environment_event(
                session,
                row,
                type,
                actor=ACTOR,
                reason=reason,
                data={
                    "network_block_all": rules.block_all,
                    "network_allow_list": list(rules.allow),
                },
            )
            # `updated_at` may lose a race: the event is not worth a retry.
            await commit_unless_stale(session)

    def on_event(self, event: Event) -> None:
        """Bus listener: a fresh start gets its policy at once. Only restricted
        environments need it again here: the reconciler's start already walled every
        one off from the other environments before recording `running`."""
        if (
            self._egress is not None
            and event.type == "environment.state_changed"
            and event.environment_id
            and event.to_state in _GONE
        ):
            self._egress.release(event.environment_id)
        if (
            event.type == "environment.state_changed"
            and event.to_state == EnvState.RUNNING
            and event.environment_id
        ):
            task = asyncio.create_task(self._after_start(event.environment_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _after_start(self, environment_id: str) -> None:
        try:
            async with self._sessions() as session:
                env = await session.get(EnvironmentModel, environment_id)
                restricted = env is not None and not network_rules(env).unrestricted
            if restricted:
                await self.sync(environment_id)
        except RuntimeFailure as exc:
            log.error("network policy of %s not enforced: %s", environment_id, exc.message)
        except Exception:
            log.exception("network policy of %s not enforced", environment_id)

    async def sweep(self) -> None:
        """Re-enforce every restricted running environment of this runner."""
        async with self._sessions() as session:
            running = await queries.running_managed(session, self._runner_id)
        rows = [env for env in running if not network_rules(env).unrestricted]
        if self._egress is not None:
            keep = {env.id for env in rows}
            for environment_id in self._egress.serving():
                if environment_id not in keep:
                    self._egress.release(environment_id)
        for env in rows:
            try:
                await self.sync(env.id, quiet=True)
            except SandbayError as exc:
                log.error("network policy of %s not enforced: %s", env.id, exc.message)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def update_environment(
    sessions: async_sessionmaker[AsyncSession],
    enforcer: NetworkEnforcer | None,
    principal: Principal,
    id_or_name: str,
    body: EnvironmentUpdate,
    if_versions: frozenset[int] | None = None,
) -> Environment:
    """Update, commit, then (outside the transaction) enforce a changed network
    policy on the running environment, so the answer means it is in force."""
    async with sessions() as session:
        env = await envs.update_environment(
            session, principal, id_or_name, body, if_versions=if_versions
        )
        await commit_or_conflict(session)
    if enforcer is not None and NETWORK_FIELDS & body.model_fields_set:
        try:
            await enforcer.sync(env.id)
        except SandbayError as exc:
            raise RuntimeFailure(
                f"the network policy is saved but could not be enforced yet: {exc.message}"
            ) from exc
    return env
