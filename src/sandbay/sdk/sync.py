"""`Sandbay`: the typed synchronous client. Answers are the server's own pydantic
models; errors are the ApiError subclass of their type; safe calls are retried."""

import contextlib
import time
from collections.abc import Iterator
from typing import Any, BinaryIO, TypeVar

import httpx
from httpx_sse import EventSource

from sandbay.domain.access import (
    PreviewLink,
    PreviewToken,
    SshCredential,
    SshCredentialInfo,
    SshCredentialList,
)
from sandbay.domain.agents import AgentEvent, AgentModels, AgentRun
from sandbay.domain.environments import (
    Environment,
    EnvironmentCreate,
    EnvironmentList,
    EnvironmentUpdate,
    Event,
    EventList,
)
from sandbay.domain.exec import ExecResult, Process, ProcessList, ProcessOutput
from sandbay.domain.files import FileInfo, FileList
from sandbay.domain.keys import ApiKey, ApiKeyCreated, ApiKeyList, Organization, OrganizationCreated
from sandbay.domain.metrics import MetricsHistory
from sandbay.domain.org_secrets import Secret, SecretList
from sandbay.domain.pools import WarmPoolStatus
from sandbay.domain.quotas import OrganizationUsage, Quotas
from sandbay.domain.snapshots import ForkResult, Snapshot, SnapshotList, SnapshotState
from sandbay.domain.work import WorkHeartbeat, WorkItem, WorkItemList, WorkStats
from sandbay.sdk import endpoints as ep
from sandbay.sdk.calls import Call, Retry, exec_event, parse_answer
from sandbay.sdk.errors import ApiConnectionError, WaitTimeoutError, error_from_response
from sandbay.sdk.models import ExecStreamEvent
from sandbay.sdk.waits import SnapshotPoll, wait_slice

T = TypeVar("T")
#: Aliases: resources have a `list` method, which hides the builtin in their bodies.
Strings = list[str]
Command = list[str] | str


