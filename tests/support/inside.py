"""Helpers for tests inside environments: exec, server-sent events, memory watch."""

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from tests.support.server import LiveServer

#: What a metrics sample (`ResourceMetrics`) carries at the least.
METRIC_FIELDS = frozenset(
    {
        "timestamp",
        "online",
        "uptime_seconds",
        "cpu_percent",
        "memory_bytes",
        "memory_limit_bytes",
        "network_rx_bytes",
        "network_tx_bytes",
        "pids",
    }
)


def run(api: httpx.Client, target: str, command: list[str] | str, **fields: Any) -> dict[str, Any]:
    response = api.post(f"/v1/environments/{target}/exec", json={"command": command, **fields})
    assert response.status_code == 200, response.text
    return dict(response.json())


def sh(api: httpx.Client, env: str, command: str) -> str:
    """Run a shell command that must succeed; its stdout."""
    result = run(api, env, command)
    assert result["exit_code"] == 0, result
    return str(result["stdout"])


def sse_events(response: httpx.Response) -> Iterator[tuple[str | None, str | None, Any]]:
    """(event, id, data as JSON) of a server-sent event stream, as they arrive."""
    event: str | None = None
    event_id: str | None = None
    data: list[str] = []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if data:
                yield event, event_id, json.loads("\n".join(data))
            event, event_id, data = None, None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


class PeakRss:
    """Samples the server's resident memory in the background; `growth` is the peak
    over the baseline taken at start."""

    def __init__(self, server: LiveServer, period: float = 0.05) -> None:
        self._server = server
        self._period = period
        self._stop = threading.Event()
        self.baseline = server.rss_bytes()
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(self._period):
            self.peak = max(self.peak, self._server.rss_bytes())

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._server.rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline
