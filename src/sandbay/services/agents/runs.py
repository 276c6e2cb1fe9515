"""Agent runs in flight: each run is a task of its own (a client that stops reading a
stream does not stop the agent), publishes its events to any number of readers,
holds the environment active while it lasts, obeys its timeout, can be cancelled,
and leaves its transcript in the database when it ends."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sandbay.db.models import AgentRunModel
from sandbay.db.session import AsyncSession, async_sessionmaker
from sandbay.domain.agent_transcripts import Redactor, clip
from sandbay.domain.agents import AgentEvent, AgentKind, AgentRun, AgentRunStatus
from sandbay.kit.clock import utcnow
from sandbay.services.environments.activity import ActivityHolds
from sandbay.services.events.record import record_event

log = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a driver's run ended (timeouts and cancellations are the registry's)."""

    status: AgentRunStatus
    text: str | None = None
    error: str | None = None
    exit_code: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def close_source(source: object) -> None:
    """Close an async iterator that may be a generator holding an engine stream."""
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


class Driver(Protocol):
    async def run(self, emit: Emit) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything a run records about itself (no credentials)."""

    run_id: str
    org_id: str
    environment_id: str
    agent: AgentKind
    model: str | None
    provider: str | None
    prompt: str
    cwd: str
    git_url: str | None
    timeout: float
    actor: str


class LiveRun:
    """A run in this process: its events so far and the readers waiting for more."""

    def __init__(self, spec: RunSpec, redactor: Redactor, keep_events: int) -> None:
        self.spec = spec
        self.redactor = redactor
        self.keep_events = keep_events
        self.events: list[AgentEvent] = []
        self.seq = 0
        self.status = AgentRunStatus.RUNNING
        self.outcome: Outcome | None = None
        self.started = time.monotonic()
        self.created_at = utcnow()
        self.ended_at: Any = None
        self.done = asyncio.Event()
        self.cancel_requested = False
        self.task: asyncio.Task[None] | None = None
        self._readers: set[asyncio.Queue[AgentEvent | None]] = set()

    async def emit(self, type: str, data: dict[str, Any]) -> None:
        """Record and publish an event; credentials are redacted, long text clipped."""
        self.seq += 1
        event = AgentEvent(
            seq=self.seq, type=type, data=clip(self.redactor.data(data)), time=utcnow()
        )
        if len(self.events) < self.keep_events or type == "result":
            self.events.append(event)
        for queue in self._readers:
            queue.put_nowait(event)

    def finish(self) -> None:
        self.done.set()
        for queue in self._readers:
            queue.put_nowait(None)

    async def stream(self) -> AsyncIterator[AgentEvent]:
        """Every event from the first, then new ones as they come, until the run ends."""
        queue: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
        backlog = list(self.events)
        self._readers.add(queue)
        try:
            for event in backlog:
                yield event
            last = backlog[-1].seq if backlog else 0
            if self.done.is_set():
                return
            while (fresh := await queue.get()) is not None:
                if fresh.seq > last:
                    yield fresh
        finally:
            self._readers.discard(queue)

    def view(self) -> AgentRun:
        outcome = self.outcome
        duration = None if outcome is None else int((time.monotonic() - self.started) * 1000)
        return AgentRun(
            id=self.spec.run_id,
            environment_id=self.spec.environment_id,
            agent=self.spec.agent,
            model=self.spec.model,
            provider=self.spec.provider,
            prompt=self.redactor.text(self.spec.prompt),
            cwd=self.spec.cwd,
            git_url=self.spec.git_url,
            status=self.status,
            result=outcome.text if outcome else None,
            error=outcome.error if outcome else None,
            exit_code=outcome.exit_code if outcome else None,
            created_at=self.created_at,
            ended_at=self.ended_at,
            duration_ms=duration,
            events=list(self.events),
        )


class AgentRuns:
    """The registry of this process's live runs."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        holds: ActivityHolds,
        *,
        keep_events: int,
    ) -> None:
        self._sessions = sessions
        self._holds = holds
        self._keep_events = keep_events
        self._live: dict[str, LiveRun] = {}

    def get(self, run_id: str) -> LiveRun | None:
        return self._live.get(run_id)

    async def launch(self, spec: RunSpec, driver: Driver, redactor: Redactor) -> LiveRun:
        """Record the run (committed at once: readers may ask for it) and start it."""
        live = LiveRun(spec, redactor, self._keep_events)
        async with self._sessions() as session:
            session.add(
                AgentRunModel(
                    id=spec.run_id,
                    org_id=spec.org_id,
                    environment_id=spec.environment_id,
                    agent=spec.agent.value,
                    model=spec.model,
                    provider=spec.provider,
                    prompt=redactor.text(spec.prompt),
                    cwd=spec.cwd,
                    git_url=spec.git_url,
                    status=AgentRunStatus.RUNNING,
                    events=[],
                    actor=spec.actor,
                    created_at=live.created_at,
                )
            )
            self._record(session, spec, "agent.run_started", {"agent": spec.agent.value})
            await session.commit()
        self._live[spec.run_id] = live
        await live.emit(
            "run.started",
            {
                "run_id": spec.run_id,
                "environment_id": spec.environment_id,
                "agent": spec.agent.value,
                "model": spec.model,
                "provider": spec.provider,
                "cwd": spec.cwd,
            },
        )
        live.task = asyncio.create_task(self._drive(live, driver), name=f"agent {spec.run_id}")
        return live

    async def cancel(self, run_id: str) -> LiveRun | None:
        """Cancel a live run of this process (its processes are killed); None if not here."""
        live = self._live.get(run_id)
        if live is None or live.task is None:
            return None
        if not live.done.is_set():
            live.cancel_requested = True
            live.task.cancel()
            await live.done.wait()
        return live

    async def close(self) -> None:
        """Server shutdown: every live run is cancelled and recorded as such."""
        for run_id in list(self._live):
            with contextlib.suppress(Exception):
                await self.cancel(run_id)

    async def _drive(self, live: LiveRun, driver: Driver) -> None:
        spec = live.spec
        try:
            with self._holds.hold(spec.environment_id):  # a running agent is activity
                async with asyncio.timeout(spec.timeout):
                    outcome = await driver.run(live.emit)
        except TimeoutError:
            outcome = Outcome(AgentRunStatus.TIMED_OUT, error=f"timed out after {spec.timeout:g}s")
        except asyncio.CancelledError:
            outcome = Outcome(AgentRunStatus.CANCELLED, error="cancelled")
        except Exception as exc:  # a driver bug must still end the run cleanly
            log.exception("agent run %s failed", spec.run_id)
            outcome = Outcome(AgentRunStatus.FAILED, error=f"internal error: {type(exc).__name__}")
        await self._finish(live, outcome)

    async def _finish(self, live: LiveRun, outcome: Outcome) -> None:
        redact = live.redactor.text
        outcome = Outcome(
            outcome.status,
            text=redact(outcome.text) if outcome.text else outcome.text,
            error=redact(outcome.error) if outcome.error else outcome.error,
            exit_code=outcome.exit_code,
            extra=outcome.extra,
        )
        if outcome.error and outcome.status is not AgentRunStatus.COMPLETED:
            await live.emit("error", {"type": outcome.status.value, "message": outcome.error})
        live.outcome, live.status, live.ended_at = outcome, outcome.status, utcnow()
        duration_ms = int((time.monotonic() - live.started) * 1000)
        await live.emit(
            "result",
            {
                "status": outcome.status.value,
                "text": outcome.text,
                "exit_code": outcome.exit_code,
                "duration_ms": duration_ms,
                **outcome.extra,
            },
        )
        try:
            await self._persist(live, outcome)
        except Exception:
            log.exception("could not record the end of agent run %s", live.spec.run_id)
        finally:
            live.finish()
            self._live.pop(live.spec.run_id, None)

    async def _persist(self, live: LiveRun, outcome: Outcome) -> None:
        async with self._sessions() as session:
            row = await session.get(AgentRunModel, live.spec.run_id)
            if row is None:
                return
            row.status = outcome.status
            row.result = outcome.text
            row.error = outcome.error
            row.exit_code = outcome.exit_code
            row.events = [e.model_dump(mode="json") for e in live.events]
            row.ended_at = live.ended_at
            data = {"agent": live.spec.agent.value, "status": outcome.status.value}
            self._record(session, live.spec, "agent.run_finished", data)
            await session.commit()

    @staticmethod
    def _record(session: AsyncSession, spec: RunSpec, type: str, data: dict[str, Any]) -> None:
        record_event(
            session,
            org_id=spec.org_id,
            environment_id=spec.environment_id,
            type=type,
            actor=spec.actor,
            data={"run_id": spec.run_id, **data},
        )


def run_from_row(row: AgentRunModel) -> AgentRun:
    duration = None
    if row.ended_at is not None:
        duration = int((row.ended_at - row.created_at).total_seconds() * 1000)
    return AgentRun(
        id=row.id,
        environment_id=row.environment_id,
        agent=AgentKind(row.agent),
        model=row.model,
        provider=row.provider,
        prompt=row.prompt,
        cwd=row.cwd,
        git_url=row.git_url,
        status=row.status,
        result=row.result,
        error=row.error,
        exit_code=row.exit_code,
        created_at=row.created_at,
        ended_at=row.ended_at,
        duration_ms=duration,
        events=[AgentEvent.model_validate(e) for e in row.events or []],
    )
