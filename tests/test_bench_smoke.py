"""The benchmark harness works (a smoke run; benchmarks never assert speed here)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_smoke_run_writes_results_for_every_operation(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    latest = json.loads((tmp_path / "latest.json").read_text())
    for op in ("create", "start", "stop_graceful", "stop_force", "restart", "delete",
               "create_warm_pool", "get_environment", "rss_per_idle_env",
               "runtime_create_runc", "runtime_exec_runc", "pause", "resume",
               "wake_on_request", "snapshot_10mb", "fork_10mb", "restore_10mb"):  # fmt: skip
        assert op in latest, op
    for op in ("create", "stop_graceful", "delete"):
        entry = latest[op]
        assert entry["sandbay_p50_ms"] > 0 and entry["baseline_p50_ms"] > 0
        assert entry["ratio"] == entry["sandbay_p50_ms"] / entry["baseline_p50_ms"]
        assert entry["met"] in (True, False)
    assert latest["get_environment"]["rps"] > 0
    if "runtime_create_runsc" in latest:  # the engine has gVisor (`make setup`)
        assert latest["runtime_exec_runsc"]["vs_runc"] > 0
    runs = list(tmp_path.glob("2*.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["mode"] == "smoke"