class Transport:
    """Sends a Call: retries what is safe, raises the envelope's error, parses."""

    def __init__(self, http: httpx.Client, retry: Retry) -> None:
        self.http = http
        self.retry = retry

    def send(self, call: Call[Any], *, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            try:
                request = self.http.build_request(call.method, call.path, **call.request_kwargs())
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if not self.retry.on_error(call, exc, attempt):
                    raise ApiConnectionError(0, "connection_error", f"{call.path}: {exc}") from exc
            else:
                if response.status_code < 400:
                    return response
                response.read()
                response.close()
                error = error_from_response(response)
                if not self.retry.on_status(call, response.status_code, attempt):
                    raise error
                time.sleep(self.retry.delay(attempt, error.retry_after))
                attempt += 1
                continue
            time.sleep(self.retry.delay(attempt))
            attempt += 1

    def call(self, call: Call[T]) -> T:
        return parse_answer(call, self.send(call))

    @contextlib.contextmanager
    def stream(self, call: Call[Any]) -> Iterator[httpx.Response]:
        response = self.send(call, stream=True)
        try:
            yield response
        finally:
            response.close()

    def events(self, call: Call[Any]) -> Iterator[tuple[str, str, str]]:
        """(event, data, id) of a server-sent event stream."""
        with self.stream(call) as response:
            for sse in EventSource(response).iter_sse():
                yield sse.event, sse.data, sse.id


class _Resource:
    def __init__(self, transport: Transport) -> None:
        self._t = transport


class Environments(_Resource):
    """Environments: create, read, change, lifecycle, waits, events, exec, logs, metrics."""

    def create(
        self,
        spec: EnvironmentCreate | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Environment:
        """Create (it starts at once). Sent with an Idempotency-Key (a fresh one unless
        given), so a retry after a lost answer creates nothing more."""
        return self._t.call(ep.create_environment(spec, fields, idempotency_key))

    def get(self, env: str) -> Environment:
        return self._t.call(ep.get_environment(env))

    def list(
        self,
        *,
        state: Strings | None = None,
        label: Strings | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> EnvironmentList:
        """One page, newest first; `label` items are `key=value`."""
        return self._t.call(ep.list_environments(state, label, limit, cursor))

    def iter(
        self, *, state: Strings | None = None, label: Strings | None = None
    ) -> Iterator[Environment]:
        """Every environment matching, page after page."""
        cursor: str | None = None
        while True:
            page = self.list(state=state, label=label, limit=1000, cursor=cursor)
            yield from page.data
            if not page.has_more or page.next_cursor is None:
                return
            cursor = page.next_cursor

    def update(
        self, env: str, spec: EnvironmentUpdate | None = None, /, **fields: Any
    ) -> Environment:
        return self._t.call(ep.update_environment(env, spec, fields))

    def delete(self, env: str) -> Environment:
        return self._t.call(ep.delete_environment(env))

    def start(self, env: str) -> Environment:
        return self._t.call(ep.lifecycle(env, "start"))

    def stop(
        self,
        env: str,
        *,
        force: bool = False,
        timeout: float | None = None,
        signal: str | None = None,
    ) -> Environment:
        return self._t.call(ep.lifecycle(env, "stop", ep.stop_body(force, timeout, signal)))

    def restart(
        self, env: str, *, force: bool = False, timeout: float | None = None
    ) -> Environment:
        return self._t.call(ep.lifecycle(env, "restart", ep.stop_body(force, timeout, None)))

    def pause(self, env: str) -> Environment:
        return self._t.call(ep.lifecycle(env, "pause"))

    def resume(self, env: str) -> Environment:
        return self._t.call(ep.lifecycle(env, "resume"))

    def archive(self, env: str) -> Environment:
        return self._t.call(ep.lifecycle(env, "archive"))

    def move(self, env: str, runner_id: str | None = None) -> Environment:
        """Give an archived environment another runner (a Swarm node): by id or
        hostname, or the best other one; its next start restores it there."""
        return self._t.call(ep.move_environment(env, runner_id))

    def keepalive(self, env: str) -> Environment:
        return self._t.call(ep.lifecycle(env, "keepalive"))

    def wait(self, env: str, state: str, *, timeout: float = 60) -> Environment:
        """Block until `env` is in `state`. WaitTimeoutError after `timeout` seconds,
        ConflictError if it went to `error`, NotFoundError if it was deleted."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._t.call(ep.wait_environment(env, state, wait_slice(deadline)))
            except WaitTimeoutError:
                if deadline - time.monotonic() <= 0:
                    raise

    def events(self, env: str, *, after: int | None = None, limit: int = 100) -> EventList:
        return self._t.call(ep.environment_events(env, after, limit))

    def follow_events(self, env: str | None = None, *, after: int | None = None) -> Iterator[Event]:
        """Its events as they commit (all of the organization's without `env`). A
        dropped stream is resumed after the last event seen, so none is missed."""
        return _follow(self._t, env, after)

    def exec(
        self,
        env: str,
        command: Command,
        *,
        cwd: str | None = None,
        env_vars: dict[str, str] | None = None,
        user: str | None = None,
        timeout: float | None = None,
        stdin: str | None = None,
    ) -> ExecResult:
        """Run to completion; a non-zero exit is a result, not an error. Not retried."""
        payload = ep.exec_body(command, cwd, env_vars, user, timeout, stdin)
        return self._t.call(ep.exec_command(env, payload))

    def exec_stream(
        self,
        env: str,
        command: Command,
        *,
        cwd: str | None = None,
        env_vars: dict[str, str] | None = None,
        user: str | None = None,
        timeout: float | None = None,
        stdin: str | None = None,
    ) -> Iterator[ExecStreamEvent]:
        """Output chunks (`ExecOutput`) as produced, then one `ExecExitEvent`. Leaving
        the loop early closes the stream, which kills the command."""
        payload = ep.exec_body(command, cwd, env_vars, user, timeout, stdin)
        for event, data, _ in self._t.events(ep.exec_stream(env, payload)):
            item = exec_event(event, data)
            if item is not None:
                yield item

    def logs(
        self, env: str, *, tail: int | None = None, since: str | None = None, stream: str = "both"
    ) -> str:
        """What the workload printed so far (the engine keeps the last 30 MB)."""
        with self._t.stream(ep.logs(env, False, tail, since, stream)) as response:
            return response.read().decode(errors="replace")

    def follow_logs(
        self, env: str, *, tail: int | None = None, since: str | None = None, stream: str = "both"
    ) -> Iterator[str]:
        """Lines as the workload prints them, until it stops."""
        with self._t.stream(ep.logs(env, True, tail, since, stream)) as response:
            yield from response.iter_lines()

    def metrics(self, env: str, *, since: str | None = None, limit: int = 1000) -> MetricsHistory:
        return self._t.call(ep.metrics(env, since, limit))


def _follow(transport: Transport, env: str | None, after: int | None) -> Iterator[Event]:
    failures = 0
    while True:
        try:
            for _, data, _ in transport.events(ep.follow_events(env, after)):
                event = Event.model_validate_json(data)
                after, failures = event.id, 0
                yield event
            return
        except (httpx.TransportError, ApiConnectionError):
            failures += 1
            if failures > transport.retry.retries:
                raise
            time.sleep(transport.retry.delay(failures))


class Processes(_Resource):
    """Background processes (sessions) inside an environment."""

    def start(
        self,
        env: str,
        command: Command,
        *,
        cwd: str | None = None,
        env_vars: dict[str, str] | None = None,
        user: str | None = None,
        stdin: bool = False,
    ) -> Process:
        payload = ep.exec_body(command, cwd, env_vars, user, None, None)
        return self._t.call(ep.start_process(env, {**payload, "stdin": stdin}))

    def list(self, env: str) -> ProcessList:
        return self._t.call(ep.list_processes(env))

    def get(self, env: str, process_id: str) -> Process:
        return self._t.call(ep.get_process(env, process_id))

    def output(
        self, env: str, process_id: str, *, stdout_offset: int = 0, stderr_offset: int = 0
    ) -> ProcessOutput:
        return self._t.call(ep.process_output(env, process_id, stdout_offset, stderr_offset))

    def follow(self, env: str, process_id: str) -> Iterator[ExecStreamEvent]:
        """Its output so far, then as produced, then its exit."""
        for event, data, _ in self._t.events(ep.process_output(env, process_id, 0, 0, True)):
            item = exec_event(event, data)
            if item is not None:
                yield item

    def write_stdin(
        self, env: str, process_id: str, data: str = "", *, eof: bool = False
    ) -> Process:
        return self._t.call(ep.write_stdin(env, process_id, data, eof))

    def signal(self, env: str, process_id: str, signal: str = "SIGTERM") -> Process:
        return self._t.call(ep.signal_process(env, process_id, signal))

    def kill(self, env: str, process_id: str) -> Process:
        return self._t.call(ep.kill_process(env, process_id))


class Files(_Resource):
    """Files inside an environment; bodies stream both ways."""

    def upload(self, env: str, path: str, data: bytes | BinaryIO) -> FileInfo:
        """Write `data` to `path` whole (parents created). Bytes are retried safely; a
        file object is streamed and sent once."""
        if isinstance(data, bytes):
            return self._t.call(ep.upload(env, path, data))
        call = ep.upload(env, path, None)
        response = self._t.http.put(
            call.path, params=call.params, headers=call.headers, content=_chunks(data)
        )
        if response.status_code >= 400:
            raise error_from_response(response)
        return FileInfo.model_validate(response.json())

    def download(self, env: str, path: str) -> bytes:
        with self._t.stream(ep.download(env, path)) as response:
            return response.read()

    def download_to(self, env: str, path: str, into: BinaryIO) -> int:
        """Stream the file into `into`; the bytes written."""
        written = 0
        with self._t.stream(ep.download(env, path)) as response:
            for chunk in response.iter_bytes():
                written += into.write(chunk)
        return written

    def list(self, env: str, path: str = "/workspace", *, limit: int = 1000) -> FileList:
        return self._t.call(ep.list_files(env, path, limit))

    def stat(self, env: str, path: str) -> FileInfo:
        return self._t.call(ep.stat_file(env, path))

    def search(
        self, env: str, pattern: str, *, path: str = "/workspace", limit: int = 1000
    ) -> FileList:
        return self._t.call(ep.search_files(env, pattern, path, limit))

    def delete(self, env: str, path: str, *, recursive: bool = False) -> None:
        self._t.call(ep.delete_file(env, path, recursive))

    def mkdir(self, env: str, path: str, *, mode: str = "0755") -> FileInfo:
        return self._t.call(ep.mkdir(env, path, mode))

    def move(self, env: str, source: str, destination: str, *, overwrite: bool = False) -> FileInfo:
        return self._t.call(ep.move_file(env, source, destination, overwrite))


def _chunks(source: BinaryIO, size: int = 64 * 1024) -> Iterator[bytes]:
    while chunk := source.read(size):
        yield chunk


class Snapshots(_Resource):
    """Snapshots of environments (root layer and /workspace) and forks."""

    def create(
        self, env: str, name: str | None = None, *, idempotency_key: str | None = None
    ) -> Snapshot:
        """Start one (`creating`); `wait` for `ready`."""
        return self._t.call(ep.create_snapshot(env, name, idempotency_key))

    def list(self, env: str | None = None) -> SnapshotList:
        return self._t.call(ep.list_snapshots(env))

    def get(self, snapshot: str) -> Snapshot:
        return self._t.call(ep.get_snapshot(snapshot))

    def delete(self, snapshot: str) -> Snapshot:
        return self._t.call(ep.delete_snapshot(snapshot))

    def wait(self, snapshot: str, *, timeout: float = 600) -> Snapshot:
        """Until `ready` (returned); SnapshotFailedError if it failed,
        WaitTimeoutError after `timeout` seconds."""
        poll = SnapshotPoll(snapshot, timeout)
        while True:
            found = self.get(snapshot)
            if found.state is SnapshotState.READY:
                return found
            time.sleep(poll.next_delay(found))

    def fork(
        self,
        env: str,
        count: int = 1,
        *,
        name: str | None = None,
        name_prefix: str | None = None,
        labels: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> ForkResult:
        """`count` new environments from a live snapshot of `env` (which keeps running)."""
        fields = {"count": count, "name": name, "name_prefix": name_prefix, "labels": labels}
        return self._t.call(ep.fork(env, fields, idempotency_key))


class Access(_Resource):
    """SSH credentials and preview links."""

    def ssh_credential(self, env: str, *, expires_in: float | None = None) -> SshCredential:
        """A new short-lived credential, shown once."""
        return self._t.call(ep.ssh_credential(env, expires_in))

    def ssh_credentials(self, env: str) -> SshCredentialList:
        return self._t.call(ep.list_ssh_credentials(env))

    def revoke_ssh_credential(self, env: str, credential_id: str) -> SshCredentialInfo:
        return self._t.call(ep.revoke_ssh_credential(env, credential_id))

    def preview_token(
        self, env: str, *, port: int | None = None, expires_in: float | None = None
    ) -> PreviewToken:
        return self._t.call(ep.preview_token(env, port, expires_in))

    def preview_link(self, env: str, port: int) -> PreviewLink:
        return self._t.call(ep.preview_link(env, port))


class Keys(_Resource):
    def create(
        self,
        name: str,
        *,
        permissions: Strings | None = None,
        environment_ids: Strings | None = None,
        expires_at: str | None = None,
        idempotency_key: str | None = None,
    ) -> ApiKeyCreated:
        """A key (the secret is in this answer only); without `permissions` an
        organization key."""
        fields = {"name": name, "permissions": permissions, "environment_ids": environment_ids}
        if expires_at is not None:
            fields["expires_at"] = expires_at
        return self._t.call(ep.create_key(fields, idempotency_key))

    def list(self) -> ApiKeyList:
        return self._t.call(ep.list_keys())

    def revoke(self, key_id: str) -> ApiKey:
        return self._t.call(ep.revoke_key(key_id))


class Secrets(_Resource):
    """The organization's secrets. A value is sent, never received: answers carry the
    placeholder environments see in its place."""

    def create(
        self,
        name: str,
        value: str,
        *,
        description: str | None = None,
        hosts: Strings | None = None,
    ) -> Secret:
        """`hosts`: host names or `*.` wildcards the value is sent to (every allowed
        host when none)."""
        fields: dict[str, Any] = {"name": name, "value": value, "hosts": list(hosts or [])}
        if description is not None:
            fields["description"] = description
        return self._t.call(ep.create_secret(fields))

    def list(self) -> SecretList:
        return self._t.call(ep.list_secrets())

    def get(self, secret: str) -> Secret:
        """By id (sec_…) or name."""
        return self._t.call(ep.get_secret(secret))

    def update(self, secret: str, **fields: Any) -> Secret:
        """Change `value`, `description` (None clears it) or `hosts`; the placeholder
        stays."""
        return self._t.call(ep.update_secret(secret, fields))

    def delete(self, secret: str) -> None:
        self._t.call(ep.delete_secret(secret))


class Orgs(_Resource):
    def create(self, name: str, *, idempotency_key: str | None = None) -> OrganizationCreated:
        """A new organization and its first key (operator key only)."""
        return self._t.call(ep.create_org(name, idempotency_key))

    def current(self) -> Organization:
        return self._t.call(ep.current_org())

    def update(self, *, default_runtime: str | None) -> Organization:
        return self._t.call(ep.update_org(default_runtime))

    def usage(self) -> OrganizationUsage:
        return self._t.call(ep.usage())

    def set_quotas(self, org_id: str, quotas: Quotas) -> Quotas:
        """Operator key only; a null limit is unlimited."""
        return self._t.call(ep.set_quotas(org_id, quotas))


class Work(_Resource):
    """Work items of a self-hosted environment, and the worker protocol."""

    def create(
        self,
        env: str,
        *,
        data: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        **policy: Any,
    ) -> WorkItem:
        fields = {"data": data or {}, "metadata": metadata or {}, **policy}
        return self._t.call(ep.create_work(env, fields, idempotency_key))

    def list(
        self,
        env: str,
        *,
        state: Strings | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> WorkItemList:
        return self._t.call(ep.list_work(env, state, limit, cursor))

    def get(self, env: str, work_id: str) -> WorkItem:
        return self._t.call(ep.get_work(env, work_id))

    def update_metadata(self, env: str, work_id: str, metadata: dict[str, str | None]) -> WorkItem:
        return self._t.call(ep.update_work_metadata(env, work_id, metadata))

    def poll(
        self,
        env: str,
        *,
        worker_id: str | None = None,
        block_ms: int | None = None,
        reclaim_older_than_ms: int | None = None,
    ) -> WorkItem | None:
        return self._t.call(ep.poll_work(env, worker_id, block_ms, reclaim_older_than_ms))

    def ack(self, env: str, work_id: str, *, worker_id: str | None = None) -> WorkItem:
        return self._t.call(ep.ack_work(env, work_id, worker_id))

    def heartbeat(
        self,
        env: str,
        work_id: str,
        *,
        expected_last_heartbeat: str | None = None,
        desired_ttl_seconds: int | None = None,
        worker_id: str | None = None,
    ) -> WorkHeartbeat:
        call = ep.heartbeat_work(
            env, work_id, expected_last_heartbeat, desired_ttl_seconds, worker_id
        )
        return self._t.call(call)

    def stop(self, env: str, work_id: str, *, force: bool = False) -> WorkItem:
        return self._t.call(ep.stop_work(env, work_id, force))

    def stats(self, env: str) -> WorkStats:
        return self._t.call(ep.work_stats(env))

    def events(
        self, env: str, work_id: str, *, after: int | None = None, limit: int = 100
    ) -> EventList:
        return self._t.call(ep.work_events(env, work_id, after, limit))


class Agents(_Resource):
    """Coding agents run inside an environment through the model relay."""

    def execute(self, env: str, prompt: str, **options: Any) -> AgentRun:
        """Run to the end; `options` are AgentExecuteRequest's (agent, model, …)."""
        return self._t.call(ep.agent_execute(env, {"prompt": prompt, **options, "stream": False}))

    def stream(self, env: str, prompt: str, **options: Any) -> Iterator[AgentEvent]:
        """The run's events as they come, `result` last."""
        call = ep.agent_execute(env, {"prompt": prompt, **options, "stream": True})
        for _, data, _ in self._t.events(call):
            yield AgentEvent.model_validate_json(data)

    def runs(self, env: str, *, limit: int = 50) -> list[AgentRun]:
        return self._t.call(ep.agent_runs(env, limit))

    def get(self, env: str, run_id: str) -> AgentRun:
        return self._t.call(ep.agent_run(env, run_id))

    def cancel(self, env: str, run_id: str) -> AgentRun:
        return self._t.call(ep.cancel_agent_run(env, run_id))

    def models(self) -> AgentModels:
        return self._t.call(ep.agent_models())


class Events(_Resource):
    """The organization's audit log."""

    def list(self, *, after: int | None = None, limit: int = 100) -> EventList:
        return self._t.call(ep.environment_events(None, after, limit))

    def follow(self, *, after: int | None = None) -> Iterator[Event]:
        return _follow(self._t, None, after)


class Sandbay:
    """The native API, typed: `Sandbay(base_url, api_key)`; use as a context manager
    or call `close()`. `retry` bounds retries of safe calls; `transport` replaces
    httpx's (tests, proxies)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | None = 30.0,
        retry: Retry | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"X-API-KEY": api_key} if api_key else {}
        http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self._transport = Transport(http, retry or Retry())
        self.environments = Environments(self._transport)
        self.processes = Processes(self._transport)
        self.files = Files(self._transport)
        self.snapshots = Snapshots(self._transport)
        self.access = Access(self._transport)
        self.keys = Keys(self._transport)
        self.secrets = Secrets(self._transport)
        self.orgs = Orgs(self._transport)
        self.work = Work(self._transport)
        self.agents = Agents(self._transport)
        self.events = Events(self._transport)

    def pools(self) -> list[WarmPoolStatus]:
        return self._transport.call(ep.list_pools())

    def close(self) -> None:
        self._transport.http.close()

    def __enter__(self) -> "Sandbay":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
