"""Waiting on a live system from a test: poll, bounded in time, never a bare sleep."""

import time
from collections.abc import Callable
from typing import Any


def eventually(
    check: Callable[[], Any], *, what: str = "condition", timeout: float = 60, every: float = 0.1
) -> Any:
    """The first truthy result of `check`, or a failed assertion after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not met in {timeout:g}s"
        time.sleep(every)
