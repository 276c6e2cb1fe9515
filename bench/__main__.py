"""`python -m bench [--quick|--smoke]`: runs the benchmarks, prints a table, writes
bench/results/<timestamp>.json and bench/results/latest.json."""

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import egress, many_hosts, ops, placement, state_ops
from bench.harness import Api, RawDocker, sandbay_server

RESULTS = Path(__file__).parent / "results"

#: op → (kind, limit); KINDS says which figure of the op each kind bounds, and how.
TARGETS: dict[str, tuple[str, float]] = {
    "create": ("ratio", 1.15),
    "create_warm_pool": ("abs_p50_ms", 50.0),
    "start": ("ratio", 1.15),
    "stop_graceful": ("ratio", 1.15),
    "stop_force": ("ratio", 1.15),
    "restart": ("ratio", 1.15),
    "delete": ("ratio", 1.15),
    "exec_true": ("abs_p50_ms", 5.0),
    "exec_concurrent_100_on_10": ("errors_max", 0),
    "preview_connect": ("added_p50_ms_max", 5.0),
    "file_upload_1mb": ("ratio", 1.2),
    "file_download_1mb": ("ratio", 1.2),
    "file_upload_100mb": ("ratio", 1.2),
    "file_download_100mb": ("ratio", 1.2),
    "concurrent_creates_50": ("throughput_ratio", 0.9),
    "get_environment": ("rps_min", 2000.0),
    "list_1000": ("p99_max_ms", 50.0),
    "rss_per_idle_env": ("kb_max", 100.0),
    "idle_cpu_100_envs": ("percent_max", 5.0),
    "agent_idle_rss_per_env": ("kb_max", 10240.0),
    "agent_idle_cpu_100_envs": ("percent_max", 1.0),
    # issue 19: "resume in milliseconds" (read as: under a tenth of a second, p50)
    "resume": ("abs_p50_ms", 100.0),
}
#: op prefix → a comparison an issue asks to report, without a pass/fail target.
REPORTED: dict[str, str] = {
    # issue 16: "lifecycle and exec under runsc vs runc, side by side"
    "runtime_": "reported: runsc vs runc",
    # issue 19: snapshot and fork time, pause/resume p50, wake-on-request time to first
    # byte vs a plain start, archive restore vs extracting the same tar
    "pause": "reported: vs docker pause",
    "snapshot_": "reported: vs cp -a (frozen_ms: the source's freeze)",
    "fork_": "reported: vs docker run + cp -a",
    "wake_on_request": "reported: vs docker start (and a plain start)",
    "restore_": "reported: vs tar -x of the same archive",
    # issue 20: added latency per HTTPS request (p50, p99) and a 100 MB download's
    # throughput through the policy proxy, vs a direct connection
    "egress_": "reported: vs a direct connection (added p50/p99 ms; MB/s)",
    # issue 18: placement cost as environments grow to 1,000 (simulated nodes)
    "placement_": "reported: vs first-fit, 1,000 envs placed in turn",
    # issue 18: create → running on a remote Swarm node vs on the local engine
    "swarm_create_": "reported: vs docker run on that node (metrics: the other side's p50)",
}


@dataclass(frozen=True)
class Kind:
    """The figure of a row a kind of target bounds, and from which side."""

    figure: str
    at_least: bool = False  # the figure must be ≥ the limit (else ≤)


KINDS = {
    "ratio": Kind("ratio"),
    "abs_p50_ms": Kind("sandbay_p50_ms"),
    "throughput_ratio": Kind("throughput_ratio", at_least=True),
    "rps_min": Kind("rps", at_least=True),
    "p99_max_ms": Kind("p99_ms"),
    "kb_max": Kind("kb"),
    "percent_max": Kind("percent"),
    "errors_max": Kind("errors"),
    "added_p50_ms_max": Kind("added_p50_ms"),
}

