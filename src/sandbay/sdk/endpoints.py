"""Every native API call the typed clients make, as a `Call`: written once, run by
both `Sandbay` (sync.py) and `AsyncSandbay` (aio.py). Creates and state changes
sent as POST carry an Idempotency-Key, so their retries are safe."""

from typing import Any

from sandbay.domain.access import (
    PreviewLink,
    PreviewToken,
    SshCredential,
    SshCredentialInfo,
    SshCredentialList,
)
from sandbay.domain.agents import AgentModels, AgentRun
from sandbay.domain.environments import (
    Environment,
    EnvironmentCreate,
    EnvironmentList,
    EnvironmentUpdate,
    EventList,
)
from sandbay.domain.exec import ExecResult, Process, ProcessList, ProcessOutput
from sandbay.domain.files import FileInfo, FileList
from sandbay.domain.keys import (
    ApiKey,
    ApiKeyCreated,
    ApiKeyList,
    Organization,
    OrganizationCreated,
)
from sandbay.domain.metrics import MetricsHistory
from sandbay.domain.org_secrets import Secret, SecretList
from sandbay.domain.pools import WarmPoolStatus
from sandbay.domain.quotas import OrganizationUsage, Quotas
from sandbay.domain.snapshots import ForkResult, Snapshot, SnapshotList
from sandbay.domain.work import WorkHeartbeat, WorkItem, WorkItemList, WorkStats
from sandbay.sdk.calls import DEFAULT, Call, adapter, body, keyed, model, query

ENVS = "/v1/environments"
#: Extra seconds a blocking call is given beyond its own server-side timeout.
SLACK_S = 30.0


def _nothing(_: Any) -> None:
    return None


# ---- environments ---------------------------------------------------------------------


def create_environment(
    spec: EnvironmentCreate | None, fields: dict[str, Any], idempotency_key: str | None
) -> Call[Environment]:
    return Call(
        "POST", ENVS, model(Environment), json=body(spec, fields), headers=keyed(idempotency_key)
    )


def list_environments(
    state: list[str] | None, label: list[str] | None, limit: int, cursor: str | None
) -> Call[EnvironmentList]:
    params = query(state=state or None, label=label or None, limit=limit, cursor=cursor)
    return Call("GET", ENVS, model(EnvironmentList), params=params)


def get_environment(env: str) -> Call[Environment]:
    return Call("GET", f"{ENVS}/{env}", model(Environment))


def update_environment(
    env: str, spec: EnvironmentUpdate | None, fields: dict[str, Any]
) -> Call[Environment]:
    return Call("PATCH", f"{ENVS}/{env}", model(Environment), json=body(spec, fields))


def delete_environment(env: str) -> Call[Environment]:
    return Call("DELETE", f"{ENVS}/{env}", model(Environment))


def lifecycle(env: str, action: str, stop: dict[str, Any] | None = None) -> Call[Environment]:
    """start, stop, restart, pause, resume, archive, keepalive: each writes an intent
    and answers the environment; keyed, so a retry does not act twice."""
    return Call(
        "POST", f"{ENVS}/{env}/{action}", model(Environment), json=stop or None, headers=keyed()
    )


def move_environment(env: str, runner_id: str | None) -> Call[Environment]:
    body = {"runner_id": runner_id} if runner_id else None
    return Call("POST", f"{ENVS}/{env}/move", model(Environment), json=body, headers=keyed())


def stop_body(force: bool, timeout: float | None, signal: str | None) -> dict[str, Any]:
    return {"force": force, **query(timeout=timeout, signal=signal)}


def wait_environment(env: str, state: str, timeout: float) -> Call[Environment]:
    params = {"state": state, "timeout": timeout}
    return Call(
        "GET", f"{ENVS}/{env}/wait", model(Environment), params=params, timeout=timeout + SLACK_S
    )


def environment_events(env: str | None, after: int | None, limit: int) -> Call[EventList]:
    path = f"{ENVS}/{env}/events" if env else "/v1/events"
    return Call("GET", path, model(EventList), params=query(after=after, limit=limit))


def follow_events(env: str | None, after: int | None) -> Call[None]:
    path = f"{ENVS}/{env}/events" if env else "/v1/events"
    return Call("GET", path, _nothing, params=query(follow=True, after=after), timeout=None)


def metrics(env: str, since: str | None, limit: int) -> Call[MetricsHistory]:
    params = query(since=since, limit=limit)
    return Call("GET", f"{ENVS}/{env}/metrics", model(MetricsHistory), params=params)


def logs(env: str, follow: bool, tail: int | None, since: str | None, stream: str) -> Call[None]:
    params = query(follow=follow or None, tail=tail, since=since, stream=stream)
    return Call(
        "GET", f"{ENVS}/{env}/logs", _nothing, params=params, timeout=None if follow else DEFAULT
    )


def list_pools() -> Call[list[WarmPoolStatus]]:
    return Call("GET", "/v1/pools", adapter(list[WarmPoolStatus]))


# ---- inside: exec, processes, files ---------------------------------------------------


def exec_body(
    command: list[str] | str,
    cwd: str | None,
    env: dict[str, str] | None,
    user: str | None,
    timeout: float | None,
    stdin: str | None,
) -> dict[str, Any]:
    return {"command": command, **query(cwd=cwd, env=env, user=user, timeout=timeout, stdin=stdin)}


def exec_command(env: str, payload: dict[str, Any]) -> Call[ExecResult]:
    """Not retried: the command may have run."""
    wait = (payload.get("timeout") or 600) + SLACK_S
    return Call("POST", f"{ENVS}/{env}/exec", model(ExecResult), json=payload, timeout=wait)


def exec_stream(env: str, payload: dict[str, Any]) -> Call[None]:
    return Call("POST", f"{ENVS}/{env}/exec/stream", _nothing, json=payload, timeout=None)


def start_process(env: str, payload: dict[str, Any]) -> Call[Process]:
    return Call("POST", f"{ENVS}/{env}/processes", model(Process), json=payload, headers=keyed())


def list_processes(env: str) -> Call[ProcessList]:
    return Call("GET", f"{ENVS}/{env}/processes", model(ProcessList))


def get_process(env: str, process_id: str) -> Call[Process]:
    return Call("GET", f"{ENVS}/{env}/processes/{process_id}", model(Process))


def process_output(
    env: str, process_id: str, stdout_offset: int, stderr_offset: int, follow: bool = False
) -> Call[ProcessOutput]:
    params = query(stdout_offset=stdout_offset, stderr_offset=stderr_offset, follow=follow or None)
    return Call(
        "GET",
        f"{ENVS}/{env}/processes/{process_id}/output",
        model(ProcessOutput),
        params=params,
        timeout=None if follow else 60.0,
    )


def write_stdin(env: str, process_id: str, data: str, eof: bool) -> Call[Process]:
    path = f"{ENVS}/{env}/processes/{process_id}/stdin"
    return Call("POST", path, model(Process), json={"data": data, "eof": eof})


def signal_process(env: str, process_id: str, signal: str) -> Call[Process]:
    path = f"{ENVS}/{env}/processes/{process_id}/signal"
    return Call("POST", path, model(Process), json={"signal": signal})


def kill_process(env: str, process_id: str) -> Call[Process]:
    return Call("DELETE", f"{ENVS}/{env}/processes/{process_id}", model(Process))


def upload(env: str, path: str, data: bytes | None) -> Call[FileInfo]:
    """PUT replaces the file whole: bytes are retried, a streamed file object is not."""
    return Call(
        "PUT",
        f"{ENVS}/{env}/files",
        model(FileInfo),
        params={"path": path},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        streamed_body=data is None,
    )


def download(env: str, path: str) -> Call[None]:
    return Call("GET", f"{ENVS}/{env}/files", _nothing, params={"path": path}, timeout=None)


def list_files(env: str, path: str, limit: int) -> Call[FileList]:
    params = {"path": path, "limit": limit}
    return Call("GET", f"{ENVS}/{env}/files/list", model(FileList), params=params)


def stat_file(env: str, path: str) -> Call[FileInfo]:
    return Call("GET", f"{ENVS}/{env}/files/stat", model(FileInfo), params={"path": path})


def search_files(env: str, pattern: str, path: str, limit: int) -> Call[FileList]:
    params = {"pattern": pattern, "path": path, "limit": limit}
    return Call("GET", f"{ENVS}/{env}/files/search", model(FileList), params=params)


def delete_file(env: str, path: str, recursive: bool) -> Call[None]:
    params = {"path": path, "recursive": recursive}
    return Call("DELETE", f"{ENVS}/{env}/files", _nothing, params=params)


def mkdir(env: str, path: str, mode: str) -> Call[FileInfo]:
    payload = {"path": path, "mode": mode}
    return Call("POST", f"{ENVS}/{env}/files/mkdir", model(FileInfo), json=payload, headers=keyed())


