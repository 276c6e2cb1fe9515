"""Client for the native API. Answers are plain dicts (the JSON as sent); errors
become `ApiError` with the envelope's type and message."""

from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(f"{status} {error_type}: {message}")
        self.status = status
        self.type = error_type
        self.message = message


class Client:
    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 30.0) -> None:
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
            raise ApiError(0, "connection_error", f"{self._http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                raise ApiError(response.status_code, err["type"], err["message"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(response.status_code, "api_error", response.text[:500]) from None
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
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        if label:
            params["label"] = label
        if cursor:
            params["cursor"] = cursor
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
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        if cursor:
            params["cursor"] = cursor
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
