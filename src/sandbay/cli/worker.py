"""The reference worker (`sandbay worker --environment env_… -- COMMAND [ARGS…]`): polls
a self-hosted environment for work items, acknowledges one, runs COMMAND for it
(the item in its environment variables), heartbeats while it runs, drains on a
graceful stop (SIGTERM to the command, wait, confirm) and kills the command at
once on a force stop or when its lease was lost. Only the SDK is used.

Environment of COMMAND: SANDBAY_WORK_ID, SANDBAY_WORK_DATA (JSON),
SANDBAY_WORK_METADATA (JSON), SANDBAY_WORK_ATTEMPT, SANDBAY_ENVIRONMENT_ID,
SANDBAY_WORKER_ID, and the worker's own environment minus SANDBAY_API_KEY.

Signals to the worker: the first SIGTERM/SIGINT lets the running item finish and
takes no more; a second one kills the command and exits (the item's lease then
expires and its policy applies)."""

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sandbay.sdk import ApiError, Client

log = logging.getLogger("sandbay.worker")

_PR_SET_PDEATHSIG = 1
_RETRY_SECONDS = 1.0
_CANNOT_RUN = 127  # the shell's exit status for "command not found"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    environment: str
    command: list[str]
    worker_id: str
    ttl: int = 30
    heartbeat_interval: float = 5.0
    block_ms: int = 5000


class Ending(Enum):
    """How one item ended for this worker."""

    DONE = "done"  # the command exited; the item was stopped (drained or completed)
    LOST = "lost"  # force-stopped, or the lease went to another worker: command killed
    ABORTED = "aborted"  # the worker itself was told to quit at once