def move_file(env: str, source: str, destination: str, overwrite: bool) -> Call[FileInfo]:
    payload = {"source": source, "destination": destination, "overwrite": overwrite}
    return Call("POST", f"{ENVS}/{env}/files/move", model(FileInfo), json=payload)


# ---- snapshots and forks --------------------------------------------------------------


def create_snapshot(env: str, name: str | None, idempotency_key: str | None) -> Call[Snapshot]:
    return Call(
        "POST",
        f"{ENVS}/{env}/snapshots",
        model(Snapshot),
        json=query(name=name),
        headers=keyed(idempotency_key),
    )


def list_snapshots(env: str | None) -> Call[SnapshotList]:
    return Call("GET", f"{ENVS}/{env}/snapshots" if env else "/v1/snapshots", model(SnapshotList))


def get_snapshot(snapshot: str) -> Call[Snapshot]:
    return Call("GET", f"/v1/snapshots/{snapshot}", model(Snapshot))


def delete_snapshot(snapshot: str) -> Call[Snapshot]:
    return Call("DELETE", f"/v1/snapshots/{snapshot}", model(Snapshot))


def fork(env: str, fields: dict[str, Any], idempotency_key: str | None) -> Call[ForkResult]:
    return Call(
        "POST",
        f"{ENVS}/{env}/fork",
        model(ForkResult),
        json=query(**fields),
        headers=keyed(idempotency_key),
    )


# ---- access from outside --------------------------------------------------------------


def ssh_credential(env: str, expires_in: float | None) -> Call[SshCredential]:
    """A GET that mints a credential: retrying it can at worst leave an unused one,
    which expires on its own."""
    params = query(expires_in=expires_in)
    return Call("GET", f"{ENVS}/{env}/ssh", model(SshCredential), params=params)


def list_ssh_credentials(env: str) -> Call[SshCredentialList]:
    return Call("GET", f"{ENVS}/{env}/ssh/credentials", model(SshCredentialList))


def revoke_ssh_credential(env: str, credential_id: str) -> Call[SshCredentialInfo]:
    return Call("DELETE", f"{ENVS}/{env}/ssh/{credential_id}", model(SshCredentialInfo))


def preview_token(env: str, port: int | None, expires_in: float | None) -> Call[PreviewToken]:
    payload = query(port=port, expires_in=expires_in)
    return Call(
        "POST", f"{ENVS}/{env}/preview-token", model(PreviewToken), json=payload, headers=keyed()
    )


def preview_link(env: str, port: int) -> Call[PreviewLink]:
    return Call("GET", f"{ENVS}/{env}/preview/{port}", model(PreviewLink))


# ---- secrets ----------------------------------------------------------------------------

SECRETS = "/v1/secrets"


def create_secret(fields: dict[str, Any]) -> Call[Secret]:
    """Sent without an Idempotency-Key: a kept request's fingerprint is a hash of its
    body, and this body holds the value. A retry after a lost answer gets a 409."""
    return Call("POST", SECRETS, model(Secret), json=fields)


def list_secrets() -> Call[SecretList]:
    return Call("GET", SECRETS, model(SecretList))


def get_secret(secret: str) -> Call[Secret]:
    return Call("GET", f"{SECRETS}/{secret}", model(Secret))


def update_secret(secret: str, fields: dict[str, Any]) -> Call[Secret]:
    return Call("PATCH", f"{SECRETS}/{secret}", model(Secret), json=fields)


def delete_secret(secret: str) -> Call[None]:
    return Call("DELETE", f"{SECRETS}/{secret}", _nothing)


# ---- keys and organizations -----------------------------------------------------------


def create_key(fields: dict[str, Any], idempotency_key: str | None) -> Call[ApiKeyCreated]:
    return Call(
        "POST", "/v1/keys", model(ApiKeyCreated), json=fields, headers=keyed(idempotency_key)
    )


def list_keys() -> Call[ApiKeyList]:
    return Call("GET", "/v1/keys", model(ApiKeyList))


def revoke_key(key_id: str) -> Call[ApiKey]:
    return Call("DELETE", f"/v1/keys/{key_id}", model(ApiKey))


def create_org(name: str, idempotency_key: str | None) -> Call[OrganizationCreated]:
    return Call(
        "POST",
        "/v1/orgs",
        model(OrganizationCreated),
        json={"name": name},
        headers=keyed(idempotency_key),
    )


def current_org() -> Call[Organization]:
    return Call("GET", "/v1/orgs/current", model(Organization))


def update_org(default_runtime: str | None) -> Call[Organization]:
    payload = {"default_runtime": default_runtime}
    return Call("PATCH", "/v1/orgs/current", model(Organization), json=payload)


