"""`python -m bench [--quick|--smoke]`: runs the benchmarks, prints a table, writes
bench/results/<timestamp>.json and bench/results/latest.json."""

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import ops
from bench.harness import Api, RawDocker, sandbay_server

RESULTS = Path(__file__).parent / "results"

#: (kind, limit): ratio ≤ limit against raw Docker, or an absolute bound.
TARGETS: dict[str, tuple[str, float]] = {
    "create": ("ratio", 1.15),
    "create_warm_pool": ("abs_p50_ms", 50.0),
    "start": ("ratio", 1.15),
    "stop_graceful": ("ratio", 1.15),
    "stop_force": ("ratio", 1.15),
    "restart": ("ratio", 1.15),
    "delete": ("ratio", 1.15),
    "exec_true": ("ratio", 1.2),
    "concurrent_creates_50": ("throughput_ratio", 0.9),
    "get_environment": ("rps_min", 2000.0),
    "list_1000": ("p99_max_ms", 50.0),
    "rss_per_idle_env": ("kb_max", 100.0),
    "idle_cpu_100_envs": ("percent_max", 5.0),
}

MODES = {
    "smoke": {"n": 2, "files_mb": [1], "concurrent": [5], "wrk_s": 1, "list": 50,
              "idle": [0, 5], "settle": 1.0, "warm": 2},
    "quick": {"n": 5, "files_mb": [1], "concurrent": [20], "wrk_s": 3, "list": 200,
              "idle": [0, 100], "settle": 10.0, "warm": 5},
    "full": {"n": 12, "files_mb": [1, 100], "concurrent": [20, 50], "wrk_s": 10, "list": 1000,
             "idle": [0, 100, 500], "settle": 20.0, "warm": 12},
}  # fmt: skip


def _pair(pair: dict[str, Any]) -> dict[str, Any]:
    ours, base = pair["sandbay"], pair["baseline"]
    row = {"sandbay": ours.summary(), "baseline": base.summary()}
    row["ratio"] = row["sandbay"]["p50_ms"] / row["baseline"]["p50_ms"]
    for key in ("sandbay_per_s", "baseline_per_s"):
        if key in pair:
            row[key] = pair[key]
    return row