#: How each figure beside the latencies is printed, in this order ("other" column);
#: a figure the baseline has too is followed by the baseline's.
FIGURES: dict[str, str] = {
    "vs_runc": "×{:.2f} runc's p50",
    "agent_direct_p50_ms": "agent direct p50 {:.2f} ms",
    "added_p50_ms": "added p50 {:+.2f} ms",
    "errors": "{:.0f} errors",
    "per_s": "{:.1f}/s",
    "throughput_ratio": "throughput ×{:.2f}",
    "rps": "{:.0f} req/s",
    "p99_ms": "p99 {:.2f} ms",
    "kb": "{:.0f} KiB",
    "private_kb": "private {:.0f} KiB",
    "percent": "{:.2f} % of a core",
    "agent_checks_at_running": "{:.0f} agent health calls at running",
    "agent_unready_at_running": "{:.0f} failed",
    "count": "over {:.0f} envs",
    "frozen_ms": "frozen {:.0f} ms",
    "plain_start_p50_ms": "plain start p50 {:.0f} ms",
    "p50_us": "p50 {:.1f} µs",
    "p99_us": "p99 {:.1f} µs",
    "last_100_p50_us": "last 100 p50 {:.1f} µs",
    "total_ms": "total {:.0f} ms",
    "unplaced": "{:.0f} unplaced",
    "busiest_cpu_share": "busiest node {:.0%} CPU",
}


@dataclass(frozen=True)
class Mode:
    n: int  # samples of each serial operation (8 times as many of the cheap ones)
    files_mb: list[int]
    concurrent: list[int]  # creates at once
    execs: tuple[int, int]  # execs at once, over as many environments
    wrk_s: int
    list_size: int  # environments listed in one page
    idle: list[int]  # idle environments, in steps
    settle: float
    warm: int
    runtimes: int  # rounds of the runc-vs-runsc comparison (exec: 4 times as many calls)
    state_mb: list[int]  # /workspace sizes of the snapshot, fork and restore runs
    egress_mb: int  # the download through the egress proxy
    swarm: bool = True  # build a two-node Swarm for the many-hosts rows (not in smoke)
    egress: bool = True  # the egress lab's rows (not in smoke: tests/e2e/test_egress.py)


MODES = {
    "smoke": Mode(n=2, files_mb=[1], concurrent=[5], execs=(100, 10), wrk_s=1, list_size=50,
                  idle=[0, 5], settle=1.0, warm=2, runtimes=1, state_mb=[10], egress_mb=10,
                  swarm=False, egress=False),
    "quick": Mode(n=5, files_mb=[1, 100], concurrent=[20], execs=(100, 10), wrk_s=3, list_size=200,
                  idle=[0, 100], settle=10.0, warm=5, runtimes=3, state_mb=[100], egress_mb=100),
    "full": Mode(n=12, files_mb=[1, 100], concurrent=[20, 50], execs=(100, 10), wrk_s=10,
                 list_size=1000, idle=[0, 100, 500], settle=20.0, warm=12, runtimes=8,
                 state_mb=[100, 1024], egress_mb=100),
}  # fmt: skip


def _pair(pair: dict[str, Any]) -> dict[str, Any]:
    """A measured pair as a row: both sides' summaries, the ratio, the other figures."""
    row: dict[str, Any] = {
        key: pair[key] for key in ("baseline_name", "metrics", "baseline_metrics") if key in pair
    }
    row["sandbay"], row["baseline"] = pair["sandbay"].summary(), pair["baseline"].summary()
    row["ratio"] = row["sandbay"]["p50_ms"] / row["baseline"]["p50_ms"]
    return row


def _load(measured: dict[str, float], floor: dict[str, float] | None = None) -> dict[str, Any]:
    """A wrk run as a row (beside the floor route's, if given)."""
    row: dict[str, Any] = {"metrics": {"rps": measured["rps"], "p99_ms": measured.get("p99_ms")}}
    if floor is not None:
        row["baseline_name"] = "/healthz"
        row["baseline_metrics"] = {"rps": floor["rps"], "p99_ms": floor.get("p99_ms")}
    return row


