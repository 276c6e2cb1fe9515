"""The SDK's calls sandbay refuses on purpose (computer use) answer a clear 400 saying
why, in Daytona's error shapes (the API's and the toolbox's), not a bare 404."""

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, Daytona, DaytonaError, Sandbox

from sandbay.dialects.daytona.refused import COMPUTER_USE

pytestmark = pytest.mark.docker


@pytest.fixture
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    box = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=120)
    yield box
    daytona.delete(box, wait=True)


def _refused(call: Callable[[], Any], reason: str) -> None:
    with pytest.raises(DaytonaError) as refused:
        call()
    error = refused.value
    assert error.status_code == 400, error
    assert reason in str(error)


def test_computer_use_says_why(sandbox: Sandbox) -> None:
    _refused(sandbox.computer_use.start, COMPUTER_USE)
    _refused(sandbox.computer_use.mouse.get_position, COMPUTER_USE)
    _refused(sandbox.computer_use.screenshot.take_full_screen, COMPUTER_USE)


def test_refusals_come_in_daytonas_shapes_and_need_a_key(api: httpx.Client) -> None:
    clicked = api.post("/toolbox/anything/computeruse/mouse/click", json={"x": 1, "y": 2})
    assert clicked.status_code == 400, clicked.text
    body = clicked.json()
    assert (body["code"], body["source"], body["message"]) == (
        "BAD_REQUEST",
        "DAYTONA_DAEMON",
        COMPUTER_USE,
    )
    anonymous = httpx.post(f"{api.base_url}/toolbox/anything/computeruse/mouse/click")
    assert anonymous.status_code == 401
