"""Each operation, measured on sandbay (through its API, until the state is
observed) and on raw Docker doing the same engine work, in the same run.

A pair is `{"sandbay": Samples, "baseline": Samples, "baseline_name": str}` and may
add `metrics` / `baseline_metrics` (figures beside the latencies, same keys on both
sides where both have one)."""

import json
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    Api,
    Container,
    RawDocker,
    Samples,
    cpu_seconds,
    private_kb,
    rss_kb,
    timed,
    wrk,
)
from sandbay.runtime.docker.names import container_name

Pair = dict[str, Any]
DOCKER_RUN = "docker run -d"
DOCKER_EXEC = "docker exec"


# ---- raw sockets: the agent's wire (docs/envd.md) and plain HTTP, nothing in between


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv(sock: socket.socket, buf: bytearray, size: int) -> None:
    """Read until `buf` holds at least `size` bytes."""
    while len(buf) < size:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-answer")
        buf += chunk


def _head(sock: socket.socket) -> tuple[int, bytearray]:
    """An HTTP answer's status, and whatever was read past its head."""
    buf = bytearray()
    while (end := buf.find(b"\r\n\r\n")) < 0:
        _recv(sock, buf, len(buf) + 1)
    status = int(bytes(buf[:end]).split(b" ", 2)[1])
    return status, buf[end + 4 :]