def _idle(idle: dict[str, Any]) -> dict[str, Any]:
    """The idle footprint as rows: the server's RSS growth per environment and its
    CPU; the agents' memory (p50 over the first count measured) and CPU beside those
    of docker-init, PID 1 of as many `docker run -d` containers."""
    counts = sorted(idle["rss_kb"])
    growth = (idle["rss_kb"][counts[-1]] - idle["rss_kb"][counts[0]]) / max(counts[-1], 1)
    rows: dict[str, Any] = {"rss_per_idle_env": {"metrics": {"kb": growth}}}
    for count in counts[1:]:
        rows[f"idle_cpu_{count}_envs"] = {"metrics": {"percent": idle["cpu_percent"][count]}}
    agents, init = idle["agents"], idle["docker_init"]
    for count in counts[1:2]:
        rows["agent_idle_rss_per_env"] = {
            "baseline_name": "docker-init",
            "metrics": {"kb": agents[count]["rss_kb"], "private_kb": agents[count]["private_kb"],
                        "count": count},
            "baseline_metrics": {"kb": init[count]["rss_kb"],
                                 "private_kb": init[count]["private_kb"]},
        }  # fmt: skip
    for count in counts[1:]:
        rows[f"agent_idle_cpu_{count}_envs"] = {
            "baseline_name": "docker-init",
            "metrics": {"percent": agents[count]["cpu_percent"]},
            "baseline_metrics": {"percent": init[count]["cpu_percent"]},
        }
    return rows


def run(mode: str, profile: bool) -> dict[str, Any]:
    cfg = MODES[mode]
    results: dict[str, Any] = {}
    for name, pair in placement.placement().items():  # pure: before any engine work
        results[name] = _pair(pair)
    raw = RawDocker()
    try:
        with sandbay_server() as server:
            api = Api(server)
            for name, pair in ops.lifecycle(api, raw, cfg.n).items():
                results[name] = _pair(pair)
            if api.has("/v1/environments/{env}/exec"):
                for name, pair in ops.exec_true(api, raw, cfg.n * 8).items():
                    results[name] = _pair(pair)
                execs, envs = cfg.execs
                results[f"exec_concurrent_{execs}_on_{envs}"] = _pair(
                    ops.exec_concurrent(api, raw, execs, envs)
                )
            available = tuple(r for r in ops.RUNTIMES if r in raw.runtimes())
            for name, pair in ops.runtimes(api, raw, cfg.runtimes, available).items():
                results[name] = _pair(pair)
            results["preview_connect"] = _pair(ops.preview_connect(api, raw, cfg.n * 8))
            for name, pair in state_ops.pause_resume(api, raw, cfg.n * 4).items():
                results[name] = _pair(pair)
            results["wake_on_request"] = _pair(state_ops.wake(api, raw, cfg.n))
            for size in cfg.state_mb:
                for name, pair in state_ops.snapshot_fork(api, raw, size).items():
                    results[name] = _pair(pair)
                results[f"restore_{size}mb"] = _pair(state_ops.archive_restore(api, raw, size))
            if api.has("/v1/environments/{env}/files"):
                for size in cfg.files_mb:
                    for kind, pair in ops.files(api, raw, cfg.n, size).items():
                        results[f"file_{kind}_{size}mb"] = _pair(pair)
            for count in cfg.concurrent:
                spy = _profile(server.proc.pid, count) if profile and server.proc else None
                results[f"concurrent_creates_{count}"] = _pair(
                    ops.concurrent_creates(api, raw, count)
                )
                if spy is not None:
                    spy.wait(60)
            load = ops.http_load(api, cfg.wrk_s, cfg.list_size)
            results["healthz"] = _load(load["healthz"])
            results["get_environment"] = _load(load["get"], load["healthz"])
            results[f"list_{cfg.list_size}"] = _load(load["list"])
            results[f"list_page_100_of_{cfg.list_size}"] = _load(load["page"])
            results["idle"] = ops.idle_footprint(api, raw, cfg.idle, cfg.settle)
            results.update(_idle(results["idle"]))
        pool = json.dumps([{"org": "default", "size": 3}])
        with sandbay_server(SANDBAY_WARM_POOLS=pool) as server:
            warm = ops.warm_creates(Api(server), cfg.warm)
            create = results["create"]
            results["create_warm_pool"] = {
                "sandbay": warm.summary(),
                "baseline": create["baseline"],
                "baseline_name": create["baseline_name"],
                "ratio": warm.pct(50) / create["baseline"]["p50_ms"],
            }
        if cfg.egress:
            for name, pair in egress.egress(cfg.n * 10, cfg.egress_mb).items():
                results[name] = _pair(pair)
        if cfg.swarm:  # the harness it uses is exercised by tests/e2e/test_many_hosts.py
            for name, pair in many_hosts.many_hosts(cfg.n).items():
                results[name] = _pair(pair)
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
    """latest.json: op → sandbay p50/p95, the baseline and its p50, the ratio, every
    other figure (and the baseline's, as `baseline_<figure>`), the target, the figure
    it bounds (`value`) and whether it is met."""
    latest: dict[str, Any] = {}
    for op, row in results.items():
        if "sandbay" not in row and "metrics" not in row:
            continue  # raw material of other rows (the idle footprint)
        entry: dict[str, Any] = {"baseline": row.get("baseline_name")}
        if "sandbay" in row:
            entry.update(
                sandbay_p50_ms=row["sandbay"]["p50_ms"],
                sandbay_p95_ms=row["sandbay"]["p95_ms"],
                baseline_p50_ms=row["baseline"]["p50_ms"],
                ratio=row["ratio"],
            )
        entry.update(row.get("metrics", {}))
        entry.update({f"baseline_{k}": v for k, v in row.get("baseline_metrics", {}).items()})
        target = TARGETS.get(op.replace(f"list_{list_size}", "list_1000"))
        reported = next((text for prefix, text in REPORTED.items() if op.startswith(prefix)), None)
        if target is None:
            entry.update(target=reported, value=None, met=None)
        else:
            kind, limit = target
            rule = KINDS[kind]
            value = entry.get(rule.figure)
            met = None if value is None else value >= limit if rule.at_least else value <= limit
            entry.update(target=f"{kind} {'≥' if rule.at_least else '≤'} {limit:g}",
                         value=value, met=met)  # fmt: skip
        latest[op] = entry
    return latest


