"""Each operation, measured on sandbay (through its API, until the state is
observed) and on raw Docker doing the same engine work, in the same run."""

import io
import os
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.harness import Api, RawDocker, Samples, cpu_seconds, rss_kb, timed, wrk

Pair = dict[str, Any]


def lifecycle(api: Api, raw: RawDocker, n: int) -> dict[str, Pair]:
    """create→running, graceful stop, start, force stop, restart, delete."""
    names = ["create", "stop_graceful", "start", "stop_force", "restart", "delete"]
    ours = {k: Samples() for k in names}
    base = {k: Samples() for k in names}
    for _ in range(n):
        env: dict[str, Any] = {}

        def create() -> None:
            env.update(api.create())
            api.wait(env["id"], "running")

        ours["create"].add(timed(create))
        eid = env["id"]
        path = f"/v1/environments/{eid}"
        ours["stop_graceful"].add(
            timed(lambda: (api.post(f"{path}/stop"), api.wait(eid, "stopped")))
        )
        ours["start"].add(timed(lambda: (api.post(f"{path}/start"), api.wait(eid, "running"))))
        ours["stop_force"].add(
            timed(lambda: (api.post(f"{path}/stop", {"force": True}), api.wait(eid, "stopped")))
        )
        api.post(f"{path}/start")
        api.wait(eid, "running")
        ours["restart"].add(timed(lambda: (api.post(f"{path}/restart"), api.wait(eid, "running"))))
        ours["delete"].add(timed(lambda: api.delete(eid)))

        box: dict[str, str] = {}
        base["create"].add(timed(lambda: box.update(name=raw.run())))
        name = box["name"]
        base["stop_graceful"].add(timed(lambda: raw.api.stop(name, timeout=10)))
        base["start"].add(timed(lambda: raw.api.start(name)))
        base["stop_force"].add(timed(lambda: (raw.api.kill(name), raw.api.wait(name))))
        raw.api.start(name)
        base["restart"].add(timed(lambda: raw.api.restart(name, timeout=10)))
        base["delete"].add(timed(lambda: raw.remove(name)))
    return {k: {"sandbay": ours[k], "baseline": base[k]} for k in names}


def exec_true(api: Api, raw: RawDocker, n: int) -> Pair:
    env = api.create()
    api.wait(env["id"], "running")
    ours, base = Samples(), Samples()
    path = f"/v1/environments/{env['id']}/exec"
    name = raw.run()
    container = raw.client.containers.get(name)
    for _ in range(n):
        ours.add(timed(lambda: api.http.post(path, json={"command": ["true"]}).raise_for_status()))
        base.add(timed(lambda: container.exec_run(["true"])))  # create, start, inspect
    api.delete(env["id"])
    raw.remove(name)
    return {"sandbay": ours, "baseline": base}


def _tar_of(data: bytes, name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def files(api: Api, raw: RawDocker, n: int, size_mb: int) -> dict[str, Pair]:
    data = os.urandom(size_mb * 1024 * 1024)
    env = api.create()
    api.wait(env["id"], "running")
    name = raw.run()
    url = f"/v1/environments/{env['id']}/files"
    out = {"upload": (Samples(), Samples()), "download": (Samples(), Samples())}
    where = {"path": "/workspace/f"}
    for _ in range(n):
        out["upload"][0].add(
            timed(lambda: api.http.put(url, params=where, content=data).raise_for_status())
        )
        out["download"][0].add(
            timed(lambda: api.http.get(url, params={"path": "/workspace/f"}).raise_for_status())
        )
        out["upload"][1].add(
            timed(lambda: raw.api.put_archive(name, "/workspace", _tar_of(data, "f")))
        )
        out["download"][1].add(
            timed(lambda: b"".join(raw.api.get_archive(name, "/workspace/f")[0]))
        )
    api.delete(env["id"])
    raw.remove(name)
    return {k: {"sandbay": v[0], "baseline": v[1]} for k, v in out.items()}


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
        "sandbay": ours,
        "baseline": base,
        "sandbay_per_s": count / ours_wall,
        "baseline_per_s": count / raw_wall,
    }


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


def idle_footprint(api: Api, counts: list[int], settle: float) -> dict[str, Any]:
    """Server RSS with N idle running environments, and its CPU while they idle
    (the metrics collector, the reconciler's sweeps and policies all included)."""
    pid = api.server.proc.pid if api.server.proc else 0
    made: list[str] = []
    out: dict[str, Any] = {"rss_kb": {}, "cpu_percent": {}}
    for count in counts:
        with ThreadPoolExecutor(max_workers=16) as pool:
            new = list(pool.map(lambda _: api.create(memory_mb=64)["id"], range(count - len(made))))
            list(pool.map(lambda e: api.wait(e, "running"), new))
        made += new
        time.sleep(settle)
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        time.sleep(settle)
        out["cpu_percent"][count] = 100 * (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
        out["rss_kb"][count] = rss_kb(pid)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(api.delete, made))
    return out


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