def _request(method: str, target: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def agent_exec(box: Container, argv: list[str]) -> int:
    """POST /v1/processes (upgrade) on a new connection, frames read to the exit frame."""
    body = json.dumps({"argv": argv}).encode()
    headers = {"Host": "envd", "Authorization": f"Bearer {box.token}", "Connection": "Upgrade",
               "Upgrade": "sandbay-stream", "Content-Type": "application/json"}  # fmt: skip
    with _connect(box.agent) as sock:
        sock.sendall(_request("POST", "/v1/processes", headers, body))
        status, buf = _head(sock)
        if status != 101:
            raise RuntimeError(f"the agent answered {status} to a process start")
        while True:
            _recv(sock, buf, 5)
            kind, size = buf[0], int.from_bytes(buf[1:5], "big")
            _recv(sock, buf, 5 + size)
            payload = bytes(buf[5 : 5 + size])
            del buf[: 5 + size]
            if kind == 3:  # exit, always last
                return int(json.loads(payload)["exit_code"])


def agent_healthy(box: Container) -> bool:
    """One GET /v1/health, no retry: does the agent answer right now?"""
    headers = {"Host": "envd", "Authorization": f"Bearer {box.token}", "Connection": "close"}
    try:
        with _connect(box.agent) as sock:
            sock.sendall(_request("GET", "/v1/health", headers))
            return _head(sock)[0] == 200
    except OSError:
        return False


def http_get_new_connection(address: tuple[str, int], path: str) -> int:
    """GET on a fresh TCP connection (`Connection: close`), the answer read to the end."""
    with _connect(address) as sock:
        sock.sendall(_request("GET", path, {"Host": f"{address[0]}:{address[1]}",
                                            "Connection": "close"}))  # fmt: skip
        status, _ = _head(sock)
        while sock.recv(65536):
            pass
    return status


def lifecycle(api: Api, raw: RawDocker, n: int) -> dict[str, Pair]:
    """create→running, graceful stop, start, force stop, restart, delete."""
    names = ["create", "stop_graceful", "start", "stop_force", "restart", "delete"]
    ours = {k: Samples() for k in names}
    base = {k: Samples() for k in names}
    unready = 0
    for _ in range(n):
        env: dict[str, Any] = {}

        def create() -> None:
            env.update(api.create())
            api.wait(env["id"], "running")

        ours["create"].add(timed(create))
        eid = env["id"]
        # `running` is recorded only once the agent answers: one health call, at once
        # (after the one inspect that finds its address and token), must succeed.
        unready += not agent_healthy(raw.inspect(container_name(eid)))
        ours["stop_graceful"].add(timed(_act(api, eid, "stop", "stopped")))
        ours["start"].add(timed(_act(api, eid, "start", "running")))
        ours["stop_force"].add(timed(_act(api, eid, "stop", "stopped", {"force": True})))
        _act(api, eid, "start", "running")()
        ours["restart"].add(timed(_act(api, eid, "restart", "running")))
        ours["delete"].add(timed(lambda: api.delete(eid)))

        box: dict[str, str] = {}
        base["create"].add(timed(lambda: box.update(name=raw.run())))
        name = box["name"]
        base["stop_graceful"].add(timed(lambda: raw.api.stop(name, timeout=10)))
        base["start"].add(timed(lambda: raw.api.start(name)))
        base["stop_force"].add(timed(lambda: raw.kill(name)))
        raw.api.start(name)
        base["restart"].add(timed(lambda: raw.api.restart(name, timeout=10)))
        base["delete"].add(timed(lambda: raw.remove(name)))
    engine = {
        "create": DOCKER_RUN,
        "stop_graceful": "docker stop",
        "start": "docker start",
        "stop_force": "docker kill",
        "restart": "docker restart",
        "delete": "docker rm -f, volume rm",
    }
    pairs = {k: {"sandbay": ours[k], "baseline": base[k], "baseline_name": engine[k]}
             for k in names}  # fmt: skip
    pairs["create"]["metrics"] = {"agent_checks_at_running": n, "agent_unready_at_running": unready}
    return pairs


def _act(api: Api, env_id: str, verb: str, state: str, body: Any = None) -> Callable[[], None]:
    """POST …/{verb}, then wait for `state`."""

    def act() -> None:
        api.post(f"/v1/environments/{env_id}/{verb}", body)
        api.wait(env_id, state)

    return act


def exec_true(api: Api, raw: RawDocker, n: int) -> dict[str, Pair]:
    """`true` through the API, straight to the agent on a new connection, and by
    `docker exec` (create, start, inspect), interleaved."""
    env = api.create()
    api.wait(env["id"], "running")
    box = raw.inspect(container_name(env["id"]))
    ours, direct, base = Samples(), Samples(), Samples()
    name = raw.run()
    via_api, via_docker = _true_via_api(api, env["id"]), _true_via_docker(raw, name)

    def via_agent() -> None:
        assert agent_exec(box, ["true"]) == 0

    for fn in (via_api, via_agent, via_docker):  # the first call of each is not measured
        fn()
    for _ in range(n):
        ours.add(timed(via_api))
        direct.add(timed(via_agent))
        base.add(timed(via_docker))
    api.delete(env["id"])
    raw.remove(name)
    return {
        "exec_true": {"sandbay": ours, "baseline": base, "baseline_name": DOCKER_EXEC,
                      "metrics": {"agent_direct_p50_ms": direct.pct(50)}},
        "exec_true_direct_agent": {"sandbay": direct, "baseline": base,
                                   "baseline_name": DOCKER_EXEC},
    }  # fmt: skip


def _true_via_api(api: Api, env_id: str) -> Callable[[], None]:
    """`true` run in the environment through the exec API."""
    path = f"/v1/environments/{env_id}/exec"

    def run() -> None:
        answer = api.http.post(path, json={"command": ["true"]})
        answer.raise_for_status()
        assert answer.json()["exit_code"] == 0, answer.text

    return run


def _true_via_docker(raw: RawDocker, name: str) -> Callable[[], None]:
    """`true` run in the raw container by `docker exec`."""
    container = raw.client.containers.get(name)

    def run() -> None:
        assert container.exec_run(["true"]).exit_code == 0

    return run


def exec_concurrent(api: Api, raw: RawDocker, execs: int, envs: int) -> Pair:
    """`execs` execs of `true` at once (threads released together), spread over
    `envs` environments through the API client, and as many `docker exec` over as
    many containers: errors, each one's latency, and the burst's throughput."""
    with ThreadPoolExecutor(max_workers=envs) as pool:
        ids = [str(e["id"]) for e in pool.map(lambda _: api.create(), range(envs))]
        list(pool.map(lambda e: api.wait(e, "running"), ids))
        names = list(pool.map(lambda _: raw.run(), range(envs)))
    containers = [raw.client.containers.get(name) for name in names]

    def via_api(i: int) -> bool:
        try:
            answer = api.http.post(
                f"/v1/environments/{ids[i % envs]}/exec", json={"command": ["true"]}
            )
            return answer.status_code == 200 and answer.json()["exit_code"] == 0
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    def via_docker(i: int) -> bool:
        try:
            return containers[i % envs].exec_run(["true"]).exit_code == 0
        except Exception:  # any failure is one error, counted
            return False

    ours, base = Samples(), Samples()
    for i in range(envs):  # each environment once before the burst (its agent located)
        via_api(i)
        via_docker(i)
    ours_errors, ours_per_s = _burst(via_api, execs, ours)
    base_errors, base_per_s = _burst(via_docker, execs, base)
    with ThreadPoolExecutor(max_workers=envs) as pool:
        list(pool.map(api.delete, ids))
        list(pool.map(raw.remove, names))
    return {
        "sandbay": ours, "baseline": base, "baseline_name": DOCKER_EXEC,
        "metrics": {"errors": ours_errors, "per_s": ours_per_s,
                    "throughput_ratio": ours_per_s / base_per_s},
        "baseline_metrics": {"errors": base_errors, "per_s": base_per_s},
    }  # fmt: skip


def _burst(call: Callable[[int], bool], count: int, samples: Samples) -> tuple[int, float]:
    """`count` calls at once: (failures, calls per second from first start to last end)."""
    gate = threading.Barrier(count)
    spans: list[tuple[float, float]] = []

    def one(i: int) -> bool:
        gate.wait()
        start = time.perf_counter()
        ok = call(i)
        end = time.perf_counter()
        samples.add(end - start)
        spans.append((start, end))
        return ok

    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(one, range(count)))
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    return results.count(False), count / wall


