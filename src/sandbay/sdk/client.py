"""Client for the native API, as the CLI uses it. Answers are plain dicts (the JSON as
sent); errors become the `ApiError` subclass of the envelope's type (sdk/errors.py).
The typed clients are `Sandbay` and `AsyncSandbay` (sdk/sync.py, sdk/aio.py)."""

import json
import time
from collections.abc import Iterator
from typing import Any, BinaryIO, NoReturn

import httpx

from sandbay.sdk.errors import (
    ApiConnectionError,
    ApiError,
    SnapshotFailedError,
    WaitTimeoutError,
    error_from_response,
)

__all__ = ["ApiError", "Client"]


def _exec_body(
    command: list[str] | str,
    cwd: str | None,
    env_vars: dict[str, str] | None,
    user: str | None,
    timeout: float | None,
    stdin: str | None,
) -> dict[str, Any]:
    fields = {"cwd": cwd, "env": env_vars, "user": user, "timeout": timeout, "stdin": stdin}
    return {"command": command, **{k: v for k, v in fields.items() if v is not None}}


def _page(limit: int, **filters: Any) -> dict[str, Any]:
    """Query parameters of a list: the page size and the filters given (an empty one
    is left out)."""
    return {"limit": limit, **{k: v for k, v in filters.items() if v}}