def _figures(entry: dict[str, Any]) -> str:
    """The "other" column: each figure beside the latencies, the baseline's after it."""
    parts = []
    for key, fmt in FIGURES.items():
        if entry.get(key) is None:
            continue
        text = fmt.format(entry[key])
        if entry.get(f"baseline_{key}") is not None:
            text += f" (base {fmt.format(entry[f'baseline_{key}'])})"
        parts.append(text)
    return ", ".join(parts)


def _num(value: float | None, spec: str = ".1f") -> str:
    return "" if value is None else format(value, spec)


def show(latest: dict[str, Any]) -> None:
    table = Table("operation", "sandbay p50", "sandbay p95", "baseline", "baseline p50", "ratio",
                  "other", "target", "value", "met")  # fmt: skip
    for op, e in latest.items():
        met = {True: "[green]met[/green]", False: "[red]not met[/red]", None: ""}[e["met"]]
        table.add_row(op, _num(e.get("sandbay_p50_ms")), _num(e.get("sandbay_p95_ms")),
                      e["baseline"] or "", _num(e.get("baseline_p50_ms")),
                      _num(e.get("ratio"), ".2f"), _figures(e), e["target"] or "",
                      _num(e["value"], ".2f"), met)  # fmt: skip
    Console(width=200).print(table)


_STAMP = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a run of about 2.5 minutes")
    parser.add_argument("--smoke", action="store_true", help="prove the harness works (CI)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = run(mode, profile=not args.no_profile and mode != "smoke")
    latest = evaluate(results, MODES[mode].list_size)
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