def preview_connect(api: Api, raw: RawDocker, n: int) -> Pair:
    """A new connection each time (`Connection: close`, no keep-alive) to a small
    HTTP server in a public environment: through the path-based preview proxy, and
    straight to the same port at the container's address."""
    port = 8000
    env = api.create(command=["python3", "-m", "http.server", str(port)], public=True)
    api.wait(env["id"], "running")
    direct = (raw.inspect(container_name(env["id"])).host, port)
    proxy = ("127.0.0.1", api.server.port)
    path = f"/preview/{env['id']}/{port}/"
    deadline = time.monotonic() + 60
    while True:  # `running` is the agent's; the workload's server listens a moment later
        try:
            if http_get_new_connection(direct, "/") == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the environment's HTTP server never answered")
        time.sleep(0.1)

    def via_proxy() -> None:
        status = http_get_new_connection(proxy, path)
        assert status == 200, f"the preview answered {status}"

    def straight() -> None:
        assert http_get_new_connection(direct, "/") == 200

    via_proxy()
    straight()
    ours, base = Samples(), Samples()
    for _ in range(n):
        ours.add(timed(via_proxy))
        base.add(timed(straight))
    api.delete(env["id"])
    return {
        "sandbay": ours, "baseline": base, "baseline_name": "direct TCP to the port",
        "metrics": {"added_p50_ms": ours.pct(50) - base.pct(50)},
    }  # fmt: skip


def files(api: Api, raw: RawDocker, n: int, size_mb: int) -> dict[str, Pair]:
    """The files API against `docker cp` (the CLI, a file on disk) of as many bytes."""
    data = os.urandom(size_mb * 1024 * 1024)
    env = api.create()
    api.wait(env["id"], "running")
    name = raw.run()
    url = f"/v1/environments/{env['id']}/files"
    out = {"upload": (Samples(), Samples()), "download": (Samples(), Samples())}
    where = {"path": "/workspace/f"}
    with tempfile.TemporaryDirectory(prefix="sandbay-bench-cp-") as tmp:
        source, copied = Path(tmp, "f"), Path(tmp, "out")
        source.write_bytes(data)
        for _ in range(n):
            out["upload"][0].add(
                timed(lambda: api.http.put(url, params=where, content=data).raise_for_status())
            )
            start = time.perf_counter()
            body = api.http.get(url, params=where)
            body.raise_for_status()
            out["download"][0].add(time.perf_counter() - start)
            assert len(body.content) == len(data)
            out["upload"][1].add(timed(lambda: raw.cp(str(source), f"{name}:/workspace/f")))
            copied.unlink(missing_ok=True)
            out["download"][1].add(timed(lambda: raw.cp(f"{name}:/workspace/f", str(copied))))
            assert copied.stat().st_size == len(data)
    api.delete(env["id"])
    raw.remove(name)
    return {k: {"sandbay": v[0], "baseline": v[1], "baseline_name": "docker cp"}
            for k, v in out.items()}  # fmt: skip