class Client:
    def __init__(self, base_url: str, api_key: str | None, *, timeout: float | None = 30.0) -> None:
        headers = {"X-API-KEY": api_key} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiConnectionError(
                0, "connection_error", f"{self._http.base_url}: {exc}"
            ) from exc
        if response.status_code >= 400:
            self._raise(response)
        return response.json() if response.content else None

    # ---- environments ------------------------------------------------------------------

    def create_environment(self, **fields: Any) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/environments", json=fields))

    def list_environments(
        self,
        *,
        state: list[str] | None = None,
        label: list[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        params = _page(limit, state=state, label=label, cursor=cursor)
        return dict(self.request("GET", "/v1/environments", params=params))

    def get_environment(self, env: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/environments/{env}"))

    def start(self, env: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/environments/{env}/start"))

    def stop(
        self,
        env: str,
        *,
        force: bool = False,
        timeout: float | None = None,
        signal: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"force": force}
        if timeout is not None:
            body["timeout"] = timeout
        if signal:
            body["signal"] = signal
        return dict(self.request("POST", f"/v1/environments/{env}/stop", json=body))

    def restart(self, env: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/environments/{env}/restart"))

    def archive(self, env: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/environments/{env}/archive"))

    def move(self, env: str, runner_id: str | None = None) -> dict[str, Any]:
        """Give an archived environment another runner (many hosts)."""
        body = {"runner_id": runner_id} if runner_id else None
        return dict(self.request("POST", f"/v1/environments/{env}/move", json=body))

    def pause(self, env: str) -> dict[str, Any]:
        """Freeze the environment in place (memory kept, no CPU)."""
        return dict(self.request("POST", f"/v1/environments/{env}/pause"))

    def resume(self, env: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/environments/{env}/resume"))

    # ---- secrets -----------------------------------------------------------------------

    def create_secret(self, **fields: Any) -> dict[str, Any]:
        """A new secret (`name`, `value`, `description`, `hosts`); the answer has its
        placeholder, never the value."""
        return dict(self.request("POST", "/v1/secrets", json=fields))

    def list_secrets(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/secrets"))

    def get_secret(self, secret: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/secrets/{secret}"))

    def update_secret(self, secret: str, **fields: Any) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/v1/secrets/{secret}", json=fields))

    def delete_secret(self, secret: str) -> None:
        self.request("DELETE", f"/v1/secrets/{secret}")

    def create_snapshot(self, env: str, name: str | None = None) -> dict[str, Any]:
        """Snapshot the root layer and /workspace (202: `creating`, then `ready`)."""
        body = {"name": name} if name else {}
        return dict(self.request("POST", f"/v1/environments/{env}/snapshots", json=body))

    def list_snapshots(self, env: str | None = None) -> dict[str, Any]:
        path = f"/v1/environments/{env}/snapshots" if env else "/v1/snapshots"
        return dict(self.request("GET", path))

    def get_snapshot(self, snapshot: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/snapshots/{snapshot}"))

    def wait_snapshot(self, snapshot: str, *, timeout: float = 600) -> dict[str, Any]:
        """Poll until the snapshot is `ready` (returned) or `failed` (ApiError)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.get_snapshot(snapshot)
            if found["state"] == "ready":
                return found
            if found["state"] == "failed":
                message = found.get("error") or "snapshot failed"
                raise SnapshotFailedError(409, "snapshot_failed", message)
            if time.monotonic() > deadline:
                raise WaitTimeoutError(
                    408, "timeout_error", f"snapshot {snapshot} is still {found['state']}"
                )
            time.sleep(0.2)

    def delete_snapshot(self, snapshot: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/v1/snapshots/{snapshot}"))

    def fork(
        self,
        env: str,
        count: int = 1,
        *,
        name_prefix: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """`count` new environments from a live snapshot of `env` (which keeps running)."""
        body: dict[str, Any] = {"count": count}
        if name_prefix:
            body["name_prefix"] = name_prefix
        if labels:
            body["labels"] = labels
        return dict(self.request("POST", f"/v1/environments/{env}/fork", json=body))

    def keepalive(self, env: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/environments/{env}/keepalive"))

    def delete(self, env: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/v1/environments/{env}"))

    def wait(self, env: str, state: str, *, timeout: float = 60) -> dict[str, Any]:
        return dict(
            self.request(
                "GET",
                f"/v1/environments/{env}/wait",
                params={"state": state, "timeout": timeout},
                timeout=timeout + 10,
            )
        )

    def environment_events(self, env: str, *, after: int | None = None) -> dict[str, Any]:
        params = {"after": after} if after is not None else {}
        return dict(self.request("GET", f"/v1/environments/{env}/events", params=params))

    def follow_events(
        self, env: str | None = None, *, after: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events as they happen (server-sent events); resumes after `after`."""
        path = f"/v1/environments/{env}/events" if env else "/v1/events"
        params: dict[str, Any] = {"follow": True}
        if after is not None:
            params["after"] = after
        for _, data in self._sse("GET", path, params=params):
            yield data

    # ---- inside an environment -----------------------------------------------------------

    def exec(
        self,
        env: str,
        command: list[str] | str,
        *,
        cwd: str | None = None,
        env_vars: dict[str, str] | None = None,
        user: str | None = None,
        timeout: float | None = None,
        stdin: str | None = None,
    ) -> dict[str, Any]:
        """Run to completion: {exit_code, stdout, stderr, timed_out, duration_ms, …}."""
        body = _exec_body(command, cwd, env_vars, user, timeout, stdin)
        wait = (timeout or 600) + 30
        return dict(self.request("POST", f"/v1/environments/{env}/exec", json=body, timeout=wait))

    def exec_stream(
        self, env: str, command: list[str] | str, **options: Any
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event, data) as produced: ("stdout"|"stderr", {"data"}), then ("exit", {…})."""
        body = _exec_body(
            command,
            options.get("cwd"),
            options.get("env_vars"),
            options.get("user"),
            options.get("timeout"),
            options.get("stdin"),
        )
        yield from self._sse("POST", f"/v1/environments/{env}/exec/stream", json=body)

    def start_process(self, env: str, command: list[str] | str, **fields: Any) -> dict[str, Any]:
        body = {"command": command, **fields}
        return dict(self.request("POST", f"/v1/environments/{env}/processes", json=body))

    def process_output(self, env: str, process_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/environments/{env}/processes/{process_id}/output"))

    def kill_process(self, env: str, process_id: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/v1/environments/{env}/processes/{process_id}"))

    def upload(self, env: str, path: str, data: bytes | BinaryIO) -> dict[str, Any]:
        """Upload bytes or a file object (streamed) to `path`."""
        return dict(
            self.request(
                "PUT",
                f"/v1/environments/{env}/files",
                params={"path": path},
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
        )

    def download(self, env: str, path: str, into: BinaryIO) -> int:
        """Stream a file into `into`; returns the bytes written."""
        written = 0
        with self._http.stream(
            "GET", f"/v1/environments/{env}/files", params={"path": path}
        ) as response:
            if response.status_code >= 400:
                response.read()
                self._raise(response)
            for chunk in response.iter_bytes():
                into.write(chunk)
                written += len(chunk)
        return written

    def list_files(self, env: str, path: str = "/workspace") -> list[dict[str, Any]]:
        params = {"path": path}
        return list(
            self.request("GET", f"/v1/environments/{env}/files/list", params=params)["data"]
        )

    def logs(self, env: str, *, tail: int | None = None) -> str:
        params = {"tail": tail} if tail is not None else {}
        response = self._http.get(f"/v1/environments/{env}/logs", params=params)
        if response.status_code >= 400:
            self._raise(response)
        return response.text

    def metrics(self, env: str, *, since: str | None = None) -> dict[str, Any]:
        params = {"since": since} if since else {}
        return dict(self.request("GET", f"/v1/environments/{env}/metrics", params=params))

    # ---- access from outside ----------------------------------------------------------

    def update_environment(self, env: str, **fields: Any) -> dict[str, Any]:
        """PATCH fields (labels, policies, `public`, `network_block_all`, …)."""
        return dict(self.request("PATCH", f"/v1/environments/{env}", json=fields))

    def ssh_credentials(self, env: str, *, expires_in: float | None = None) -> dict[str, Any]:
        """A new short-lived SSH credential (shown once)."""
        params = {"expires_in": expires_in} if expires_in is not None else None
        return dict(self.request("GET", f"/v1/environments/{env}/ssh", params=params))

    def revoke_ssh_credential(self, env: str, credential_id: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/v1/environments/{env}/ssh/{credential_id}"))

    def preview_link(self, env: str, port: int) -> dict[str, Any]:
        """The preview URLs of a port (with a token when the environment is private)."""
        return dict(self.request("GET", f"/v1/environments/{env}/preview/{port}"))

    def _raise(self, response: httpx.Response) -> NoReturn:
        """The `ApiError` subclass of the envelope's type (the body must be read)."""
        raise error_from_response(response)

    def _sse(self, method: str, path: str, **kwargs: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._http.stream(method, path, timeout=None, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                self._raise(response)
            event, data = "message", list[str]()
            for line in response.iter_lines():
                if not line:
                    if data:
                        yield event, json.loads("\n".join(data))
                    event, data = "message", []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))

    # ---- keys and organizations --------------------------------------------------------

    def create_key(
        self,
        name: str,
        *,
        permissions: list[str] | None = None,
        environment_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "permissions": permissions}
        if environment_ids is not None:
            body["environment_ids"] = environment_ids
        return dict(self.request("POST", "/v1/keys", json=body))

    def list_keys(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/keys")["data"])

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/v1/keys/{key_id}"))

    def create_org(self, name: str) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/orgs", json={"name": name}))

    # ---- work items (self-hosted environments) -----------------------------------------

    @staticmethod
    def _worker(worker_id: str | None) -> dict[str, str]:
        return {"Worker-ID": worker_id} if worker_id else {}

    def create_work(
        self,
        env: str,
        *,
        data: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        **policy: Any,
    ) -> dict[str, Any]:
        """Queue a work item; `policy` may set `on_lease_expired` and `max_attempts`."""
        body = {"data": data or {}, "metadata": metadata or {}, **policy}
        return dict(self.request("POST", f"/v1/environments/{env}/work", json=body))

    def list_work(
        self,
        env: str,
        *,
        state: list[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        params = _page(limit, state=state, cursor=cursor)
        return dict(self.request("GET", f"/v1/environments/{env}/work", params=params))

    def get_work(self, env: str, work_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/environments/{env}/work/{work_id}"))

    def update_work_metadata(
        self, env: str, work_id: str, metadata: dict[str, str | None]
    ) -> dict[str, Any]:
        path = f"/v1/environments/{env}/work/{work_id}"
        return dict(self.request("PATCH", path, json={"metadata": metadata}))

    def poll_work(
        self,
        env: str,
        *,
        worker_id: str | None = None,
        block_ms: int | None = None,
        reclaim_older_than_ms: int | None = None,
    ) -> dict[str, Any] | None:
        """One delivered (still queued) item, or None when there is none in time."""
        params: dict[str, Any] = {}
        if block_ms:
            params["block_ms"] = block_ms
        if reclaim_older_than_ms is not None:
            params["reclaim_older_than_ms"] = reclaim_older_than_ms
        item = self.request(
            "GET",
            f"/v1/environments/{env}/work/poll",
            params=params,
            headers=self._worker(worker_id),
            timeout=(block_ms or 0) / 1000 + 30,
        )
        return dict(item) if item is not None else None

    def ack_work(self, env: str, work_id: str, *, worker_id: str | None = None) -> dict[str, Any]:
        path = f"/v1/environments/{env}/work/{work_id}/ack"
        return dict(self.request("POST", path, headers=self._worker(worker_id)))

    def heartbeat_work(
        self,
        env: str,
        work_id: str,
        *,
        expected_last_heartbeat: str | None = None,
        desired_ttl_seconds: int | None = None,
        worker_id: str | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if expected_last_heartbeat is not None:
            params["expected_last_heartbeat"] = expected_last_heartbeat
        if desired_ttl_seconds is not None:
            params["desired_ttl_seconds"] = desired_ttl_seconds
        path = f"/v1/environments/{env}/work/{work_id}/heartbeat"
        return dict(self.request("POST", path, params=params, headers=self._worker(worker_id)))

    def stop_work(self, env: str, work_id: str, *, force: bool = False) -> dict[str, Any]:
        path = f"/v1/environments/{env}/work/{work_id}/stop"
        return dict(self.request("POST", path, json={"force": force}))

    def work_stats(self, env: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/environments/{env}/work/stats"))

    def work_events(self, env: str, work_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/environments/{env}/work/{work_id}/events"))
