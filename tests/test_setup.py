"""`make setup` is idempotent: a second run finds everything in place and does nothing."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_second_setup_has_nothing_to_do() -> None:
    result = subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    for work in ("installing", "creating .venv", "starting dockerd", "building"):
        assert work not in out, out
    assert "ready:" in out