def concurrent_creates(api: Api, raw: RawDocker, count: int) -> Pair:
    """`count` creates at once: throughput and each one's latency."""
    ours, base = Samples(), Samples()

    def one_ours(_: int) -> str:
        start = time.perf_counter()
        env = api.create()
        api.wait(env["id"], "running")
        ours.add(time.perf_counter() - start)
        return str(env["id"])

    def one_raw(_: int) -> str:
        start = time.perf_counter()
        name = raw.run()
        base.add(time.perf_counter() - start)
        return name

    with ThreadPoolExecutor(max_workers=count) as pool:
        t0 = time.perf_counter()
        ids = list(pool.map(one_ours, range(count)))
        ours_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        names = list(pool.map(one_raw, range(count)))
        raw_wall = time.perf_counter() - t0
        list(pool.map(api.delete, ids))
        list(pool.map(raw.remove, names))
    return {
        "sandbay": ours, "baseline": base, "baseline_name": DOCKER_RUN,
        "metrics": {"per_s": count / ours_wall, "throughput_ratio": raw_wall / ours_wall},
        "baseline_metrics": {"per_s": count / raw_wall},
    }  # fmt: skip


def http_load(api: Api, seconds: int, list_size: int) -> dict[str, dict[str, float]]:
    """`/healthz`, then GET one environment (4 connections: one worker kept busy without piling up a
    queue) and list `list_size` in one page, and the default page of 100 from as
    many (one client listing, so p99 is the request's own time), with wrk."""
    env = api.create(kind="self_hosted")
    api.wait(env["id"], "running")
    url, key = api.server.url, api.server.key
    # The floor in the same run: a route with no dependencies, no session, no query.
    health = wrk(f"{url}/healthz", key, seconds=seconds, connections=4)
    one = wrk(f"{url}/v1/environments/{env['id']}", key, seconds=seconds, connections=4)
    made = [api.create(kind="self_hosted")["id"] for _ in range(list_size - 1)]
    for env_id in made:  # the reconciler idle again: only the listing is measured
        api.wait(env_id, "running")
    listing = wrk(f"{url}/v1/environments?limit={list_size}", key, seconds=seconds, connections=1)
    page = wrk(f"{url}/v1/environments", key, seconds=seconds, connections=1)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(api.delete, [env["id"], *made]))
    return {"healthz": health, "get": one, "list": listing, "page": page}


def idle_footprint(api: Api, raw: RawDocker, counts: list[int], settle: float) -> dict[str, Any]:
    """With N idle running environments: the server's RSS, and its CPU while they
    idle (the metrics collector, the reconciler's sweeps and policies all included);
    every environment's agent (its PID 1): resident and private memory, and CPU over
    the same window; and the same of PID 1 (docker-init) of as many `docker run -d`
    containers running meanwhile."""
    pid = api.server.proc.pid if api.server.proc else 0
    made: list[str] = []
    names: list[str] = []
    out: dict[str, Any] = {"rss_kb": {}, "cpu_percent": {}, "agents": {}, "docker_init": {}}
    for count in counts:
        with ThreadPoolExecutor(max_workers=16) as pool:
            new = list(pool.map(lambda _: api.create(memory_mb=64)["id"], range(count - len(made))))
            list(pool.map(lambda e: api.wait(e, "running"), new))
            names += pool.map(lambda _: raw.run(), range(count - len(names)))
        made += new
        time.sleep(settle)
        agents = [raw.inspect(container_name(e)).pid for e in made]
        inits = [raw.inspect(name).pid for name in names]
        cpu0, agents0, inits0 = cpu_seconds(pid), _cpu(agents), _cpu(inits)
        t0 = time.perf_counter()
        time.sleep(settle)
        cpu1, agents1, inits1 = cpu_seconds(pid), _cpu(agents), _cpu(inits)
        wall = time.perf_counter() - t0
        out["cpu_percent"][count] = 100 * (cpu1 - cpu0) / wall
        out["rss_kb"][count] = rss_kb(pid)
        for key, pids, before, after in (
            ("agents", agents, agents0, agents1),
            ("docker_init", inits, inits0, inits1),
        ):
            if pids:
                out[key][count] = {
                    "rss_kb": statistics.median(rss_kb(p) for p in pids),
                    "private_kb": statistics.median(private_kb(p) for p in pids),
                    "cpu_percent": 100 * (after - before) / wall,
                }
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(api.delete, made))
        list(pool.map(raw.remove, names))
    return out