def usage() -> Call[OrganizationUsage]:
    return Call("GET", "/v1/orgs/current/usage", model(OrganizationUsage))


def set_quotas(org_id: str, quotas: Quotas) -> Call[Quotas]:
    payload = quotas.model_dump(mode="json")
    return Call("PUT", f"/v1/orgs/{org_id}/quotas", model(Quotas), json=payload)


# ---- work items -----------------------------------------------------------------------


def _work(env: str) -> str:
    return f"{ENVS}/{env}/work"


def _worker(worker_id: str | None) -> dict[str, str]:
    return {"Worker-ID": worker_id} if worker_id else {}


def create_work(env: str, fields: dict[str, Any], idempotency_key: str | None) -> Call[WorkItem]:
    return Call("POST", _work(env), model(WorkItem), json=fields, headers=keyed(idempotency_key))


def list_work(
    env: str, state: list[str] | None, limit: int, cursor: str | None
) -> Call[WorkItemList]:
    params = query(state=state or None, limit=limit, cursor=cursor)
    return Call("GET", _work(env), model(WorkItemList), params=params)


def get_work(env: str, work_id: str) -> Call[WorkItem]:
    return Call("GET", f"{_work(env)}/{work_id}", model(WorkItem))


def update_work_metadata(env: str, work_id: str, metadata: dict[str, str | None]) -> Call[WorkItem]:
    return Call("PATCH", f"{_work(env)}/{work_id}", model(WorkItem), json={"metadata": metadata})


def poll_work(
    env: str, worker_id: str | None, block_ms: int | None, reclaim_older_than_ms: int | None
) -> Call[WorkItem | None]:
    params = query(block_ms=block_ms, reclaim_older_than_ms=reclaim_older_than_ms)
    return Call(
        "GET",
        f"{_work(env)}/poll",
        adapter(WorkItem | None),
        params=params,
        headers=_worker(worker_id),
        timeout=(block_ms or 0) / 1000 + SLACK_S,
    )


def ack_work(env: str, work_id: str, worker_id: str | None) -> Call[WorkItem]:
    """Safe to repeat while starting or active (the server says so): keyed anyway."""
    headers = {**_worker(worker_id), **keyed()}
    return Call("POST", f"{_work(env)}/{work_id}/ack", model(WorkItem), headers=headers)


def heartbeat_work(
    env: str,
    work_id: str,
    expected_last_heartbeat: str | None,
    desired_ttl_seconds: int | None,
    worker_id: str | None,
) -> Call[WorkHeartbeat]:
    params = query(
        expected_last_heartbeat=expected_last_heartbeat, desired_ttl_seconds=desired_ttl_seconds
    )
    path = f"{_work(env)}/{work_id}/heartbeat"
    return Call("POST", path, model(WorkHeartbeat), params=params, headers=_worker(worker_id))


def stop_work(env: str, work_id: str, force: bool) -> Call[WorkItem]:
    path = f"{_work(env)}/{work_id}/stop"
    return Call("POST", path, model(WorkItem), json={"force": force}, headers=keyed())


def work_stats(env: str) -> Call[WorkStats]:
    return Call("GET", f"{_work(env)}/stats", model(WorkStats))


def work_events(env: str, work_id: str, after: int | None, limit: int) -> Call[EventList]:
    params = query(after=after, limit=limit)
    return Call("GET", f"{_work(env)}/{work_id}/events", model(EventList), params=params)


# ---- agents ---------------------------------------------------------------------------


def agent_execute(env: str, payload: dict[str, Any]) -> Call[AgentRun]:
    """Not retried: the agent may have acted."""
    timeout = None if payload.get("stream") else (payload.get("timeout") or 3600) + SLACK_S
    return Call(
        "POST", f"{ENVS}/{env}/agent/execute", model(AgentRun), json=payload, timeout=timeout
    )


def agent_runs(env: str, limit: int) -> Call[list[AgentRun]]:
    params = {"limit": limit}
    return Call("GET", f"{ENVS}/{env}/agent/runs", adapter(list[AgentRun]), params=params)


def agent_run(env: str, run_id: str) -> Call[AgentRun]:
    return Call("GET", f"{ENVS}/{env}/agent/runs/{run_id}", model(AgentRun))


def cancel_agent_run(env: str, run_id: str) -> Call[AgentRun]:
    return Call("DELETE", f"{ENVS}/{env}/agent/runs/{run_id}", model(AgentRun))


def agent_models() -> Call[AgentModels]:
    return Call("GET", "/v1/agents/models", model(AgentModels))
