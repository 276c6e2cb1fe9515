"""The SDK's calls sandbay refuses on purpose answer a clear 400 saying why, in
Daytona's error shapes (the API's and the toolbox's), not a bare 404."""

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, Daytona, DaytonaError, Sandbox
from daytona_api_client.exceptions import ApiException

from sandbay.dialects.daytona.refused import COMPUTER_USE, SECRETS

pytestmark = pytest.mark.docker


@pytest.fixture
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    box = daytona.create(CreateSandboxFromSnapshotParams(auto_stop_interval=0), timeout=120)
    yield box
    daytona.delete(box, wait=True)


def _refused(call: Callable[[], Any], reason: str) -> None:
    # The SDK's SecretService lets the generated client's exception through unwrapped.
    with pytest.raises((DaytonaError, ApiException)) as refused:
        call()
    error = refused.value
    status = error.status_code if isinstance(error, DaytonaError) else getattr(error, "status", 0)
    assert status == 400, error
    assert reason in str(error)


def test_secrets_and_computer_use_say_why(daytona: Daytona, sandbox: Sandbox) -> None:
    _refused(lambda: sandbox.update_secrets({"TOKEN": "t"}), SECRETS)
    _refused(daytona.secret.list, SECRETS)
    _refused(lambda: daytona.secret.get("some-id"), SECRETS)
    _refused(sandbox.computer_use.start, COMPUTER_USE)
    _refused(sandbox.computer_use.mouse.get_position, COMPUTER_USE)
    _refused(sandbox.computer_use.screenshot.take_full_screen, COMPUTER_USE)


def test_refusals_come_in_daytonas_shapes_and_need_a_key(api: httpx.Client) -> None:
    listed = api.get("/secret")
    assert listed.status_code == 400, listed.text
    assert listed.json()["statusCode"] == 400 and listed.json()["error"] == "Bad Request"
    assert listed.json()["message"] == SECRETS

    clicked = api.post("/toolbox/anything/computeruse/mouse/click", json={"x": 1, "y": 2})
    assert clicked.status_code == 400, clicked.text
    body = clicked.json()
    assert (body["code"], body["source"], body["message"]) == (
        "BAD_REQUEST",
        "DAYTONA_DAEMON",
        COMPUTER_USE,
    )
    assert api.delete("/secret/x").json()["message"] == SECRETS

    anonymous = httpx.get(f"{api.base_url}/secret")
    assert anonymous.status_code == 401
