"""Cost of the metrics collector with N running environments (default 200).

Starts a real server, creates N small environments, waits until all run, then
measures the server's CPU time (utime+stime from /proc) over a window with the
collector sampling every `--interval` seconds, and over the same window on a second
server on the same database with the collector off. Also reports the engine's
(dockerd's) CPU over each window. Cleans everything up.

    .venv/bin/python bench/metrics_collector.py --envs 200 --interval 10 --window 60
"""

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.server import LiveServer, new_server, remove_engine_objects

from bench.harness import cpu_seconds


def dockerd_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "dockerd":
                    return int(entry.name)
            except OSError:
                continue
    return None


def window(live: LiveServer, seconds: float) -> tuple[float, float]:
    assert live.proc is not None
    engine = dockerd_pid()
    s0, d0 = cpu_seconds(live.proc.pid), cpu_seconds(engine) if engine else 0.0
    time.sleep(seconds)
    s1, d1 = cpu_seconds(live.proc.pid), cpu_seconds(engine) if engine else 0.0
    return s1 - s0, d1 - d0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--api", action="store_true", help="engine stats API, not cgroup files")
    args = parser.parse_args()
    base = Path("/tmp/sandbay-bench")
    base.mkdir(exist_ok=True)
    live = new_server(
        base,
        extra_env={
            "SANDBAY_METRICS_INTERVAL": "0",
            "SANDBAY_RECONCILE_INTERVAL": "1",
            "SANDBAY_LOG_LEVEL": "warning",
        },
    ).start()
    try:
        with live.client() as api:
            for i in range(args.envs):
                r = api.post(
                    "/v1/environments", json={"name": f"b{i}", "memory_mb": 64, "cpu": 0.1}
                )
                assert r.status_code == 201, r.text
            t0 = time.monotonic()
            while True:
                states = [
                    e["state"]
                    for e in api.get("/v1/environments", params={"limit": 1000}).json()["data"]
                ]
                if states.count("running") == args.envs:
                    break
                time.sleep(2)
            print(f"{args.envs} environments running after {time.monotonic() - t0:.0f} s")
            time.sleep(30)  # let the engine settle after the starts
            idle_server, idle_engine = window(live, args.window)
        live.stop()
        live.extra_env["SANDBAY_METRICS_INTERVAL"] = str(args.interval)
        live.extra_env["SANDBAY_METRICS_FROM_CGROUPS"] = "false" if args.api else "true"
        live.start()
        time.sleep(args.interval * 2)  # first sweeps learn every container
        busy_server, busy_engine = window(live, args.window)
        with live.client() as api:
            env = api.get("/v1/environments/b0").json()
            print("sample:", env["metrics"])
        sweeps = args.window / args.interval
        mode = "engine stats API" if args.api else "cgroup files"
        print(
            f"collector ({mode}), {args.envs} envs, interval {args.interval:g} s, "
            f"window {args.window:g} s:"
        )
        print(
            f"  server CPU: {busy_server:.2f} s with collector vs {idle_server:.2f} s without "
            f"-> {(busy_server - idle_server) / sweeps * 1000:.0f} ms per sweep, "
            f"{(busy_server - idle_server) / args.window * 100:.2f}% of one core"
        )
        print(
            f"  dockerd CPU: {busy_engine:.2f} s vs {idle_engine:.2f} s "
            f"-> {(busy_engine - idle_engine) / sweeps * 1000:.0f} ms per sweep"
        )
    finally:
        live.stop()
        remove_engine_objects(live.instance)
        httpx.Client().close()


if __name__ == "__main__":
    main()