def _die_with_parent(parent: int) -> None:
    """In the child before exec: the kernel SIGKILLs the command if the worker dies
    (kill -9 included), so an orphaned command never finishes an item that has been
    re-queued to another worker."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(1)


def _signal_group(proc: "subprocess.Popen[bytes]", sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class Worker:
    def __init__(self, client: Client, config: WorkerConfig) -> None:
        self.client = client
        self.config = config
        self._draining = False
        self._abort = False

    # ---- shutdown ------------------------------------------------------------------

    def request_shutdown(self, *_args: object) -> None:
        """First call: finish the current item, take no more. Second: quit at once."""
        if self._draining:
            self._abort = True
            log.warning("second signal: killing the running command and exiting")
        else:
            self._draining = True
            log.info("shutting down after the current item (signal again to quit now)")

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_shutdown)
        signal.signal(signal.SIGINT, self.request_shutdown)

    # ---- the loop ------------------------------------------------------------------

    def run(self) -> int:
        """Take items until told to stop; 0 after a graceful shutdown, 1 after an abort."""
        cfg = self.config
        log.info("worker %s polling %s", cfg.worker_id, cfg.environment)
        while not self._draining:
            try:
                item = self.client.poll_work(
                    cfg.environment, worker_id=cfg.worker_id, block_ms=cfg.block_ms
                )
            except ApiError as exc:
                if exc.status in (401, 403, 404) or exc.type == "invalid_request_error":
                    log.error("cannot poll: %s", exc)
                    return 1
                log.warning("poll failed (%s); retrying", exc)
                time.sleep(_RETRY_SECONDS)
                continue
            if item is None or self._draining:
                continue  # undelivered items come back after the redelivery window
            if self.take(item) is Ending.ABORTED:
                return 1
        return 0

    def take(self, item: dict[str, Any]) -> Ending | None:
        """Acknowledge, start with a first heartbeat, run and supervise one item.
        None when the item was not ours to take (another worker, or stopped)."""
        cfg, work_id = self.config, item["id"]
        try:
            item = self.client.ack_work(cfg.environment, work_id, worker_id=cfg.worker_id)
            beat = self.client.heartbeat_work(
                cfg.environment,
                work_id,
                expected_last_heartbeat="NO_HEARTBEAT",
                desired_ttl_seconds=cfg.ttl,
                worker_id=cfg.worker_id,
            )
        except ApiError as exc:
            log.info("%s: not taken (%s)", work_id, exc)
            return None
        if beat["state"] == "stopping":  # stopped while we were acknowledging it
            self._finish(work_id, exit_code=None)
            return Ending.DONE
        try:
            proc = self._spawn(item)
        except OSError as exc:  # e.g. no such command: the item fails, the worker carries on
            log.error("%s: cannot run %s: %s", work_id, cfg.command[0], exc)
            self._finish(work_id, exit_code=_CANNOT_RUN)
            return Ending.DONE
        log.info("%s: running (pid %d)", work_id, proc.pid)
        return self._supervise(work_id, proc, beat["last_heartbeat"])

    def _spawn(self, item: dict[str, Any]) -> "subprocess.Popen[bytes]":
        env = {k: v for k, v in os.environ.items() if k != "SANDBAY_API_KEY"}
        env.update(
            SANDBAY_WORK_ID=item["id"],
            SANDBAY_WORK_DATA=json.dumps(item["data"]),
            SANDBAY_WORK_METADATA=json.dumps(item["metadata"]),
            SANDBAY_WORK_ATTEMPT=str(item.get("attempts", 1)),
            SANDBAY_ENVIRONMENT_ID=item["environment_id"],
            SANDBAY_WORKER_ID=self.config.worker_id,
        )
        parent = os.getpid()
        return subprocess.Popen(
            self.config.command,
            env=env,
            start_new_session=True,  # signals reach the command's whole process group
            preexec_fn=lambda: _die_with_parent(parent),
        )

    def _supervise(self, work_id: str, proc: "subprocess.Popen[bytes]", last: str | None) -> Ending:
        """Heartbeat until the command exits. `stopping` → SIGTERM (drain) and keep
        heartbeating; stopped (409), lease lost (412) or gone (404) → SIGKILL."""
        cfg, drain_sent = self.config, False
        while True:
            try:
                code = proc.wait(timeout=cfg.heartbeat_interval)
                break
            except subprocess.TimeoutExpired:
                pass
            if self._abort:
                self._kill(proc)
                return Ending.ABORTED
            try:
                beat = self.client.heartbeat_work(
                    cfg.environment,
                    work_id,
                    expected_last_heartbeat=last,
                    desired_ttl_seconds=cfg.ttl,
                    worker_id=cfg.worker_id,
                )
            except ApiError as exc:
                if exc.status in (404, 409, 412):
                    log.warning("%s: %s; killing the command", work_id, exc.message)
                    self._kill(proc)
                    return Ending.LOST
                # Our heartbeat may have landed without us seeing the answer: the next
                # one is unconditional, still guarded by the Worker-ID.
                log.warning("%s: heartbeat failed (%s)", work_id, exc)
                last = None
                continue
            last = beat["last_heartbeat"]
            if beat["state"] == "stopping" and not drain_sent:
                log.info("%s: graceful stop requested; SIGTERM to the command", work_id)
                _signal_group(proc, signal.SIGTERM)
                drain_sent = True
        self._finish(work_id, exit_code=code)
        return Ending.DONE

    def _kill(self, proc: "subprocess.Popen[bytes]") -> None:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()

    def _finish(self, work_id: str, *, exit_code: int | None) -> None:
        """Record the exit code, then stop: a drained item is `stopping` and one call
        confirms it; a completed one takes the request and the confirmation."""
        env = self.config.environment
        for _ in range(30):
            try:
                if exit_code is not None:
                    self.client.update_work_metadata(env, work_id, {"exit_code": str(exit_code)})
                    exit_code = None
                state = self.client.stop_work(env, work_id)["state"]
                if state != "stopped":
                    state = self.client.stop_work(env, work_id)["state"]
                log.info("%s: %s", work_id, state)
                return
            except ApiError as exc:
                if exc.status in (400, 401, 403, 404, 409):
                    log.warning("%s: cannot stop (%s)", work_id, exc)
                    return
                time.sleep(_RETRY_SECONDS)
        log.error("%s: gave up stopping it; its lease will expire", work_id)


def default_worker_id() -> str:
    return f"{os.uname().nodename}-{os.getpid()}"


def run_worker(api_url: str, api_key: str | None, config: WorkerConfig) -> int:
    """Entry point of `sandbay worker`."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", force=True
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    with Client(api_url, api_key) as client:
        worker = Worker(client, config)
        worker.install_signal_handlers()
        return worker.run()