def _cpu(pids: list[int]) -> float:
    """CPU seconds of these processes together (their own, not their children's)."""
    return sum(cpu_seconds(p) for p in pids)


def warm_creates(api: Api, n: int) -> Samples:
    """create→running served from a warm pool (waits for a ready member first)."""
    samples = Samples()
    deletes: list[threading.Thread] = []
    for _ in range(n):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pools = api.http.get("/v1/pools").json()
            if pools and pools[0]["ready"] > 0:
                break
            time.sleep(0.1)
        env: dict[str, Any] = {}

        def create() -> None:
            env.update(api.create())
            if env["state"] != "running":  # the pool was empty: built from scratch
                api.wait(env["id"], "running")

        samples.add(timed(create))
        deletes.append(threading.Thread(target=api.delete, args=(env["id"],)))
        deletes[-1].start()
    for thread in deletes:  # the server must outlive its deletes
        thread.join()
    return samples


#: The runtimes compared side by side (issue 16), in this order.
RUNTIMES = ("runc", "runsc")
RUNTIME_OPS = {
    "create": DOCKER_RUN,
    "stop": "docker stop",
    "start": "docker start",
    "delete": "docker rm -f, volume rm",
    "exec": DOCKER_EXEC,
}


def runtimes(api: Api, raw: RawDocker, n: int, names: tuple[str, ...]) -> dict[str, Pair]:
    """create→running, stop, start, delete and exec `true` under each runtime of
    `names` (runc first): through the API, and on raw Docker with the same `--runtime`
    (the engine's own cost of the runtime), the runtimes alternated in one loop. Rows
    `runtime_<op>_<runtime>`; the others than runc's also carry `vs_runc`, their p50
    over runc's (the raw engine's beside it, as `baseline_vs_runc`)."""
    ours = {(op, rt): Samples() for op in RUNTIME_OPS for rt in names}
    base = {(op, rt): Samples() for op in RUNTIME_OPS for rt in names}
    for _ in range(n):
        for rt in names:
            _runtime_round(api, raw, rt, n * 4, ours, base)
    pairs: dict[str, Pair] = {}
    for op, engine in RUNTIME_OPS.items():
        for rt in names:
            pair: Pair = {"sandbay": ours[op, rt], "baseline": base[op, rt],
                          "baseline_name": f"{engine} ({rt})"}  # fmt: skip
            if rt != names[0]:
                first = (op, names[0])
                pair["metrics"] = {"vs_runc": ours[op, rt].pct(50) / ours[first].pct(50)}
                pair["baseline_metrics"] = {"vs_runc": base[op, rt].pct(50) / base[first].pct(50)}
            pairs[f"runtime_{op}_{rt}"] = pair
    return pairs


def _runtime_round(
    api: Api,
    raw: RawDocker,
    runtime: str,
    execs: int,
    ours: dict[tuple[str, str], Samples],
    base: dict[tuple[str, str], Samples],
) -> None:
    """One environment and one raw container under `runtime`, through every op."""
    env: dict[str, Any] = {}

    def create() -> None:
        env.update(api.create(runtime=runtime))
        api.wait(env["id"], "running")

    ours["create", runtime].add(timed(create))
    eid = env["id"]
    ours["stop", runtime].add(timed(_act(api, eid, "stop", "stopped")))
    ours["start", runtime].add(timed(_act(api, eid, "start", "running")))
    box: dict[str, str] = {}
    base["create", runtime].add(timed(lambda: box.update(name=raw.run(runtime=runtime))))
    name = box["name"]
    base["stop", runtime].add(timed(lambda: raw.api.stop(name, timeout=10)))
    base["start", runtime].add(timed(lambda: raw.api.start(name)))
    via_api, via_docker = _true_via_api(api, eid), _true_via_docker(raw, name)

    for fn in (via_api, via_docker):  # the first call of each is not measured
        fn()
    for _ in range(execs):
        ours["exec", runtime].add(timed(via_api))
        base["exec", runtime].add(timed(via_docker))
    ours["delete", runtime].add(timed(lambda: api.delete(eid)))
    base["delete", runtime].add(timed(lambda: raw.remove(name)))