def run(mode: str, profile: bool) -> dict[str, Any]:
    cfg = MODES[mode]
    results: dict[str, Any] = {}
    raw = RawDocker()
    try:
        with sandbay_server() as server:
            api = Api(server)
            for name, pair in ops.lifecycle(api, raw, cfg["n"]).items():
                results[name] = _pair(pair)
            if api.has("/v1/environments/{env}/exec"):
                results["exec_true"] = _pair(ops.exec_true(api, raw, cfg["n"] * 4))
            if api.has("/v1/environments/{env}/files"):
                for size in cfg["files_mb"]:
                    for kind, pair in ops.files(api, raw, max(cfg["n"] // 2, 2), size).items():
                        results[f"file_{kind}_{size}mb"] = _pair(pair)
            for count in cfg["concurrent"]:
                spy = _profile(server.proc.pid, count) if profile and server.proc else None
                results[f"concurrent_creates_{count}"] = _pair(
                    ops.concurrent_creates(api, raw, count)
                )
                if spy is not None:
                    spy.wait(60)
            load = ops.http_load(api, cfg["wrk_s"], cfg["list"])
            results["healthz"] = load["healthz"]
            results["get_environment"] = load["get"]
            results[f"list_{cfg['list']}"] = load["list"]
            results[f"list_page_100_of_{cfg['list']}"] = load["page"]
            results["idle"] = ops.idle_footprint(api, cfg["idle"], cfg["settle"])
        pool = json.dumps([{"org": "default", "size": 3}])
        with sandbay_server(SANDBAY_WARM_POOLS=pool) as server:
            warm = ops.warm_creates(Api(server), cfg["warm"])
            results["create_warm_pool"] = {
                "sandbay": warm.summary(),
                "baseline": results["create"]["baseline"],
            }
            results["create_warm_pool"]["ratio"] = (
                warm.pct(50) / results["create"]["baseline"]["p50_ms"]
            )
    finally:
        raw.cleanup()
    return results


_PROFILE_PATH: Path | None = None


def _profile(pid: int, count: int) -> subprocess.Popen[bytes] | None:
    """py-spy samples the server while `count` creates run (saved with the results)."""
    global _PROFILE_PATH
    _PROFILE_PATH = RESULTS / f"profile-create-{count}-{_STAMP}.speedscope.json"
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    try:
        return subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--duration", str(max(8, count // 3)),
             "--rate", "200", "--format", "speedscope", "--output", str(_PROFILE_PATH)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    except FileNotFoundError:
        _PROFILE_PATH = None
        return None


def evaluate(results: dict[str, Any], list_size: int) -> dict[str, Any]:
    """latest.json: op → sandbay p50/p95, baseline p50, ratio, target, met."""
    idle = results["idle"]
    counts = sorted(int(c) for c in idle["rss_kb"])
    growth = (idle["rss_kb"][counts[-1]] - idle["rss_kb"][counts[0]]) / max(counts[-1], 1)
    latest: dict[str, Any] = {}
    for op, row in results.items():
        if "sandbay" not in row:
            continue
        latest[op] = {
            "sandbay_p50_ms": row["sandbay"]["p50_ms"],
            "sandbay_p95_ms": row["sandbay"]["p95_ms"],
            "baseline_p50_ms": row["baseline"]["p50_ms"],
            "ratio": row["ratio"],
        }
        if "sandbay_per_s" in row:
            latest[op]["throughput_ratio"] = row["sandbay_per_s"] / row["baseline_per_s"]
    for op in ("healthz", "get_environment", f"list_{list_size}", f"list_page_100_of_{list_size}"):
        latest[op] = {"rps": results[op]["rps"], "p99_ms": results[op].get("p99_ms")}
    latest["rss_per_idle_env"] = {"kb": growth, "rss_kb": idle["rss_kb"]}
    for count in counts[1:]:
        latest[f"idle_cpu_{count}_envs"] = {"percent": idle["cpu_percent"][count]}
    for op, entry in latest.items():
        key = op.replace(f"list_{list_size}", "list_1000")
        target = TARGETS.get(key)
        if target is None:
            entry.update(target=None, met=None)
            continue
        kind, limit = target
        value = {
            "ratio": entry.get("ratio"),
            "abs_p50_ms": entry.get("sandbay_p50_ms"),
            "throughput_ratio": entry.get("throughput_ratio"),
            "rps_min": entry.get("rps"),
            "p99_max_ms": entry.get("p99_ms"),
            "kb_max": entry.get("kb"),
            "percent_max": entry.get("percent"),
        }[kind]
        met = (
            None
            if value is None
            else (value >= limit if kind in ("throughput_ratio", "rps_min") else value <= limit)
        )
        entry.update(target=f"{kind} {limit:g}", met=met)
    return latest


def show(latest: dict[str, Any]) -> None:
    table = Table(
        "operation", "sandbay p50", "sandbay p95", "docker p50", "ratio", "other", "target", "met"
    )
    for op, e in latest.items():
        fmt = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
        other = ""
        if "rps" in e:
            other = f"{e['rps']:.0f} req/s, p99 {fmt(e.get('p99_ms'))} ms"
        elif "kb" in e:
            other = f"{e['kb']:.1f} KB/env"
        elif "percent" in e:
            other = f"{e['percent']:.2f} % of a core"
        elif "throughput_ratio" in e:
            other = f"throughput ×{e['throughput_ratio']:.2f}"
        met = {True: "[green]met[/green]", False: "[red]not met[/red]", None: ""}[e.get("met")]
        table.add_row(op, fmt(e.get("sandbay_p50_ms")), fmt(e.get("sandbay_p95_ms")),
                      fmt(e.get("baseline_p50_ms")), f"{e['ratio']:.2f}" if "ratio" in e else "",
                      other, e.get("target") or "", met)  # fmt: skip
    Console(width=160).print(table)


_STAMP = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a run of under 2 minutes")
    parser.add_argument("--smoke", action="store_true", help="prove the harness works (CI)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = run(mode, profile=not args.no_profile and mode != "smoke")
    latest = evaluate(results, MODES[mode]["list"])
    elapsed = time.perf_counter() - started
    profile_path = str(_PROFILE_PATH) if _PROFILE_PATH else None
    record = {"mode": mode, "stamp": _STAMP, "seconds": elapsed, "results": results,
              "latest": latest, "profile": profile_path}  # fmt: skip
    (args.out / f"{_STAMP}.json").write_text(json.dumps(record, indent=2, default=str))
    (args.out / "latest.json").write_text(json.dumps(latest, indent=2, default=str))
    show(latest)
    Console().print(f"{mode} run: {elapsed:.0f} s; results in {args.out}/{_STAMP}.json")


if __name__ == "__main__":
    main()
